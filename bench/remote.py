"""Between two processes on loopback: remote tell and call, next to raw uvloop TCP + msgpack.

Every figure takes two OS processes. This process is the client, on a fresh uvloop loop per
repetition. The server is a process started for that one figure and repetition
(``python -m bench.remote --serve raw|ember``, its own uvloop loop) and ended by its pid once the
figure is taken. The server also stops by itself after ``--lifetime`` seconds, or as soon as its
stdin (a pipe from the client) closes, so it never outlives the run. With two CPUs or more, the
client and the server are pinned to one CPU each (see :func:`cpu_pair`).

Variants (unit in brackets):

- ``raw_tell`` [msg/s], baseline: one uvloop TCP connection carrying msgpack frames behind a u32
  big-endian length. The client packs ``("tell", i)`` with a reused ``msgpack.Packer``, writes
  1,000 frames per ``write`` and yields to the loop between writes (it waits while the transport
  is paused). The server splits each read into frames and ``unpackb``-s each one. A final
  ``("end", n)`` frame asks for the count; the clock stops at its answer.
- ``ember_tell`` [msg/s]: a producer actor on node ``a`` sends ``("tell", i)`` to a counter
  spawned on node ``b`` (``node.spawn("bench.remote:Counter", on="b")``) in bursts of 1,000,
  yielding between bursts (``send_wait`` if the queue to ``b`` is full), then calls the counter
  for its count. Same sender, so the call arrives after every message; the count must be ``n``.
- ``raw_call_1`` [round trips/s; p50 and p99 in µs], baseline: one request outstanding. Write one
  frame ``("call", i)``, wait for the echo.
- ``ember_call_1``: ``await node.call(pid, ("call", i))`` (default 5 s timeout) in a loop, to an
  echo actor spawned on ``b``.
- ``raw_call_64`` [calls/s], context: 64 coroutines, each with one request outstanding on one
  raw connection. The client writes each request at once; the server answers a read in one write.
- ``ember_call_64`` [calls/s]: 64 coroutines, each making sequential ``node.call``-s.

``python -m bench.remote --profile DIR [--variant NAME ...] [--quick]`` runs each variant once
with cProfile in both processes: ``DIR/<variant>.client.prof`` and ``DIR/<variant>.server.prof``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import os
import select
import signal
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import msgpack  # type: ignore[import-untyped]

import ember
from ember.transport._transport import parse_address

from ._util import assert_uvloop, interleaved, perf_counter, rates, ratio, run_uvloop, section
from ._util import goal as _goal

NAME = "remote"

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
COOKIE = "bench-remote"
BURST = 1000  # frames per write (raw) and messages per burst (Ember)
CONCURRENCY = 64
WARMUP = 200  # calls before the clock starts
NAME_REF = "bench.remote"  # what node b imports the actors from

_LENGTH = struct.Struct(">I")


# -- raw uvloop TCP + msgpack ---------------------------------------------------------------------


def _split(buf: bytearray, data: bytes, unpackb: Callable[[Any], Any]) -> list[Any]:
    """Decode the frames that ``data`` completes; keep an incomplete tail in ``buf``."""
    if buf:
        buf += data
        src: bytes | bytearray = buf
    else:
        src = data
    msgs = []
    pos = 0
    end = len(src)
    unpack_from = _LENGTH.unpack_from
    with memoryview(src) as view:
        while end - pos >= 4:
            (length,) = unpack_from(view, pos)
            stop = pos + 4 + length
            if stop > end:
                break
            msgs.append(unpackb(view[pos + 4 : stop]))
            pos = stop
    if src is buf:
        del buf[:pos]
    elif pos < end:
        buf += data[pos:]
    return msgs


def _frame(pack: Callable[[Any], bytes], msg: Any) -> bytes:
    payload = pack(msg)
    return _LENGTH.pack(len(payload)) + payload


class _RawServer(asyncio.Protocol):
    """Counts ``("tell", i)``, echoes ``("call", i)``, answers ``("end", n)`` with the count."""

    def __init__(self, conns: set[asyncio.Transport]) -> None:
        self.conns = conns
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.count = 0
        self.pack = msgpack.Packer().pack

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.conns.add(self.transport)  # type: ignore[arg-type]

    def connection_lost(self, exc: Exception | None) -> None:
        self.conns.discard(self.transport)  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        out: list[bytes] = []
        pack = self.pack
        header = _LENGTH.pack
        for msg in _split(self.buf, data, msgpack.unpackb):
            kind = msg[0]
            if kind == "tell":
                self.count += 1
            else:
                reply = pack(msg if kind == "call" else ("done", self.count))
                out.append(header(len(reply)))
                out.append(reply)
                if kind == "end":
                    self.count = 0
        if out:
            assert self.transport is not None
            self.transport.write(b"".join(out))


class _RawClient(asyncio.Protocol):
    """Resolves the future of each echoed call by its number; pauses with the transport."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.done: asyncio.Future[int] = loop.create_future()
        self.paused = False
        self.drained: asyncio.Future[None] | None = None
        self.closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        pending = self.pending
        for msg in _split(self.buf, data, msgpack.unpackb):
            if msg[0] == "done":
                self.done.set_result(msg[1])
            else:
                pending.pop(msg[1]).set_result(msg)

    def pause_writing(self) -> None:
        self.paused = True
        self.drained = self.loop.create_future()

    def resume_writing(self) -> None:
        self.paused = False
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closing:
            return
        error = ConnectionResetError(f"raw server connection lost: {exc!r}")
        for fut in [*self.pending.values(), self.done, self.drained]:
            if fut is not None and not fut.done():
                fut.set_exception(error)


