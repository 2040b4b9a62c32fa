"""A short scenario the chaos tests share: a 3-node KV run of 4 s with one fault."""

import textwrap

TINY = textwrap.dedent(
    """\
    description = "a short run"
    seed = 4
    settle = 1
    [cluster]
    nodes = 3
    [[workload]]
    kind = "kv"
    clients = 2
    rate = 20
    duration = 4
    keys = 2
    [[faults.timeline]]
    at = 1
    fault = "pause"
    target = "leader"
    duration = 2
    """
)
