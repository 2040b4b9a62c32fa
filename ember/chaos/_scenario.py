"""Scenarios: what a chaos run does, as frozen dataclasses, loaded from TOML.

A scenario names the cluster, the workloads, the faults (on a timeline or from a generator),
the final phase and the checks. :func:`load_scenario` reads a file with ``tomllib`` and
validates every key: a mistake raises :class:`ScenarioError` naming the file, the line and the
key. ``docs/chaos.md`` documents every key.
"""

from __future__ import annotations

import difflib
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from .._errors import UsageError
from ._toml import key_lines, line_of, show_path

__all__ = [
    "FAULTS",
    "GROUPS",
    "PARTITION_MODES",
    "TARGETS",
    "WORKLOADS",
    "ChecksSpec",
    "ClusterSpec",
    "FaultSpec",
    "GeneratorSpec",
    "Scenario",
    "ScenarioError",
    "WorkloadSpec",
    "load_scenario",
    "parse_scenario",
]

WORKLOADS: Final = ("kv", "names", "pg", "calls", "supervisors", "contracts")
FAULTS: Final = (
    "kill",
    "pause",
    "partition",
    "delay",
    "loss",
    "clock-skew",
    "slow-disk",
    "failing-disk",
    "add-node",
    "remove-node",
    "restart",
)
TARGETS: Final = ("one", "minority", "majority", "all", "leader", "followers", "none")
PARTITION_MODES: Final = ("isolate", "halves", "ring", "bridge")
GROUPS: Final = ("kv", "contracts")
"""Whose leader ``target = "leader"`` (and ``followers``) means: the KV group's, or the
contracts store's (``ember.contracts``)."""
_MIXES: Final[dict[str, dict[str, float]]] = {
    "kv": {"read": 0.5, "write": 0.3, "cas": 0.2},
    "names": {"register": 0.4, "unregister": 0.2, "whereis": 0.4},
    "pg": {"join": 0.4, "leave": 0.3, "members": 0.3},
    "calls": {"call": 1.0},
    "supervisors": {"crash": 0.4, "kill": 0.4, "count": 0.2},
    "contracts": {"start": 0.35, "deliver": 0.45, "status": 0.2},
}
_MAX_NODES: Final = 9


class ScenarioError(UsageError):
    """A scenario file is malformed; ``path``, ``line`` and ``key`` say where (line may be
    None when the key is missing)."""

    def __init__(self, message: str, *, path: str, line: int | None, key: str) -> None:
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {key}: {message}" if key else f"{where}: {message}")
        self.path = path
        self.line = line
        self.key = key


@dataclass(frozen=True, kw_only=True)
class ClusterSpec:
    """The cluster under test.

    ``nodes``: how many nodes (1..9), named ``n1``... ``profile``: the mesh timing profile
    (``local``, ``lan``, ``wan``). ``durable``: Raft logs on disk, so a killed node restarts
    with its data (else it comes back empty and catches up from the others). ``discovery``:
    how node processes find each other, ``seeds`` (through the first node) or ``mdns``; the
    sim driver's nodes always use the simulated network's discovery, its stand-in for mDNS.
    """

    nodes: int = 3
    profile: str = "local"
    durable: bool = True
    discovery: str = "seeds"


@dataclass(frozen=True, kw_only=True)
class WorkloadSpec:
    """One workload: ``clients`` concurrent clients issuing operations of ``kind`` for
    ``duration`` seconds, at ``rate`` operations per second in all (None: each client as fast
    as its operations complete), each waiting at most ``timeout`` seconds.

    ``keys`` is how many keys (names, groups) the clients share; ``mix`` the weights of the
    operations (``read``/``write``/``cas`` for kv; ``register``/``unregister``/``whereis``
    for names; ``join``/``leave``/``members`` for pg; ``call`` for calls;
    ``crash``/``kill``/``count`` for supervisors; ``start``/``deliver``/``status`` for
    contracts); ``tier`` the name tier (names workload: ``consistent`` or ``eventual``).
    """

    kind: str
    clients: int = 4
    rate: float | None = 50.0
    duration: float = 20.0
    keys: int = 5
    timeout: float = 2.0
    mix: Mapping[str, float] = field(default_factory=dict)
    tier: str = "consistent"


