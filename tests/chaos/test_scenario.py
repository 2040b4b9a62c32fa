"""Scenario files: a full one parses into the model; every mistake names the key and line."""

import textwrap

import pytest

import ember
from ember.chaos._scenario import FaultSpec, ScenarioError, load_scenario, parse_scenario
from ember.chaos._toml import key_lines, show_path

FULL = textwrap.dedent(
    """\
    name = "leader-kill"
    description = "kill the leader"
    seed = 42
    settle = 3.0

    [cluster]
    nodes = 5
    profile = "local"
    durable = true

    [[workload]]
    kind = "kv"
    clients = 6
    rate = 100
    duration = 15
    keys = 3
    mix = { read = 0.6, write = 0.2, cas = 0.2 }

    [[workload]]
    kind = "names"
    tier = "eventual"
    rate = 0

    [[faults.timeline]]
    at = 3.0
    fault = "kill"
    target = "leader"
    duration = 2.0

    [[faults.timeline]]
    at = 8
    fault = "partition"
    mode = "ring"
    target = "all"

    [faults.generator]
    interval = 4.0
    faults = ["pause", { fault = "delay", delay = [0.01, 0.05], target = ["n1", "n2"] }]

    [checks]
    max_unavailable = 8.0
    rss_limit_mb = 300
    logs_allow = ["expected crash"]
    """
)


def test_a_full_scenario_parses():
    s = parse_scenario(FULL, path="x.toml")
    assert (s.name, s.seed, s.settle, s.cluster.nodes) == ("leader-kill", 42, 3.0, 5)
    kv, names = s.workloads
    assert (kv.kind, kv.clients, kv.rate, kv.duration, kv.keys) == ("kv", 6, 100, 15, 3)
    assert kv.mix == {"read": 0.6, "write": 0.2, "cas": 0.2}
    assert (names.tier, names.rate, names.mix["register"]) == ("eventual", None, 0.4)
    assert s.timeline[0] == FaultSpec(fault="kill", target="leader", at=3.0, duration=2.0)
    assert s.timeline[1].mode == "ring" and s.timeline[1].duration is None
    pause, delay = s.generator.faults
    assert pause.fault == "pause" and pause.target == "one"
    assert delay.delay == (0.01, 0.05) and delay.target == ("n1", "n2")
    assert s.checks.max_unavailable == 8.0 and s.checks.logs_allow == ("expected crash",)
    assert s.duration == 20.0  # the names workload's default
    assert s.faults() == ("kill", "partition", "pause", "delay")


def replace(old, new):
    assert old in FULL
    return FULL.replace(old, new, 1)


def line_with(text, needle, nth=1):
    hits = [n for n, line in enumerate(text.splitlines(), start=1) if needle in line]
    return hits[nth - 1]


@pytest.mark.parametrize(
    ("old", "new", "key", "needle", "message"),
    [
        ("nodes = 5", "nodes = 12", "cluster.nodes", "nodes = 12", "in 1..9"),
        ("nodes = 5", 'nodes = "five"', "cluster.nodes", "nodes =", "must be an integer"),
        (
            "durable = true",
            "durabel = true",
            "cluster.durabel",
            "durabel",
            "did you mean 'durable'",
        ),
        ("clients = 6", "clients = 0", "workload[0].clients", "clients = 0", "in 1..256"),
        (
            'tier = "eventual"',
            'tier = "strong"',
            "workload[1].tier",
            "tier =",
            "consistent, eventual",
        ),
        ("cas = 0.2 }", "swap = 0.2 }", "workload[0].mix.swap", "mix =", "unknown key"),
        (
            'target = "leader"',
            'target = "boss"',
            "faults.timeline[0].target",
            'target = "boss"',
            "leader",
        ),
        ("at = 8\n", "at = 80\n", "faults.timeline[1].at", "at = 80", "after the workload ends"),
        ('mode = "ring"', 'mode = "donut"', "faults.timeline[1].mode", "mode =", "isolate, halves"),
        (
            'fault = "kill"',
            'fault = "nuke"',
            "faults.timeline[0].fault",
            'fault = "nuke"',
            "one of kill",
        ),
        ("interval = 4.0", "interval = -1", "faults.generator.interval", "interval", "> 0"),
        (
            'target = ["n1", "n2"]',
            'target = ["n1", "n7"]',
            "faults.generator.faults[1].target",
            "faults = [",
            "no such node 'n7'",
        ),
        (
            "rss_limit_mb = 300",
            "rss_limit_mb = true",
            "checks.rss_limit_mb",
            "rss_limit_mb",
            "a number",
        ),
        (
            "duration = 2.0",
            "duration = 2.0\nwhen = 3",
            "faults.timeline[0].when",
            "when = 3",
            "unknown key",
        ),
    ],
)
def test_mistakes_name_the_key_and_the_line(old, new, key, needle, message):
    text = replace(old, new)
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, path="chaos/x.toml")
    err = info.value
    assert err.key == key
    assert err.line == line_with(text, needle), str(err)
    assert message in str(err)
    assert str(err).startswith(f"chaos/x.toml:{err.line}: {key}: ")
    assert isinstance(err, ember.UsageError)