@contextlib.asynccontextmanager
async def _raw_connection(port: int) -> Any:
    assert_uvloop()
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_connection(lambda: _RawClient(loop), HOST, port)
    try:
        yield transport, client
    finally:
        client.closing = True
        transport.close()


async def raw_tell(port: int, n: int, burst: int) -> dict[str, Any]:
    async with _raw_connection(port) as (transport, client):
        pack = msgpack.Packer().pack
        header = _LENGTH.pack
        write = transport.write
        t0 = perf_counter()
        sent = 0
        while sent < n:
            parts = []
            append = parts.append
            for i in range(sent, min(sent + burst, n)):
                payload = pack(("tell", i))
                append(header(len(payload)))
                append(payload)
            write(b"".join(parts))
            sent += burst
            if client.paused:
                await client.drained
            else:
                await asyncio.sleep(0)
        write(_frame(pack, ("end", n)))
        count = await client.done
        elapsed = perf_counter() - t0
    _check_count(count, n)
    return {"elapsed": elapsed}


async def raw_call(port: int, n: int, concurrency: int) -> dict[str, Any]:
    async with _raw_connection(port) as (transport, client):
        loop = asyncio.get_running_loop()
        pack = msgpack.Packer().pack
        header = _LENGTH.pack
        write = transport.write
        create = loop.create_future
        pending = client.pending
        lat: list[float] = []
        record = lat.append

        async def caller(first: int, count: int, timed: bool) -> None:
            for i in range(first, first + count):
                t = perf_counter()
                fut = create()
                pending[i] = fut
                payload = pack(("call", i))
                write(header(len(payload)) + payload)
                await fut
                if timed:
                    record(perf_counter() - t)

        await caller(-WARMUP, WARMUP, False)
        lat.clear()
        return await _timed_callers(caller, n, concurrency, lat)


# -- Ember ----------------------------------------------------------------------------------------


class Counter(ember.Actor):
    """Counts ``("tell", i)``; any other message is a call for the count."""

    def __init__(self) -> None:
        self.count = 0

    def receive(self, msg: Any) -> Any:
        if msg[0] == "tell":
            self.count += 1
            return None
        return self.count


class Echo(ember.Actor):
    async def receive(self, msg: Any) -> Any:
        return msg


class Producer(ember.Actor):
    """Sends ``n`` tells to ``dest`` in bursts, then returns ``dest``'s count (one call, ordered
    after the tells, since it comes from the same sender)."""

    async def receive(self, msg: Any) -> Any:
        dest, n, burst = msg
        send = ember.send
        node: ember.Node = ember.current()  # type: ignore[assignment]
        sent = 0
        while sent < n:
            for i in range(sent, min(sent + burst, n)):
                tell = ("tell", i)
                try:
                    send(dest, tell)
                except ember.QueueFull:
                    await node.send_wait(dest, tell)
            sent += burst
            await asyncio.sleep(0)
        return await ember.call(dest, ("count",), timeout=None)