@dataclass(frozen=True, kw_only=True)
class FaultSpec:
    """One fault. On a timeline it starts ``at`` seconds into the workload; from a generator,
    whenever the generator picks it. It ends after ``duration`` seconds (None: at the final
    heal), when it is undone: a killed node restarts, a paused one continues, a partition
    heals, delay and loss stop, a clock runs true again, a disk is fast again.

    ``target`` says which nodes: ``one``, ``minority``, ``majority``, ``all``, ``leader``,
    ``followers``, ``none``, or a list of node names. ``mode`` (partitions): ``isolate`` (the
    target from the rest), ``halves``, ``ring`` (each node sees only its neighbours: majorities
    that overlap) or ``bridge`` (two halves and one node that sees both). ``delay`` is a
    ``[low, high]`` range in seconds (delay), ``probability`` a loss rate (loss) or error rate
    (failing-disk), ``rate`` a clock's speed (clock-skew: 1.5 runs 50% fast), ``latency``
    seconds per disk write (slow-disk). ``group`` whose leader ``leader`` and ``followers``
    mean: the KV group's (``kv``) or the contracts store's (``contracts``).
    """

    fault: str
    target: str | tuple[str, ...] = "one"
    group: str = "kv"
    at: float | None = None
    duration: float | None = None
    mode: str = "isolate"
    delay: tuple[float, float] = (0.05, 0.2)
    probability: float = 0.2
    rate: float = 1.5
    latency: float = 0.1


@dataclass(frozen=True, kw_only=True)
class GeneratorSpec:
    """Faults drawn at random: every ``interval`` seconds (from ``start``) the generator
    picks one of ``faults`` (a fault template each, without ``at``), runs it for its duration
    and waits ``interval`` before the next."""

    faults: tuple[FaultSpec, ...]
    interval: float = 5.0
    start: float = 2.0


@dataclass(frozen=True, kw_only=True)
class ChecksSpec:
    """What to check at the end. ``linearizable`` (kv), ``lost_writes`` (kv),
    ``unique_names`` (names: every node's view alike within ``names_within`` seconds of the
    heal, no consistent name held twice), ``pg_converge`` (pg: views equal within
    ``pg_within`` seconds of the heal), ``supervisors`` (supervisors: every tree back to full
    strength within ``supervisors_within`` seconds of the heal), ``contracts`` (contracts:
    every acknowledged run completes once with the right result; the final phase waits at
    most ``contracts_within`` seconds for the runs to end), ``logs`` (no tracebacks;
    ``logs_allow``: regular expressions of accepted lines), ``rss_limit_mb`` (None: no
    check), ``max_unavailable`` (seconds without a successful write; None: reported, not
    judged), ``budget`` (seconds for the linearizability search)."""

    linearizable: bool = True
    lost_writes: bool = True
    unique_names: bool = True
    names_within: float = 20.0
    pg_converge: bool = True
    pg_within: float = 10.0
    supervisors: bool = True
    supervisors_within: float = 10.0
    contracts: bool = True
    contracts_within: float = 60.0
    logs: bool = True
    logs_allow: tuple[str, ...] = ()
    rss_limit_mb: float | None = 500.0
    max_unavailable: float | None = None
    budget: float = 60.0


@dataclass(frozen=True, kw_only=True)
class Scenario:
    """A whole chaos scenario; ``settle`` is how long the final phase waits after healing
    everything before the final reads."""

    name: str
    description: str = ""
    seed: int = 0
    cluster: ClusterSpec = field(default_factory=ClusterSpec)
    workloads: tuple[WorkloadSpec, ...] = ()
    timeline: tuple[FaultSpec, ...] = ()
    generator: GeneratorSpec | None = None
    settle: float = 5.0
    checks: ChecksSpec = field(default_factory=ChecksSpec)
    path: str | None = None

    @property
    def duration(self) -> float:
        """How long the workload phase lasts: the longest workload."""
        return max((w.duration for w in self.workloads), default=0.0)

    def faults(self) -> tuple[str, ...]:
        """Every fault kind the scenario may inject."""
        kinds = [f.fault for f in self.timeline]
        if self.generator is not None:
            kinds += [f.fault for f in self.generator.faults]
        return tuple(dict.fromkeys(kinds))


