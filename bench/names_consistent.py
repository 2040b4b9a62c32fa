"""The consistent tier's figures of ``bench/names.py`` alone: ``python -m bench.names_consistent``
(3 voter processes and this node as a client: registrations/s and CPU per registration against
plain Raft writes in the same run, cache staleness, cached ``whereis``). The same code as the
``names`` benchmark's consistent section, without its 10-node eventual part, for a quick
re-measure on a busy host."""

from __future__ import annotations

import os
from typing import Any

from bench._util import cli, run_uvloop
from bench.names import consistent_ratios, consistent_section, goals


def run(quick: bool, reps: int) -> dict[str, Any]:
    results: dict[str, Any] = run_uvloop(consistent_section(quick))
    wanted = ("names_consistent_rate", "names_consistent_p99", "names_cached_whereis")
    all_goals = goals({"names": {"results": results}})
    return {
        "unit": "ms, operations/s (wall clock; this host), CPU microseconds per operation",
        "params": {"consistent_voters": 3, "registrants": 64, "durable": True},
        "load": os.getloadavg(),
        "results": results,
        "ratios": consistent_ratios(results),
        "goals": {k: all_goals[k] for k in wanted},
    }


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    cli(run, __doc__)