@contextlib.asynccontextmanager
async def _ember_node(port: int) -> Any:
    assert_uvloop()
    async with ember.Node("a", cookie=COOKIE, connect=[f"b@{HOST}:{port}"]) as node:
        yield node


async def ember_tell(port: int, n: int, burst: int) -> dict[str, Any]:
    async with _ember_node(port) as node:
        counter = await node.spawn(f"{NAME_REF}:Counter", on="b")
        producer = await node.spawn(Producer)
        await node.call(counter, ("count",))  # warm the path; the counter still holds 0
        t0 = perf_counter()
        count = await node.call(producer, (counter, n, burst), timeout=None)
        elapsed = perf_counter() - t0
    _check_count(count, n)
    return {"elapsed": elapsed}


async def ember_call(port: int, n: int, concurrency: int) -> dict[str, Any]:
    async with _ember_node(port) as node:
        pid = await node.spawn(f"{NAME_REF}:Echo", on="b")
        call = node.call
        lat: list[float] = []
        record = lat.append

        async def caller(first: int, count: int, timed: bool) -> None:
            for i in range(first, first + count):
                t = perf_counter()
                await call(pid, ("call", i))
                if timed:
                    record(perf_counter() - t)

        await caller(-WARMUP, WARMUP, False)
        lat.clear()
        return await _timed_callers(caller, n, concurrency, lat)


# -- shared by the clients ------------------------------------------------------------------------