class _Reader:
    """Reads one table of the document, checking types and unknown keys, with positions."""

    def __init__(self, path: str, lines: dict[tuple[str | int, ...], int]) -> None:
        self.path = path
        self.lines = lines

    def error(self, where: tuple[str | int, ...], message: str) -> ScenarioError:
        return ScenarioError(
            message, path=self.path, line=line_of(self.lines, where), key=show_path(where)
        )

    def table(
        self, data: Any, where: tuple[str | int, ...], known: tuple[str, ...]
    ) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise self.error(where, f"must be a table, not {type(data).__name__}")
        for key in data:
            if key not in known:
                near = difflib.get_close_matches(key, known, n=1)
                hint = f" (did you mean {near[0]!r}?)" if near else f" (known: {', '.join(known)})"
                raise self.error((*where, key), f"unknown key{hint}")
        return data

    def number(
        self,
        data: dict[str, Any],
        where: tuple[str | int, ...],
        key: str,
        default: float | None,
        *,
        low: float = 0.0,
        high: float = math.inf,
        integer: bool = False,
        positive: bool = False,
    ) -> Any:
        if key not in data:
            return default
        value = data[key]
        kind = "an integer" if integer else "a number"
        ok_type = isinstance(value, int) if integer else isinstance(value, int | float)
        if isinstance(value, bool) or not ok_type or not math.isfinite(value):
            raise self.error((*where, key), f"must be {kind}, not {value!r}")
        if not low <= value <= high or (positive and value <= 0):
            span = (
                f"> {low}" if positive else f"in {low}..{high}" if high < math.inf else f">= {low}"
            )
            raise self.error((*where, key), f"must be {span}, not {value!r}")
        return value

    def choice(
        self,
        data: dict[str, Any],
        where: tuple[str | int, ...],
        key: str,
        default: str,
        options: tuple[str, ...],
    ) -> str:
        value = data.get(key, default)
        if value not in options:
            raise self.error((*where, key), f"must be one of {', '.join(options)}, not {value!r}")
        return str(value)

    def boolean(
        self, data: dict[str, Any], where: tuple[str | int, ...], key: str, default: bool
    ) -> bool:
        value = data.get(key, default)
        if not isinstance(value, bool):
            raise self.error((*where, key), f"must be true or false, not {value!r}")
        return value

    def text(
        self, data: dict[str, Any], where: tuple[str | int, ...], key: str, default: str
    ) -> str:
        value = data.get(key, default)
        if not isinstance(value, str):
            raise self.error((*where, key), f"must be a string, not {value!r}")
        return value


def _cluster(r: _Reader, data: Any) -> ClusterSpec:
    where = ("cluster",)
    t = r.table(data, where, ("nodes", "profile", "durable", "discovery"))
    return ClusterSpec(
        nodes=r.number(t, where, "nodes", 3, low=1, high=_MAX_NODES, integer=True),
        profile=r.choice(t, where, "profile", "local", ("local", "lan", "wan")),
        durable=r.boolean(t, where, "durable", True),
        discovery=r.choice(t, where, "discovery", "seeds", ("seeds", "mdns")),
    )


def _workload(r: _Reader, data: Any, where: tuple[str | int, ...]) -> WorkloadSpec:
    t = r.table(
        data, where, ("kind", "clients", "rate", "duration", "keys", "timeout", "mix", "tier")
    )
    if "kind" not in t:
        raise r.error((*where, "kind"), f"missing (one of {', '.join(WORKLOADS)})")
    kind = r.choice(t, where, "kind", "kv", WORKLOADS)
    mix = dict(_MIXES[kind])
    if "mix" in t:
        given = r.table(t["mix"], (*where, "mix"), tuple(_MIXES[kind]))
        for op in given:
            mix[op] = r.number(given, (*where, "mix"), op, 0.0)
        if not any(mix.values()):
            raise r.error((*where, "mix"), "needs at least one operation with a weight > 0")
    rate = t.get("rate", 50.0)
    return WorkloadSpec(
        kind=kind,
        clients=r.number(t, where, "clients", 4, low=1, high=256, integer=True),
        rate=None if rate == 0 else r.number(t, where, "rate", 50.0, positive=True),
        duration=r.number(t, where, "duration", 20.0, positive=True),
        keys=r.number(t, where, "keys", 5, low=1, high=10_000, integer=True),
        timeout=r.number(t, where, "timeout", 2.0, positive=True),
        mix=mix,
        tier=r.choice(t, where, "tier", "consistent", ("consistent", "eventual")),
    )


