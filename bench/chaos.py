"""Chaos: the linearizability checker's speed.

``python -m bench.chaos [--quick] [--reps N]`` prints one JSON object.

The checker decides a generated, linearizable 100,000-operation KV history over 100 keys with
10% unknown outcomes (``ember.testing._histories.random_kv_history``: 20 clients working 4 keys
at a time, so every key sees concurrent operations; half the unknown ones took effect, some
late). The baseline, run in the same process on a tenth of the history, is the same search
with a model that gives no hints and no preparation (Porcupine's plain WGL with unknown
outcomes deferred): the ratio is what the register model's hints buy.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from typing import Any

from ember.testing import KVModel, Model, Verdict, check_linearizability
from ember.testing._histories import random_kv_history

from ._util import goal, perf_counter


class PlainKV(KVModel):
    """The KV model without hints or preparation."""

    def prepare(self, ops: Any) -> Any:
        return Model.prepare(self, ops)

    def blind(self, input: Any) -> bool:
        return False

    def readonly(self, input: Any, output: Any) -> bool:
        return False


def _timed(history: list[Any], model: KVModel) -> float:
    start = perf_counter()
    result = check_linearizability(history, model)
    elapsed = perf_counter() - start
    if result.verdict is not Verdict.OK:
        raise RuntimeError(f"generated history judged {result.verdict}")
    return elapsed


def run(quick: bool, reps: int) -> dict[str, Any]:
    """For ``python -m bench``: seconds to check the history, and the baseline's ops/s."""
    ops = 10_000 if quick else 100_000
    params: dict[str, Any] = {
        "operations": ops,
        "keys": 100,
        "clients": 20,
        "hot_keys": 4,
        "unknown": 0.1,
    }
    history = random_kv_history(random.Random(1), **params)
    small = random_kv_history(random.Random(1), **{**params, "operations": ops // 10})
    ours = [_timed(history, KVModel()) for _ in range(reps)]
    plain = [_timed(small, PlainKV()) for _ in range(reps)]
    ours_rate = ops / statistics.median(ours)
    plain_rate = len(small) / statistics.median(plain)
    return {
        "unit": "s",
        "params": params,
        "results": {
            "checker_s": round(statistics.median(ours), 3),
            "checker_ops_per_s": round(ours_rate),
            "plain_wgl_ops_per_s": round(plain_rate),
        },
        "ratios": {"checker/plain_wgl": round(ours_rate / plain_rate, 2)},
        "samples_s": {
            "checker": [round(x, 3) for x in ours],
            "plain": [round(x, 3) for x in plain],
        },
    }


def goals(benchmarks: dict[str, Any]) -> dict[str, Any]:
    """The goals of the chaos issue, for ``python -m bench`` (``pass`` is None if not run)."""
    sec = benchmarks.get("chaos")
    r: dict[str, Any] = {} if sec is None else sec["results"]
    full = sec is not None and sec["params"]["operations"] == 100_000
    return {
        "chaos_checker_100k": goal(
            "checker decides 100,000 KV ops over 100 keys, 10% unknown, in < 10 s",
            r.get("checker_s") if full else None,
            10,
            False,
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos")
    parser.add_argument("--quick", action="store_true", help="10,000 operations")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args(argv)
    json.dump({"chaos": run(args.quick, args.reps)}, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