async def _timed_callers(
    caller: Callable[[int, int, bool], Coroutine[Any, Any, None]],
    n: int,
    concurrency: int,
    lat: list[float],
) -> dict[str, Any]:
    """Run ``n`` calls over ``concurrency`` callers; elapsed time and, for one caller, the
    latency percentiles."""
    gc.collect()
    timed = concurrency == 1
    each = n // concurrency
    t0 = perf_counter()
    if concurrency == 1:
        await caller(0, n, timed)
    else:
        await asyncio.gather(*(caller(k * each, each, timed) for k in range(concurrency)))
    elapsed = perf_counter() - t0
    out: dict[str, Any] = {"elapsed": elapsed}
    if lat:
        lat.sort()
        out["p50_us"] = lat[len(lat) // 2] * 1e6
        out["p99_us"] = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e6
    return out


def _check_count(count: int, n: int) -> None:
    if count != n:
        raise RuntimeError(f"the receiver counted {count} messages, {n} were sent")


# -- the server process ---------------------------------------------------------------------------


def serve(mode: str, lifetime: float) -> None:
    """The server process: print ``READY <port>`` and serve until SIGTERM/SIGINT, EOF on stdin
    or ``lifetime`` seconds, whichever comes first."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.call_later(lifetime, stop.set)
        stdin = sys.stdin.fileno()

        def on_stdin() -> None:
            if not os.read(stdin, 4096):  # the client closed the pipe (or died)
                loop.remove_reader(stdin)
                stop.set()

        loop.add_reader(stdin, on_stdin)
        if mode == "raw":
            conns: set[asyncio.Transport] = set()
            server = await loop.create_server(lambda: _RawServer(conns), HOST, 0)
            _announce(server.sockets[0].getsockname()[1])
            await stop.wait()
            server.close()
            for transport in list(conns):
                transport.close()
        else:
            async with ember.Node("b", listen=f"{HOST}:0", cookie=COOKIE) as node:
                assert node.address is not None
                _announce(parse_address(node.address)[1])
                await stop.wait()

    ember.run(main)


def _announce(port: int) -> None:
    print(f"READY {port}", flush=True)


@contextlib.contextmanager
def server_process(
    mode: str, lifetime: float, profile: Path | None = None, cpu: int | None = None
) -> Iterator[tuple[int, int]]:
    """Start a server process (pinned to ``cpu`` if given); yield its port and pid; end it by
    its pid (SIGTERM, then SIGKILL)."""
    cmd = [sys.executable]
    if profile is not None:
        cmd += ["-m", "cProfile", "-o", str(profile)]
    cmd += ["-m", "bench.remote", "--serve", mode, "--lifetime", str(lifetime)]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        if cpu is not None:
            os.sched_setaffinity(proc.pid, {cpu})
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30.0)
        line = proc.stdout.readline().decode() if ready else ""
        if not line.startswith("READY "):
            raise RuntimeError(f"server ({mode}) did not start: {line!r}, exit {proc.poll()}")
        yield int(line.split()[1]), proc.pid
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30.0)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def cpu_pair() -> tuple[int, int] | None:
    """Two CPUs to pin the client and the server to, one each; None with fewer than two.

    Unpinned, the scheduler sometimes puts both processes on one CPU, where a loopback round
    trip costs a fifth of what it costs across CPUs (no cross-CPU wake-up), so call figures
    jump between two modes from one run to the next. Pinned, every figure is the cross-CPU one.
    """
    if not hasattr(os, "sched_getaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    return (cpus[0], cpus[1]) if len(cpus) >= 2 else None


@contextlib.contextmanager
def pinned(cpu: int | None) -> Iterator[None]:
    """Pin this thread to ``cpu`` for the block (nothing if None)."""
    if cpu is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


# -- the benchmark --------------------------------------------------------------------------------

ClientFn = Callable[[int], Coroutine[Any, Any, dict[str, Any]]]


def _variants(quick: bool) -> dict[str, tuple[str, int, ClientFn]]:
    """name -> (server mode, operations counted, client coroutine given the port)."""
    tells = 50_000 if quick else 1_000_000
    calls = 2_000 if quick else 20_000
    calls64 = 12_800 if quick else 256_000
    return {
        "raw_tell": ("raw", tells, lambda port: raw_tell(port, tells, BURST)),
        "ember_tell": ("ember", tells, lambda port: ember_tell(port, tells, BURST)),
        "raw_call_1": ("raw", calls, lambda port: raw_call(port, calls, 1)),
        "ember_call_1": ("ember", calls, lambda port: ember_call(port, calls, 1)),
        "raw_call_64": ("raw", calls64, lambda port: raw_call(port, calls64, CONCURRENCY)),
        "ember_call_64": ("ember", calls64, lambda port: ember_call(port, calls64, CONCURRENCY)),
    }


def _lifetime(quick: bool) -> float:
    return 60.0 if quick else 300.0


def _busy_cpu_s() -> float | None:
    """CPU seconds spent busy on the whole machine so far (None where /proc/stat is missing)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _process_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _measure(mode: str, client: ClientFn, lifetime: float, into: list[dict[str, Any]]) -> float:
    """One figure: a server process, this process as the client, each pinned to its CPU. Also
    notes how much CPU other processes used meanwhile (``other_cpu``, in CPUs)."""

    async def bounded(port: int) -> dict[str, Any]:
        async with asyncio.timeout(lifetime):
            return await client(port)

    cpus = cpu_pair()
    with (
        server_process(mode, lifetime, cpu=cpus and cpus[1]) as (port, pid),
        pinned(cpus and cpus[0]),
    ):
        busy0, mine0, t0 = _busy_cpu_s(), time.process_time() + _process_cpu_s(pid), perf_counter()
        out = run_uvloop(bounded(port))
        busy1, mine1, t1 = _busy_cpu_s(), time.process_time() + _process_cpu_s(pid), perf_counter()
    if busy0 is not None and busy1 is not None:
        out["other_cpu"] = max(0.0, (busy1 - busy0 - (mine1 - mine0)) / (t1 - t0))
    into.append(out)
    return float(out["elapsed"])


def run(quick: bool, reps: int) -> dict[str, Any]:
    variants = _variants(quick)
    lifetime = _lifetime(quick)
    outs: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    samples = interleaved(
        {
            name: (
                lambda mode=mode, client=client, into=outs[name]: _measure(
                    mode, client, lifetime, into
                )
            )
            for name, (mode, _, client) in variants.items()
        },
        reps,
    )
    results: dict[str, float] = {}
    for name, (_, count, _) in variants.items():
        results.update(rates({name: samples[name]}, count))
    for name in ("raw_call_1", "ember_call_1"):
        for key in ("p50_us", "p99_us"):
            results[f"{name}_{key}"] = statistics.median(o[key] for o in outs[name])
    out = section(
        unit="msg/s (tell), round trips/s (call_1), calls/s (call_64); *_us: microseconds",
        params={
            "tells": variants["raw_tell"][1],
            "calls_1": variants["raw_call_1"][1],
            "calls_64": variants["raw_call_64"][1],
            "burst": BURST,
            "concurrency": CONCURRENCY,
            "warmup_calls": WARMUP,
            "repetitions": reps,
            "processes": "client here, server in its own process per figure and repetition",
            "cpus_client_server": cpu_pair(),
            "call_timeout_s": 5.0,
        },
        samples=samples,
        results=results,
        ratios={
            "ember_tell/raw_tell": ratio(results["ember_tell"], results["raw_tell"]),
            "ember_call_1/raw_call_1": ratio(results["ember_call_1"], results["raw_call_1"]),
            "ember_call_1_p50/raw_call_1_p50": ratio(
                results["ember_call_1_p50_us"], results["raw_call_1_p50_us"]
            ),
            "ember_call_1_p99/raw_call_1_p99": ratio(
                results["ember_call_1_p99_us"], results["raw_call_1_p99_us"]
            ),
            "ember_call_64/raw_call_64": ratio(results["ember_call_64"], results["raw_call_64"]),
        },
    )
    # CPUs busy with other processes during each figure (worst repetition): a figure taken
    # while the machine was shared (more than about 0.1) is not to be trusted.
    out["other_cpu"] = {
        name: round(max(o.get("other_cpu", 0.0) for o in runs), 2) for name, runs in outs.items()
    }
    out["goals"] = goals_of(out["results"])  # from the rounded figures, as printed
    return out


def goals_of(results: dict[str, float] | None) -> dict[str, Any]:
    """Each goal of issue 3 with its value, target and pass (None: not measured)."""
    r = results or {}

    def rel(a: str, b: str) -> float | None:
        return ratio(r.get(a), r.get(b))

    return {
        "remote_tell_vs_raw": _goal(
            "remote tell >= 0.3x the raw batched uvloop+msgpack stream (650 k msg/s at the anchor)",
            rel("ember_tell", "raw_tell"),
            0.3,
            True,
        ),
        "remote_call_vs_raw": _goal(
            "remote call, 1 outstanding >= 0.7x raw request/response",
            rel("ember_call_1", "raw_call_1"),
            0.7,
            True,
        ),
        "remote_call_p50_vs_raw": _goal(
            "remote call p50, 1 outstanding <= 1.5x raw p50",
            rel("ember_call_1_p50_us", "raw_call_1_p50_us"),
            1.5,
            False,
        ),
        "remote_call_64_rate": _goal(
            "remote call, 64 outstanding >= 100,000 calls/s",
            r.get("ember_call_64"),
            100_000,
            True,
        ),
    }


def goals(benchmarks: dict[str, Any]) -> dict[str, Any]:
    """The goals of issue 3, for ``python -m bench`` (``pass`` is None if not run)."""
    sec = benchmarks.get(NAME)
    return goals_of(None if sec is None else sec["results"])


# -- command line ---------------------------------------------------------------------------------


def _profile(out_dir: Path, names: list[str], quick: bool) -> None:
    """Each variant once, cProfile in both processes."""
    out_dir.mkdir(parents=True, exist_ok=True)
    variants = _variants(quick)
    lifetime = _lifetime(quick)
    for name in names:
        mode, count, client = variants[name]
        prof = cProfile.Profile()
        cpus = cpu_pair()
        with (
            server_process(mode, lifetime, out_dir / f"{name}.server.prof", cpus and cpus[1]) as (
                port,
                _,
            ),
            pinned(cpus and cpus[0]),
        ):
            prof.enable()
            out = run_uvloop(client(port))
            prof.disable()
        prof.dump_stats(out_dir / f"{name}.client.prof")
        rate = count / out["elapsed"]
        extra = {k: round(v, 1) for k, v in out.items() if k.endswith("_us")}
        print(f"{name}: {rate:,.0f}/s under cProfile {extra or ''}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.remote", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--serve", choices=["raw", "ember"], help=argparse.SUPPRESS)
    parser.add_argument("--lifetime", type=float, default=300.0, help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="small counts")
    parser.add_argument("--reps", type=int, default=3, help="repetitions per figure (median)")
    parser.add_argument("--profile", type=Path, metavar="DIR", help="cProfile both processes")
    parser.add_argument("--variant", action="append", help="with --profile: which variants")
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve, args.lifetime)
        return 0
    if args.profile:
        _profile(args.profile, args.variant or list(_variants(args.quick)), args.quick)
        return 0
    import json

    print(json.dumps(run(args.quick, args.reps), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