_FAULT_KEYS: Final = (
    "fault",
    "target",
    "group",
    "at",
    "duration",
    "mode",
    "delay",
    "probability",
    "rate",
    "latency",
)


def _fault(r: _Reader, data: Any, where: tuple[str | int, ...], timed: bool) -> FaultSpec:
    t = r.table(data, where, _FAULT_KEYS if timed else tuple(k for k in _FAULT_KEYS if k != "at"))
    if "fault" not in t:
        raise r.error((*where, "fault"), f"missing (one of {', '.join(FAULTS)})")
    fault = r.choice(t, where, "fault", "kill", FAULTS)
    if timed and "at" not in t:
        raise r.error((*where, "at"), "missing: seconds into the workload when the fault starts")
    target = t.get("target", "all" if fault in ("delay", "loss") else "one")
    if isinstance(target, list):
        if not target or not all(isinstance(n, str) and n for n in target):
            raise r.error(
                (*where, "target"), "a list of targets must name nodes, e.g. ['n1', 'n2']"
            )
        target = tuple(target)
    elif target not in TARGETS:
        raise r.error(
            (*where, "target"),
            f"must be one of {', '.join(TARGETS)} or a list of node names, not {target!r}",
        )
    delay = t.get("delay", [0.05, 0.2])
    if not (
        isinstance(delay, list)
        and len(delay) == 2
        and all(isinstance(d, int | float) and not isinstance(d, bool) for d in delay)
        and 0 <= delay[0] <= delay[1]
    ):
        raise r.error(
            (*where, "delay"), f"must be [low, high] seconds with 0 <= low <= high, not {delay!r}"
        )
    return FaultSpec(
        fault=fault,
        target=target,
        group=r.choice(t, where, "group", "kv", GROUPS),
        at=r.number(t, where, "at", None) if timed else None,
        duration=r.number(t, where, "duration", None, positive=True),
        mode=r.choice(t, where, "mode", "isolate", PARTITION_MODES),
        delay=(float(delay[0]), float(delay[1])),
        probability=r.number(t, where, "probability", 0.2, high=1.0),
        rate=r.number(t, where, "rate", 1.5, positive=True),
        latency=r.number(t, where, "latency", 0.1, high=60.0),
    )


def _faults(r: _Reader, data: Any) -> tuple[tuple[FaultSpec, ...], GeneratorSpec | None]:
    where = ("faults",)
    t = r.table(data, where, ("timeline", "generator"))
    timeline = t.get("timeline", [])
    if not isinstance(timeline, list):
        raise r.error((*where, "timeline"), "must be an array of tables ([[faults.timeline]])")
    steps = tuple(_fault(r, s, (*where, "timeline", i), True) for i, s in enumerate(timeline))
    generator = None
    if "generator" in t:
        gw = (*where, "generator")
        g = r.table(t["generator"], gw, ("faults", "interval", "start"))
        templates = g.get("faults")
        if not isinstance(templates, list) or not templates:
            raise r.error((*gw, "faults"), "must be a non-empty array of fault tables")
        generator = GeneratorSpec(
            faults=tuple(
                _fault(r, {"fault": f} if isinstance(f, str) else f, (*gw, "faults", i), False)
                for i, f in enumerate(templates)
            ),
            interval=r.number(g, gw, "interval", 5.0, positive=True),
            start=r.number(g, gw, "start", 2.0),
        )
    return steps, generator


