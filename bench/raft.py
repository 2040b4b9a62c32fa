"""Raft writes between processes: ``python -m bench --only raft`` (or ``python -m bench.raft``).

Three node processes on loopback (``ember node start``, durable storage: SQLite WAL with
``synchronous=FULL``, one fsync per batch) hold a ``KVStateMachine`` group; this process joins
the mesh as a client node with no member and writes 100-byte values with 1, 16, 64 and 256
concurrent writers (committed and applied writes/s, p50/p99 latency). Elections under that load
without any fault are counted (terms before and after). Failover: a writer keeps writing while
the leader's process is SIGKILLed; the time from the kill to the next acknowledged write, median
over trials (the killed node restarts from disk between trials).

PySyncObj (the ``bench`` extra) is measured by the same script: three processes, each a
``SyncObj`` with a replicated dict and a small msgpack-over-TCP front end; the client writes to
the leader's front end. It never fsyncs and runs with ``appendEntriesUseBatch=False`` (its
default batching holds each write ~100 ms), as in ``ANCHORS.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgpack

from bench._util import goal, ratio, run_uvloop

WRITERS = (1, 16, 64, 256)
VALUE = b"x" * 100
KEYS_PER_WRITER = 64
perf = time.perf_counter

WriteFn = Callable[[str, bytes], Awaitable[None]]


def _log(*args: Any) -> None:
    print("[raft]", *args, file=sys.stderr, flush=True)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def load(write: WriteFn, writers: int, duration: float) -> dict[str, float]:
    """``writers`` tasks writing back to back for ``duration`` seconds."""
    latencies: list[float] = []
    stop_at = perf() + duration

    async def writer(w: int) -> None:
        j = 0
        while perf() < stop_at:
            t = perf()
            await write(f"w{w}-{j % KEYS_PER_WRITER}", VALUE)
            latencies.append(perf() - t)
            j += 1

    t0 = perf()
    await asyncio.gather(*(writer(w) for w in range(writers)))
    elapsed = perf() - t0
    return {
        "writes_per_s": len(latencies) / elapsed,
        "p50_ms": _percentile(latencies, 0.5) * 1e3,
        "p99_ms": _percentile(latencies, 0.99) * 1e3,
        "writes": len(latencies),
    }


async def measure_load(
    write: WriteFn, durations: tuple[float, float], reps: int
) -> dict[str, dict[str, Any]]:
    """Each writer count ``reps`` times (round-robin over counts), median rate per count."""
    warmup, duration = durations
    await load(write, 16, warmup)
    runs: dict[int, list[dict[str, float]]] = {w: [] for w in WRITERS}
    for _ in range(reps):
        for w in WRITERS:
            runs[w].append(await load(write, w, duration))
            _log(f"{w} writers: {runs[w][-1]['writes_per_s']:.0f}/s")
    out = {}
    for w, rs in runs.items():
        best = sorted(rs, key=lambda r: r["writes_per_s"])[len(rs) // 2]
        out[str(w)] = {
            "writes_per_s": round(best["writes_per_s"], 1),
            "p50_ms": round(best["p50_ms"], 3),
            "p99_ms": round(best["p99_ms"], 3),
            "samples_writes_per_s": [round(r["writes_per_s"], 1) for r in rs],
        }
    return out


# --- Ember ---------------------------------------------------------------------------------------


async def ember_bench(quick: bool, reps: int, workdir: Path) -> dict[str, Any]:
    from ember.consensus import Cluster, ClusterError
    from ember.testing._localcluster import LocalCluster

    procs = LocalCluster(
        3, workdir=workdir / "ember", discovery="seeds", cluster=f"b{secrets.token_hex(4)}"
    )
    await procs.start()
    client = await procs.client("bench-client", 60.0)
    try:
        members = ["n1", "n2", "n3"]
        cluster = await Cluster.start(nodes=members, name="bench", node=client)
        await cluster.wait_for_leader(timeout=60)

        async def write(key: str, value: bytes) -> None:
            await cluster.write({"key": key, "value": value}, timeout=30)

        async def terms() -> tuple[int, int]:
            sts = [await cluster.status(m) for m in members]
            return max(s["term"] for s in sts), sum(s["elections"] for s in sts)

        term0, elections0 = await terms()
        results = await measure_load(write, (0.5, 1.0) if quick else (2.0, 3.0), reps)
        term1, elections1 = await terms()
        failovers = []
        for trial in range(1 if quick else 3):
            failovers.append(await ember_failover(procs, cluster, members, ClusterError))
            _log(f"failover {trial}: {failovers[-1]:.3f} s")
        return {
            "load": results,
            "elections_under_load": elections1 - elections0,
            "term_changes_under_load": term1 - term0,
            "failover_s": [round(f, 3) for f in failovers],
            "failover_median_s": round(statistics.median(failovers), 3),
        }
    finally:
        await client.stop()
        await procs.stop()


async def ember_failover(
    procs: Any, cluster: Any, members: list[str], errors: type[Exception]
) -> float:
    """SIGKILL the leader's process while a writer writes; seconds from the kill to the next
    acknowledged write. Then restart the killed node and wait until it caught up."""
    leader = await cluster.wait_for_leader(timeout=60)
    loop = asyncio.get_running_loop()
    recovered: asyncio.Future[float] = loop.create_future()
    killed_at: list[float] = []
    last_key = ""

    async def writer() -> None:
        nonlocal last_key
        j = 0
        while not recovered.done():
            key = f"f{j}"
            try:
                await cluster.write({"key": key, "value": VALUE}, request_id=key, timeout=2.0)
            except (errors, TimeoutError):
                await asyncio.sleep(0.005)
                continue
            last_key = key
            j += 1
            if killed_at and not recovered.done():
                recovered.set_result(perf() - killed_at[0])

    task = asyncio.ensure_future(writer())
    await asyncio.sleep(0.5)
    killed_at.append(perf())
    procs.kill(leader)
    try:
        async with asyncio.timeout(60):
            elapsed = await recovered
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    await procs.wait(leader)
    others = [p for n, p in procs.nodes.items() if n != leader]
    await procs.start_node(leader, connect=others)
    async with asyncio.timeout(60):
        while True:
            try:
                got = await cluster.read(last_key, consistency="stale", member=leader, timeout=2)
                if got == VALUE:
                    break
            except (errors, TimeoutError):
                pass
            await asyncio.sleep(0.05)
    return elapsed


# --- PySyncObj -----------------------------------------------------------------------------------


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def pysyncobj_serve(self_port: int, partner_ports: list[int], front_port: int) -> None:
    """A PySyncObj member with a msgpack-over-TCP front end: ``[id, "set", k, v]`` and
    ``[id, "leader"]``; answers ``[id, ok, value]``."""
    from pysyncobj import SyncObj, SyncObjConf, replicated

    class KV(SyncObj):  # type: ignore[misc]
        def __init__(self) -> None:
            conf = SyncObjConf(appendEntriesUseBatch=False, dynamicMembershipChange=False)
            super().__init__(
                f"127.0.0.1:{self_port}", [f"127.0.0.1:{p}" for p in partner_ports], conf
            )
            self.data: dict[Any, Any] = {}

        @replicated  # type: ignore[misc]
        def set(self, key: Any, value: Any) -> None:
            self.data[key] = value

    kv = KV()

    async def main() -> None:
        loop = asyncio.get_running_loop()

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            unpacker = msgpack.Unpacker()

            def reply(rid: int, ok: bool, value: Any) -> None:
                writer.write(msgpack.packb((rid, ok, value)))

            while data := await reader.read(1 << 16):
                unpacker.feed(data)
                for req in unpacker:
                    rid, op = req[0], req[1]
                    if op == "leader":
                        leader = kv._getLeader()
                        reply(rid, True, None if leader is None else str(leader.address))
                    else:

                        def done(result: Any, err: Any, rid: int = rid) -> None:
                            loop.call_soon_threadsafe(reply, rid, err == 0, err)

                        kv.set(req[2], req[3], callback=done)

        server = await asyncio.start_server(serve, "127.0.0.1", front_port)
        print("ready", flush=True)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


class _FrontClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.ids = 0
        self.task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        unpacker = msgpack.Unpacker()
        while data := await self.reader.read(1 << 16):
            unpacker.feed(data)
            for rid, ok, value in unpacker:
                fut = self.pending.pop(rid)
                if ok:
                    fut.set_result(value)
                else:
                    fut.set_exception(RuntimeError(f"pysyncobj error {value}"))

    async def request(self, *args: Any) -> Any:
        self.ids += 1
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[self.ids] = fut
        self.writer.write(msgpack.packb((self.ids, *args)))
        return await fut

    async def close(self) -> None:
        self.writer.close()
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def pysyncobj_bench(quick: bool, reps: int) -> dict[str, Any]:
    raft_ports = _free_ports(3)
    front_ports = _free_ports(3)
    procs = []
    for k in range(3):
        spec = [raft_ports[k], [p for p in raft_ports if p != raft_ports[k]], front_ports[k]]
        procs.append(
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.raft",
                "--pysyncobj-serve",
                json.dumps(spec),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
            )
        )
    clients: list[_FrontClient] = []
    try:
        for p in procs:
            assert p.stdout is not None
            await p.stdout.readline()
        for port in front_ports:
            clients.append(_FrontClient(*await asyncio.open_connection("127.0.0.1", port)))
        async with asyncio.timeout(60):
            while (leader := await clients[0].request("leader")) is None:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        front = clients[raft_ports.index(int(leader.rpartition(":")[2]))]

        async def write(key: str, value: bytes) -> None:
            await front.request("set", key, value)

        return {"load": await measure_load(write, (0.5, 1.0) if quick else (2.0, 3.0), reps)}
    finally:
        for c in clients:
            await c.close()
        for p in procs:
            p.send_signal(signal.SIGKILL)
            await p.wait()


# --- the benchmark -------------------------------------------------------------------------------


async def _main(quick: bool, reps: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-raft-") as tmp:
        ember_out = await ember_bench(quick, reps, Path(tmp))
    try:
        import pysyncobj  # noqa: F401

        pso: dict[str, Any] | None = await pysyncobj_bench(quick, reps)
    except ImportError:
        pso = None
    results: dict[str, float] = {}
    for w, r in ember_out["load"].items():
        results[f"ember_{w}_writers"] = r["writes_per_s"]
        results[f"ember_{w}_writers_p50_ms"] = r["p50_ms"]
        results[f"ember_{w}_writers_p99_ms"] = r["p99_ms"]
    results["ember_failover_median_s"] = ember_out["failover_median_s"]
    results["ember_elections_under_load"] = ember_out["elections_under_load"]
    ratios: dict[str, float | None] = {}
    if pso is not None:
        for w, r in pso["load"].items():
            results[f"pysyncobj_{w}_writers"] = r["writes_per_s"]
            results[f"pysyncobj_{w}_writers_p50_ms"] = r["p50_ms"]
            results[f"pysyncobj_{w}_writers_p99_ms"] = r["p99_ms"]
            ratios[f"ember/pysyncobj_{w}_writers"] = ratio(
                ember_out["load"][w]["writes_per_s"], r["writes_per_s"]
            )
    anchors = {"1": 1071.0, "16": 3848.0, "64": 5507.0, "256": 4828.0}
    for w, rate in anchors.items():
        ratios[f"ember/etcd_anchor_{w}_writers"] = ratio(ember_out["load"][w]["writes_per_s"], rate)
    return {
        "unit": "writes/s (committed and applied, acknowledged to the client); *_ms latency; "
        "failover in seconds",
        "params": {
            "writers": list(WRITERS),
            "value_bytes": len(VALUE),
            "repetitions": reps,
            "durations_s": [0.5, 1.0] if quick else [2.0, 3.0],
            "ember": "3 node processes (durable, fsync per batch), client node in this process",
            "pysyncobj": "3 processes, no fsync, appendEntriesUseBatch=False, TCP front end",
            "failover_trials": len(ember_out["failover_s"]),
        },
        "results": results,
        "ratios": ratios,
        "ember": ember_out,
        "pysyncobj": pso,
        "notes": {
            "anchors": "etcd 3.4 on this machine: 1,071/s (1 writer, p50 0.88 ms), 3,848/s (16), "
            "5,507/s (64, p99 28 ms), 4,828/s (256), failover 1.10 s; see ANCHORS.md",
        },
    }


def run(quick: bool, reps: int) -> dict[str, Any]:
    return run_uvloop(_main(quick, reps))  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--pysyncobj-serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pysyncobj_serve:
        self_port, partners, front = json.loads(args.pysyncobj_serve)
        with contextlib.suppress(KeyboardInterrupt):
            pysyncobj_serve(self_port, partners, front)
        return
    print(json.dumps(run(args.quick, 1 if args.quick else args.reps), indent=2))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()


def goals(benchmarks: dict[str, Any]) -> dict[str, Any]:
    """The goals of issue 5, for ``python -m bench`` (``pass`` is None if not run)."""
    sec = benchmarks.get("raft")
    r: dict[str, Any] = {} if sec is None else sec["results"]
    p99_64 = r.get("ember_64_writers_p99_ms")
    return {
        "raft_64_writers": goal(
            "64 concurrent writers >= etcd's 5,500 writes/s", r.get("ember_64_writers"), 5500, True
        ),
        "raft_64_writers_p99": goal("64 writers: p99 < 50 ms", p99_64, 50, False),
        "raft_sequential_p50": goal(
            "1 writer: p50 < 1.5 ms", r.get("ember_1_writers_p50_ms"), 1.5, False
        ),
        "raft_failover": goal(
            "failover median (SIGKILL of the leader) < 1.1 s",
            r.get("ember_failover_median_s"),
            1.1,
            False,
        ),
        "raft_no_spurious_elections": goal(
            "no election under load without a fault", r.get("ember_elections_under_load"), 0, False
        ),
    }
