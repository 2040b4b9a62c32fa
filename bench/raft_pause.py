"""Raft under a paused leader: ``python -m bench --only raft_pause`` (or ``python -m
bench.raft_pause``).

Three node processes on loopback (``ember node start``, durable storage) hold a
``KVStateMachine`` group; this process joins as a client node and runs 4 writers and 4
linearizable readers back to back. Then the leader's process is frozen with SIGSTOP for 5 s (the
others elect a new leader and write on) and resumed with SIGCONT; it comes back far behind the
new leader (issue 9: this used to make the new leader run away, at 100% CPU and 100 MB/s of RSS).
A second run SIGKILLs the leader instead, for comparison.

Figures: ``recovery_s``, from SIGCONT to the start of the first 1 s window whose write rate is at
least 80% of the rate before the fault; ``resume_gap_s``, the longest time without an
acknowledged write from SIGCONT on (the runaway made it 9-22 s); ``stall_s``, the longest time
without an acknowledged write from the fault on (how long clients stand still); the peak RSS of
every node; the acknowledged writes and reads per half second around the fault. On a loaded
machine ``recovery_s`` is mostly CPU contention: the resumed process competes again.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import secrets
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench._util import run_uvloop

VALUE = b"x" * 100
KEYS = 64
WINDOW = 1.0  # seconds: the window over which "full rate" is judged
FULL = 0.8  # fraction of the rate before the fault that counts as full rate
perf = time.perf_counter


def _log(*args: Any) -> None:
    print("[raft_pause]", *args, file=sys.stderr, flush=True)


def rss_bytes(pid: int) -> int:
    """The resident set size of process ``pid`` (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


@dataclass
class PauseRun:
    """What one run saw: times are ``perf_counter`` seconds."""

    fault: str
    leader: str
    fault_at: float = 0.0
    resumed_at: float | None = None
    writes: list[float] = field(default_factory=list)
    """When each write was acknowledged."""
    reads: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    peak_rss: dict[str, int] = field(default_factory=dict)
    caught_up_s: float | None = None
    """From SIGCONT until the resumed node applied what the leader had committed then."""

    def rate(self, times: list[float], lo: float, hi: float) -> float:
        return sum(1 for t in times if lo <= t < hi) / (hi - lo)

    def baseline(self) -> float:
        """Writes/s over the two seconds before the fault."""
        return self.rate(self.writes, self.fault_at - 2.0, self.fault_at)

    def stall_s(self, since: float | None = None) -> float | None:
        """The longest time without an acknowledged write from the fault (or ``since``) on:
        how long the clients stood still; None if none was acknowledged after it."""
        start = self.fault_at if since is None else since
        after = [start, *sorted(t for t in self.writes if t > start)]
        if len(after) < 2:
            return None
        return max(b - a for a, b in itertools.pairwise(after))

    def recovery_s(self) -> float | None:
        """From SIGCONT (or the fault) to the first ``WINDOW`` at full rate."""
        start = self.resumed_at if self.resumed_at is not None else self.fault_at
        want = FULL * self.baseline()
        end = max(self.writes, default=start)
        t = start
        while t + WINDOW <= end:
            if self.rate(self.writes, t, t + WINDOW) >= want:
                return t - start
            t += 0.05
        return None

    def series(self, times: list[float], step: float = 0.5) -> list[int]:
        lo = self.fault_at - 2.0
        hi = max(times, default=lo)
        n = int((hi - lo) / step) + 1
        counts = [0] * n
        for t in times:
            if t >= lo:
                counts[int((t - lo) / step)] += 1
        return counts

    def summary(self) -> dict[str, Any]:
        stall, recovery = self.stall_s(), self.recovery_s()
        gap = None if self.resumed_at is None else self.stall_s(self.resumed_at)
        return {
            "fault": self.fault,
            "leader": self.leader,
            "baseline_writes_per_s": round(self.baseline(), 1),
            "stall_s": None if stall is None else round(stall, 3),
            "recovery_s": None if recovery is None else round(recovery, 3),
            "resume_gap_s": None if gap is None else round(gap, 3),
            "caught_up_s": None if self.caught_up_s is None else round(self.caught_up_s, 3),
            "peak_rss_mb": {n: round(b / 2**20, 1) for n, b in sorted(self.peak_rss.items())},
            "errors": dict(sorted(self.errors.items())),
            "writes_per_half_s_from_2s_before": self.series(self.writes),
            "reads_per_half_s_from_2s_before": self.series(self.reads),
        }


async def pause_run(
    workdir: Path,
    *,
    fault: str = "stop",
    warmup: float = 3.0,
    pause: float = 5.0,
    after: float = 8.0,
    writers: int = 4,
    readers: int = 4,
    readers_bound: bool = True,
    value_size: int = len(VALUE),
    catch_up_within: float = 60.0,
) -> PauseRun:
    """One run: start the cluster, load it for ``warmup`` s, then SIGSTOP the leader for
    ``pause`` s and SIGCONT it (``fault="stop"``) or SIGKILL it (``"kill"``), and go on for
    ``after`` s; (``"stop"``) the resumed node must apply what the leader had committed at
    SIGCONT within ``catch_up_within`` s. ``readers_bound``: reader ``r`` reads through member
    ``r % 3`` (as Jepsen binds a client to a node; the member asks the leader for a read index),
    else through the leader."""
    from ember.cli._cluster import LocalCluster
    from ember.consensus import Cluster, ClusterError, OutcomeUnknown

    procs = LocalCluster(3, workdir=workdir, discovery="seeds", cluster=f"p{secrets.token_hex(4)}")
    await procs.start()
    client = await procs.client("pause-client", 60.0)
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    try:
        members = ["n1", "n2", "n3"]
        value = b"x" * value_size
        cluster = await Cluster.start(nodes=members, name="kv", node=client)
        leader = await cluster.wait_for_leader(timeout=60)
        run = PauseRun(fault, leader)

        def failed(exc: BaseException) -> None:
            name = type(exc).__name__
            run.errors[name] = run.errors.get(name, 0) + 1

        async def writer(w: int) -> None:
            j = 0
            while not stop.is_set():
                request = f"w{w}-{j}"
                try:
                    await cluster.write(
                        {"key": f"w{w}-{j % KEYS}", "value": value}, request_id=request, timeout=2.0
                    )
                except OutcomeUnknown as exc:  # retried with its request id: applies once
                    failed(exc)
                    continue
                except (ClusterError, TimeoutError) as exc:
                    failed(exc)
                    await asyncio.sleep(0.01)
                    continue
                run.writes.append(perf())
                j += 1

        async def reader(r: int) -> None:
            j = 0
            member = members[r % len(members)] if readers_bound else None
            while not stop.is_set():
                try:
                    await cluster.read(f"w{r}-{j % KEYS}", timeout=2.0, member=member)
                except (ClusterError, TimeoutError) as exc:
                    failed(exc)
                    await asyncio.sleep(0.01)
                    continue
                run.reads.append(perf())
                j += 1

        async def sample_rss() -> None:
            while not stop.is_set():
                for name, node in procs.nodes.items():
                    rss = rss_bytes(node.process.pid)
                    run.peak_rss[name] = max(run.peak_rss.get(name, 0), rss)
                await asyncio.sleep(0.1)

        async def caught_up(commit: int) -> None:
            while True:
                try:
                    st = await cluster.status(leader, timeout=2.0)
                    if st["applied"] >= commit:
                        assert run.resumed_at is not None
                        run.caught_up_s = perf() - run.resumed_at
                        return
                except (ClusterError, TimeoutError):
                    pass
                await asyncio.sleep(0.05)

        loop = asyncio.get_running_loop()
        tasks += [loop.create_task(writer(w)) for w in range(writers)]
        tasks += [loop.create_task(reader(r)) for r in range(readers)]
        tasks.append(loop.create_task(sample_rss()))
        await asyncio.sleep(warmup)
        run.fault_at = perf()
        if fault == "stop":
            _log(f"SIGSTOP {leader}")
            procs.kill(leader, signal.SIGSTOP)
            await asyncio.sleep(pause)
            new = await cluster.wait_for_leader(timeout=30)
            commit = (await cluster.status(new))["commit"]
            run.resumed_at = perf()
            _log(f"SIGCONT {leader} (new leader {new}, commit {commit})")
            procs.kill(leader, signal.SIGCONT)
            catch_up = loop.create_task(caught_up(commit))
        else:
            _log(f"SIGKILL {leader}")
            procs.kill(leader)
        await asyncio.sleep(after)
        if fault == "stop":
            async with asyncio.timeout(catch_up_within):
                await catch_up
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        return run
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.stop()
        for name in procs.nodes:
            procs.kill(name, signal.SIGCONT)  # a stopped process cannot act on SIGTERM
        await procs.stop()


async def _main(quick: bool, reps: int) -> dict[str, Any]:
    pause, after = (5.0, 5.0) if quick else (5.0, 8.0)
    runs: dict[str, list[dict[str, Any]]] = {"stop": [], "kill": []}
    with tempfile.TemporaryDirectory(prefix="bench-raft-pause-") as tmp:
        for rep in range(reps):
            for fault in ("stop", "kill"):
                run = await pause_run(
                    Path(tmp) / f"{fault}{rep}", fault=fault, pause=pause, after=after
                )
                runs[fault].append(run.summary())
                _log(json.dumps(runs[fault][-1]))

    def median(fault: str, key: str) -> float | None:
        values = sorted(r[key] for r in runs[fault] if r[key] is not None)
        return values[len(values) // 2] if values else None

    def worst_rss(fault: str) -> float:
        return max(max(r["peak_rss_mb"].values()) for r in runs[fault])

    results = {
        "pause_recovery_s": median("stop", "recovery_s"),
        "pause_caught_up_s": median("stop", "caught_up_s"),
        "pause_stall_s": median("stop", "stall_s"),
        "pause_resume_gap_s": median("stop", "resume_gap_s"),
        "kill_stall_s": median("kill", "stall_s"),
        "pause_peak_rss_mb": worst_rss("stop"),
        "kill_peak_rss_mb": worst_rss("kill"),
    }
    stall_stop, stall_kill = results["pause_stall_s"], results["kill_stall_s"]
    return {
        "unit": "seconds; RSS in MiB",
        "params": {
            "writers": 4,
            "readers": 4,
            "pause_s": pause,
            "after_s": after,
            "full_rate": f">= {FULL:.0%} of the write rate over the 2 s before the fault, "
            f"over {WINDOW} s",
            "repetitions": reps,
        },
        "results": results,
        "ratios": {
            "pause_stall/kill_stall": None
            if stall_stop is None or not stall_kill
            else round(stall_stop / stall_kill, 3)
        },
        "runs": runs,
    }


def run(quick: bool, reps: int) -> dict[str, Any]:
    return run_uvloop(_main(quick, reps))  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--reps", type=int, default=1)
    args = parser.parse_args()
    print(json.dumps(run(args.quick, args.reps), indent=2))


if __name__ == "__main__":
    main()