def _checks(r: _Reader, data: Any) -> ChecksSpec:
    where = ("checks",)
    known = (
        "linearizable",
        "lost_writes",
        "unique_names",
        "names_within",
        "pg_converge",
        "pg_within",
        "supervisors",
        "supervisors_within",
        "contracts",
        "contracts_within",
        "logs",
        "logs_allow",
        "rss_limit_mb",
        "max_unavailable",
        "budget",
    )
    t = r.table(data, where, known)
    allow = t.get("logs_allow", [])
    if not isinstance(allow, list) or not all(isinstance(a, str) for a in allow):
        raise r.error((*where, "logs_allow"), "must be a list of regular expressions")
    rss = t.get("rss_limit_mb", 500.0)
    return ChecksSpec(
        linearizable=r.boolean(t, where, "linearizable", True),
        lost_writes=r.boolean(t, where, "lost_writes", True),
        unique_names=r.boolean(t, where, "unique_names", True),
        names_within=r.number(t, where, "names_within", 20.0, positive=True),
        pg_converge=r.boolean(t, where, "pg_converge", True),
        pg_within=r.number(t, where, "pg_within", 10.0, positive=True),
        supervisors=r.boolean(t, where, "supervisors", True),
        supervisors_within=r.number(t, where, "supervisors_within", 10.0, positive=True),
        contracts=r.boolean(t, where, "contracts", True),
        contracts_within=r.number(t, where, "contracts_within", 60.0, positive=True),
        logs=r.boolean(t, where, "logs", True),
        logs_allow=tuple(allow),
        rss_limit_mb=None
        if rss is False
        else r.number(t, where, "rss_limit_mb", 500.0, positive=True),
        max_unavailable=r.number(t, where, "max_unavailable", None, positive=True),
        budget=r.number(t, where, "budget", 60.0, positive=True),
    )


def parse_scenario(text: str, *, path: str = "<scenario>", name: str | None = None) -> Scenario:
    """Parse and validate a scenario from TOML ``text`` (``path`` names it in errors; the
    scenario's name defaults to ``name``)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"at line (\d+)", str(exc))  # tomllib keeps it only in the text
        line = int(found.group(1)) if found else None
        raise ScenarioError(f"not valid TOML: {exc}", path=path, line=line, key="") from exc
    r = _Reader(path, key_lines(text))
    top = r.table(
        data,
        (),
        ("name", "description", "seed", "cluster", "workload", "faults", "settle", "checks"),
    )
    workloads = top.get("workload", [])
    if isinstance(workloads, dict):
        workloads = [workloads]
    if not isinstance(workloads, list) or not workloads:
        raise r.error(("workload",), "at least one [[workload]] is needed")
    timeline, generator = _faults(r, top.get("faults", {}))
    scenario = Scenario(
        name=r.text(top, (), "name", name or "scenario"),
        description=r.text(top, (), "description", ""),
        seed=r.number(top, (), "seed", 0, high=2**63 - 1, integer=True),
        cluster=_cluster(r, top.get("cluster", {})),
        workloads=tuple(_workload(r, w, ("workload", i)) for i, w in enumerate(workloads)),
        timeline=timeline,
        generator=generator,
        settle=r.number(top, (), "settle", 5.0),
        checks=_checks(r, top.get("checks", {})),
        path=path,
    )
    _cross_check(r, scenario)
    return scenario


def _cross_check(r: _Reader, s: Scenario) -> None:
    """What no single key can know: targets name real nodes, faults start inside the run."""
    names = {f"n{i}" for i in range(1, s.cluster.nodes + 1)}
    groups: list[tuple[tuple[str | int, ...], FaultSpec]] = [
        (("faults", "timeline", i), f) for i, f in enumerate(s.timeline)
    ]
    if s.generator is not None:
        groups += [
            (("faults", "generator", "faults", i), f) for i, f in enumerate(s.generator.faults)
        ]
    for where, f in groups:
        if isinstance(f.target, tuple):
            unknown = [n for n in f.target if n not in names]
            if unknown:
                raise r.error(
                    (*where, "target"),
                    f"no such node {unknown[0]!r} (nodes: {', '.join(sorted(names))})",
                )
        if f.at is not None and f.at >= s.duration:
            raise r.error((*where, "at"), f"starts after the workload ends ({s.duration} s)")
        if f.group == "contracts" and not any(w.kind == "contracts" for w in s.workloads):
            raise r.error(
                (*where, "group"), "the contracts store runs only with a contracts workload"
            )
        if f.fault in ("kill", "remove-node") and f.target == "all" and s.cluster.nodes > 1:
            raise r.error(
                (*where, "target"), "killing every node leaves nothing to check; use majority"
            )


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate the scenario file ``path``."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ScenarioError(f"cannot read: {exc.strerror}", path=str(p), line=None, key="") from exc
    return parse_scenario(text, path=str(p), name=p.stem)