def test_missing_pieces():
    with pytest.raises(ScenarioError, match="at least one"):
        parse_scenario('name = "x"\n')
    with pytest.raises(ScenarioError, match=r"workload\[0\].kind: missing"):
        parse_scenario("[[workload]]\nclients = 2\n")
    with pytest.raises(ScenarioError, match=r"timeline\[0\].at: missing"):
        parse_scenario('[[workload]]\nkind = "kv"\n[[faults.timeline]]\nfault = "kill"\n')
    with pytest.raises(ScenarioError, match="killing every node"):
        text = '[[workload]]\nkind = "kv"\n[[faults.timeline]]\nat = 1\nfault = "kill"\n'
        parse_scenario(text + 'target = "all"\n')


def test_toml_syntax_errors_carry_the_line():
    with pytest.raises(ScenarioError) as info:
        parse_scenario('[[workload]]\nkind = "kv"\nclients = = 3\n', path="bad.toml")
    assert info.value.line == 3 and "not valid TOML" in str(info.value)


def test_load_from_a_file_names_it(tmp_path):
    path = tmp_path / "flap.toml"
    path.write_text('[[workload]]\nkind = "kv"\n')
    assert load_scenario(path).name == "flap"
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "missing.toml")


def test_key_lines_map_tables_arrays_and_dotted_keys():
    text = textwrap.dedent(
        """\
        a = 1
        [t]
        b.c = 2  # comment
        multi = [
          1,
          2,
        ]
        after = 3
        [[arr]]
        x = 1
        [[arr]]
        x = '''
        y = 4
        '''
        z = 5
        """
    )
    lines = key_lines(text)
    assert lines[("a",)] == 1 and lines[("t",)] == 2
    assert lines[("t", "b", "c")] == 3 and lines[("t", "multi")] == 4 and lines[("t", "after")] == 8
    assert lines[("arr", 0, "x")] == 10 and lines[("arr", 1, "x")] == 12
    assert ("arr", 1, "y") not in lines and lines[("arr", 1, "z")] == 15
    assert show_path(("faults", "timeline", 1, "at")) == "faults.timeline[1].at"


def test_the_chaos_namespace_is_pinned():
    import types

    import ember.chaos

    public = {
        n
        for n, v in vars(ember.chaos).items()
        if not n.startswith("_") and not isinstance(v, types.ModuleType) and n != "annotations"
    }
    assert public == {
        "DRIVERS",
        "CheckResult",
        "ChecksSpec",
        "ClusterSpec",
        "DriverError",
        "Event",
        "FaultRecord",
        "FaultSpec",
        "GeneratorSpec",
        "History",
        "RunResult",
        "Scenario",
        "ScenarioError",
        "Validity",
        "WorkloadSpec",
        "bundled_scenarios",
        "find_scenario",
        "load_scenario",
        "parse_scenario",
        "run_chaos",
    }
    assert issubclass(ember.chaos.ScenarioError, ember.UsageError)
    assert issubclass(ember.chaos.DriverError, ember.EmberError)


def test_ember_testing_does_not_import_the_chaos_layer():
    import subprocess
    import sys

    code = (
        "import sys, ember.testing; "
        "print('chaos modules:', [m for m in sys.modules if m.startswith('ember.chaos')])"
    )
    run = [sys.executable, "-c", code]
    out = subprocess.run(run, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert "chaos modules: []" in out.stdout.splitlines(), (out.stdout, out.stderr)
