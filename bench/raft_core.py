"""The pure Raft core: commits/s of three cores in one process, no I/O.

``python -m bench.raft_core [--quick] [--reps N]`` prints one JSON object.

Three :class:`RawNode` members with :class:`MemoryStorage` are wired directly: each round the
leader gets ``batch`` proposals of 100 bytes, then every member's ``Ready`` is handled (save,
send, apply, advance) until nothing is left, every message crossing ``encode_message`` /
``decode_message``. This is the CPU cost of the algorithm and its wire form alone; fsync and the
transport come on top (``bench.raft_store``, the cluster benchmark). Reported per batch size:
commits/s (median over reps) and the mean cost per commit in microseconds.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from typing import Any

from ember.consensus._config import RaftConfig
from ember.consensus._memory import MemoryStorage
from ember.consensus._messages import decode_message, encode_message
from ember.consensus._rawnode import RawNode
from ember.consensus._types import ConfState

from ._util import perf_counter

BATCHES = (1, 16, 64, 256)
IDS = ("a", "b", "c")


class Group:
    """Three members; ``a`` leads."""

    def __init__(self) -> None:
        self.storage = {i: MemoryStorage() for i in IDS}
        for i in IDS:
            RawNode.bootstrap(self.storage[i], ConfState(IDS))
        self.nodes = {
            i: RawNode(RaftConfig(id=i), self.storage[i], random.Random(k))
            for k, i in enumerate(IDS)
        }
        self.nodes["a"].campaign()
        self.pump()

    def pump(self) -> int:
        """Handle every Ready until quiet; returns entries the leader applied."""
        applied = 0
        busy = True
        while busy:
            busy = False
            for i, node in self.nodes.items():
                if not node.has_ready():
                    continue
                busy = True
                rd = node.ready()
                self.storage[i].save(rd.hard_state, rd.entries, rd.snapshot)
                for m in rd.early_messages + rd.messages:
                    self.nodes[m.to].step(decode_message(encode_message(m)))
                if i == "a":
                    applied += len(rd.committed_entries)
                node.advance(rd)
        return applied

    def run(self, batch: int, commits: int) -> float:
        """Seconds to commit ``commits`` entries proposed ``batch`` per round."""
        leader = self.nodes["a"]
        data = bytes(100)
        start = perf_counter()
        done = 0
        while done < commits:
            for _ in range(batch):
                leader.propose(data)
            done += batch
            self.pump()
        return perf_counter() - start


def run(quick: bool, reps: int) -> dict[str, Any]:
    """For ``python -m bench``: commits/s of three in-process cores per batch size."""
    commits = 2_000 if quick else 20_000
    results: dict[str, Any] = {}
    for batch in BATCHES:
        rates = []
        for _ in range(reps):
            n = max(commits // (8 if batch == 1 else 1), batch)
            rates.append(n / Group().run(batch, n))
        rate = statistics.median(rates)
        results[f"commits_per_s_batch{batch}"] = round(rate)
        results[f"us_per_commit_batch{batch}"] = round(1e6 / rate, 1)
    return {"unit": "commits/s", "params": {"batches": list(BATCHES)}, "results": results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.raft_core")
    parser.add_argument("--quick", action="store_true", help="fewer commits per rep")
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args(argv)
    json.dump({"raft_core": run(args.quick, args.reps)}, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
