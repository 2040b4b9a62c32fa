"""Linearizability checking: the Wing-Gong-Lowe search with P-compositionality, as Porcupine.

A history is a list of :class:`Operation` s, each an input invoked at ``start`` whose output
returned at ``end`` (``end=None``: the outcome is unknown, Jepsen's ``info``). A :class:`Model`
is the sequential specification the history must be explainable by. The history is
*linearizable* if every operation can be given one instant inside its interval (an unknown one:
any instant after its start, or none) such that applying them in that order to the model
yields exactly the recorded outputs.

:func:`check_linearizability` splits the history into independent partitions
(``Model.partition``: one per key for :class:`KVModel`, P-compositionality) and runs the WGL
depth-first search on each, with Lowe's cache of (linearized set, state) pairs, under a
budget. Each partition ends :attr:`Verdict.OK` (with a linearization), :attr:`Verdict.ILLEGAL`
(with a :class:`Witness`: the shortest prefix no linearization explains, its last operation and
the operations around it) or :attr:`Verdict.UNKNOWN` (the budget ran out).

Unknown outcomes are the expensive part of real histories (every one stays pending to the end),
so the search defers them: an unknown operation is tried only when no completed one can go
next, one that would not change the state is never tried (it can always be placed at the end
instead), of several equal ones only the first is tried, and a *blind* operation
(``Model.blind``: its effect does not depend on the state, as a plain write) is never placed
right after an unknown one, whose effect it would erase. A *read-only* completed operation
(``Model.readonly``) that fits goes next without alternatives: moving it to the front keeps any
linearization one. ``Model.prepare`` may rewrite a partition into an easier equivalent one
(:class:`RegisterModel` drops what cannot matter and merges values nobody observes). Each of
these only skips orderings another branch of the search covers, so verdicts are unchanged.

The module is pure: no asyncio, no global state; time comes in through ``clock``.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from .._errors import UsageError

__all__ = [
    "UNKNOWN",
    "KVModel",
    "LinearizabilityResult",
    "Model",
    "Operation",
    "PartitionResult",
    "RegisterModel",
    "Verdict",
    "Witness",
    "check_linearizability",
]

S = TypeVar("S")

# How many search steps run between two looks at the clock.
_CLOCK_EVERY = 1024
# How many operations of the partial linearization the witness window reaches back.
_CONTEXT = 3


class _Unknown:
    """The output of an operation whose outcome is unknown."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNKNOWN"

    def __reduce__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Final[Any] = _Unknown()
"""The output :meth:`Model.step` is given for an operation whose outcome is unknown."""


@dataclass(frozen=True, slots=True)
class Operation:
    """One operation of a history: ``input`` invoked at ``start``, ``output`` returned at ``end``.

    ``end=None`` means the outcome is unknown (Jepsen's ``info``): the operation may have taken
    effect at any instant after ``start``, or never, and ``output`` is ignored. Operations known
    not to have taken effect (Jepsen's ``fail``) do not belong in a history to check. ``client``
    and ``id`` are carried through to results for reports; the checker does not read them.
    """

    client: Hashable
    input: Any
    output: Any
    start: float
    end: float | None
    id: int | None = None


class Model(Generic[S]):
    """A sequential specification: the state machine a history must be explainable by.

    Subclasses define :meth:`init` and :meth:`step`; states must be hashable and equal exactly
    when equivalent (the search caches them). :meth:`partition` (independent sub-histories),
    :meth:`blind` (a speed hint) and :meth:`describe` (for reports) have defaults.
    """

    def init(self) -> S:
        """The state before any operation."""
        raise NotImplementedError

    def step(self, state: S, input: Any, output: Any) -> tuple[bool, S]:
        """Apply ``input`` to ``state``: whether ``output`` is what the object would return,
        and the next state.

        ``output`` is :data:`UNKNOWN` for an operation whose outcome is unknown; the step must
        then accept and return the state the operation would have produced.
        """
        raise NotImplementedError

    def partition(self, ops: Sequence[Operation]) -> dict[Hashable, list[Operation]]:
        """Split a history into independent sub-histories, each checked on its own: the
        history is linearizable if and only if every part is. Default: one part."""
        return {None: list(ops)}

    def prepare(self, ops: Sequence[Operation]) -> list[Operation | None]:
        """Rewrite one partition's operations (in start order) into an easier, equivalent
        problem: for each, None to leave it out, or the operation to search with (itself, or a
        rewritten copy). The verdict must not change. Default: nothing changes."""
        return list(ops)

    def blind(self, input: Any) -> bool:
        """True if ``input`` succeeds from every state and leads to the same state whatever
        the state before (a plain write). Only a hint to skip orderings; default False."""
        return False

    def readonly(self, input: Any, output: Any) -> bool:
        """True if, with this (known) output, the operation leaves every state in which it
        succeeds unchanged (a read; a cas that did not swap). Only a hint: such an operation
        that can go next goes next, without trying the others first; default False."""
        return False

    def describe(self, input: Any, output: Any) -> str:
        """A short human-readable form of one operation, for reports."""
        return f"{input!r} -> {output!r}"


class _Hidden:
    """A written value no operation ever reads or compares with: all such values are one."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<unobserved>"


_HIDDEN: Final[Any] = _Hidden()


def _register_step(state: Any, f: Any, args: tuple[Any, ...], output: Any) -> tuple[bool, Any]:
    """One read / write / cas on a register holding ``state``."""
    if f == "read":
        return output is UNKNOWN or output == state, state
    if f == "write":
        return True, args[0]
    if f == "cas":
        old, new = args
        if output is UNKNOWN:
            return True, new if state == old else state
        if output:
            return state == old, new
        return state != old, state
    raise UsageError(f"register operation must be read, write or cas, not {f!r}")


def _describe_register(f: Any, args: tuple[Any, ...], output: Any) -> str:
    shown = "?" if output is UNKNOWN else repr(output)
    if f == "read":
        return f"read -> {shown}"
    if f == "write":
        return f"write {args[0]!r}" + (" ?" if output is UNKNOWN else "")
    old, new = args
    return f"cas {old!r} -> {new!r}: {shown}"


class RegisterModel(Model[Any]):
    """One register: inputs ``("read",)``, ``("write", value)``, ``("cas", old, new)``.

    A read's output is the value read; a write's is ignored; a cas's is whether it swapped
    (a cas that did not swap still happened and says the value was not ``old``). The register
    starts at ``initial`` (None: never written).

    :meth:`prepare` leaves out what cannot matter: reads with unknown outcomes, and cas whose
    ``old`` is never written (unless one claims to have swapped); and it makes every written
    value that no read returns and no cas expects one and the same, so the search treats such
    writes with unknown outcomes as interchangeable.
    """

    _head = 1  # inputs are (f, *args)

    def __init__(self, initial: Any = None) -> None:
        self.initial = initial

    def init(self) -> Any:
        return self.initial

    def step(self, state: Any, input: Any, output: Any) -> tuple[bool, Any]:
        return _register_step(state, input[0], input[self._head :], output)

    def blind(self, input: Any) -> bool:
        return bool(input[0] == "write")

    def readonly(self, input: Any, output: Any) -> bool:
        return bool(input[0] == "read" or (input[0] == "cas" and not output))

    def describe(self, input: Any, output: Any) -> str:
        return _describe_register(input[0], input[self._head :], output)

    def prepare(self, ops: Sequence[Operation]) -> list[Operation | None]:
        try:
            return self._prepare(ops)
        except TypeError:  # unhashable values: search as they are
            return list(ops)

    def _prepare(self, ops: Sequence[Operation]) -> list[Operation | None]:
        head = self._head
        written = {self.initial}
        for op in ops:
            if op.input[0] != "read":
                written.add(op.input[-1])
        kept: list[Operation | None] = []
        observed: set[Any] = set()
        for op in ops:
            f = op.input[0]
            if f == "read":
                if op.end is None:
                    kept.append(None)
                    continue
                observed.add(op.output)
            elif f == "cas":
                swapped = op.end is not None and op.output
                if op.input[head] not in written and not swapped:
                    kept.append(None)  # it can never swap, and does not claim to have
                    continue
                observed.add(op.input[head])
            kept.append(op)
        for n, each in enumerate(kept):
            if each is not None and each.input[0] != "read" and each.input[-1] not in observed:
                hidden = (*each.input[:-1], _HIDDEN)
                kept[n] = Operation(each.client, hidden, each.output, each.start, each.end, each.id)
        return kept


class KVModel(RegisterModel):
    """A map of independent registers: ``("read", key)``, ``("write", key, value)``,
    ``("cas", key, old, new)``, partitioned by key. Every key starts at ``initial``."""

    _head = 2  # inputs are (f, key, *args)

    def partition(self, ops: Sequence[Operation]) -> dict[Hashable, list[Operation]]:
        parts: dict[Hashable, list[Operation]] = {}
        for op in ops:
            parts.setdefault(op.input[1], []).append(op)
        return parts

    def describe(self, input: Any, output: Any) -> str:
        return f"{input[1]!r}: " + super().describe(input, output)


class Verdict(enum.Enum):
    """Outcome of a check: linearizable, not linearizable, or undecided within the budget."""

    OK = "ok"
    ILLEGAL = "illegal"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Witness:
    """Where an illegal partition fails.

    ``failing`` is the operation whose completion no linearization explains: the history of its
    partition up to ``failing.end`` is already illegal, and up to any earlier completion it is
    not (operations running across that instant counted as unknown outcomes). ``linearized`` is
    the longest partial linearization the search found for that prefix and ``state`` the
    model's state after it. ``window`` holds the partition's operations from the last few of
    ``linearized`` up to ``failing.end`` (those completing in that span and those running
    across it), ordered by start: the operations to read to see the violation.
    """

    key: Hashable
    failing: Operation
    window: tuple[Operation, ...]
    linearized: tuple[Operation, ...]
    state: Any


@dataclass(frozen=True, slots=True)
class PartitionResult:
    """The verdict on one partition (one key of a :class:`KVModel`).

    ``linearization`` is the order found when OK, the longest partial linearization otherwise.
    It leaves out operations with unknown outcomes that took effect after all others or never,
    and those :meth:`Model.prepare` left out as unable to matter. ``steps``
    counts model steps tried, a measure of the search's work.
    """

    key: Hashable
    verdict: Verdict
    operations: int
    steps: int
    linearization: tuple[Operation, ...]
    witness: Witness | None = None


@dataclass(frozen=True, slots=True)
class LinearizabilityResult:
    """The verdict on a history: ILLEGAL if a partition is, else UNKNOWN if one is, else OK."""

    verdict: Verdict
    partitions: tuple[PartitionResult, ...]
    steps: int
    elapsed: float

    @property
    def witness(self) -> Witness | None:
        """The witness of the first illegal partition, if any."""
        for part in self.partitions:
            if part.witness is not None:
                return part.witness
        return None


class _Budget:
    """The search's limits: a deadline on ``clock`` and a cap on steps, shared by partitions."""

    __slots__ = ("clock", "deadline", "max_steps", "steps")

    def __init__(
        self, budget: float | None, max_steps: int | None, clock: Callable[[], float]
    ) -> None:
        self.clock = clock
        self.deadline = None if budget is None else clock() + budget
        self.max_steps = max_steps
        self.steps = 0  # spent by finished searches

    def exhausted(self, running: int = 0) -> bool:
        """Whether the limits are reached, with ``running`` steps of the current search."""
        if self.max_steps is not None and self.steps + running >= self.max_steps:
            return True
        return self.deadline is not None and self.clock() >= self.deadline


@dataclass(slots=True)
class _Outcome:
    verdict: Verdict
    path: list[Operation]  # the linearization, or the longest partial one
    state: Any
    steps: int


def _entries(
    known: Sequence[Operation],
) -> tuple[list[int], list[int], list[bool], list[int], list[int], list[float]]:
    """The completed operations' call and return entries in time order (a call before a return
    at the same instant: they overlap), as a doubly linked list over positions 1..2n with a
    head (0) and a tail (2n+1); linearizing an operation lifts both of its entries out.

    Returns next, previous, is-a-call, operation index and time per position, and for a call
    the position of its return (``mate``).
    """
    events = sorted(
        [(op.start, 0, i) for i, op in enumerate(known)]
        + [(op.end, 1, i) for i, op in enumerate(known) if op.end is not None]
    )
    size = 2 * len(known)
    nxt = [*range(1, size + 2), size + 1]
    prv = [0, *range(size + 1)]
    is_call = [False] * (size + 2)
    op_at = [0] * (size + 2)
    mate = [0] * (size + 2)
    when = [0.0] * (size + 2)
    call_pos = [0] * len(known)
    for pos, (t, kind, i) in enumerate(events, start=1):
        op_at[pos] = i
        when[pos] = t
        if kind == 0:
            is_call[pos] = True
            call_pos[i] = pos
        else:
            mate[call_pos[i]] = pos
    return nxt, prv, is_call, op_at, mate, when


def _search(model: Model[Any], ops: Sequence[Operation], budget: _Budget) -> _Outcome:
    """The WGL depth-first search over one partition."""
    known = [op for op in ops if op.end is not None]
    info = sorted((op for op in ops if op.end is None), key=lambda op: op.start)
    n_known, n_info = len(known), len(info)
    if n_known == 0:
        return _Outcome(Verdict.OK, [], model.init(), 0)

    nxt, prv, is_call, op_at, mate, when = _entries(known)
    k_in = [op.input for op in known]
    k_out = [op.output for op in known]
    k_blind = [model.blind(op.input) for op in known]
    k_readonly = [model.readonly(op.input, op.output) for op in known]
    k_bit = [1 << i for i in range(n_known)]
    i_in = [op.input for op in info]
    i_start = [op.start for op in info]
    i_blind = [model.blind(op.input) for op in info]
    i_bit = [1 << (n_known + j) for j in range(n_info)]
    i_twin = _twins(i_in)
    i_done = [False] * n_info

    step = model.step
    state = model.init()
    linearized = 0
    remaining = n_known
    cache: set[tuple[int, Any]] = set()
    # The search path as a persistent stack: (parent, ref, state before, last_info before,
    # extra); ref >= 0 is a completed operation's call position (extra: it was its node's
    # forced child), ref < 0 is ~(the index of an unknown one; extra: its node's t_limit).
    frame: tuple[Any, ...] | None = None
    last_info = False  # was the last operation on the path one with an unknown outcome?
    best_remaining, best_frame, best_state = remaining + 1, frame, state
    steps = 0
    check_at = _CLOCK_EVERY

    def _has_twin(j: int) -> bool:
        """An earlier, equal unknown operation is also pending: this node tried it instead."""
        twin = i_twin[j]
        while twin >= 0 and i_done[twin]:
            twin = i_twin[twin]
        return twin >= 0

    def outcome(verdict: Verdict) -> _Outcome:
        budget.steps += steps
        path: list[Operation] = []
        f = best_frame
        while f is not None:
            ref = f[1]
            path.append(known[op_at[ref]] if ref >= 0 else info[~ref])
            f = f[0]
        path.reverse()
        return _Outcome(verdict, path, best_state, steps)

    resume = -1  # where phase 0 goes on at a node: -1 a fresh node, else this position
    while True:
        # Phase 0: the completed operations called before the first pending return. A read-only
        # one that fits goes next with no alternative (moving it to the front of any
        # linearization keeps it one); else each of the others in turn.
        grew = False
        if resume < 0:
            pos, forced = nxt[0], -1
            while is_call[pos]:
                i = op_at[pos]
                if k_readonly[i]:
                    steps += 1
                    if step(state, k_in[i], k_out[i])[0]:
                        forced = pos
                        break
                pos = nxt[pos]
            pos = nxt[0] if forced < 0 else forced
        else:
            pos, forced = resume, -1
        while is_call[pos]:
            i = op_at[pos]
            if pos == forced or not (k_readonly[i] or (last_info and k_blind[i])):
                if pos != forced:
                    steps += 1
                ok, new = step(state, k_in[i], k_out[i])
                if ok:
                    grown = linearized | k_bit[i]
                    key = (grown, new)
                    if key not in cache:
                        cache.add(key)
                        frame = (frame, pos, state, last_info, pos == forced)
                        state, linearized, last_info = new, grown, False
                        end = mate[pos]
                        a, b = prv[pos], nxt[pos]
                        nxt[a], prv[b] = b, a
                        a, b = prv[end], nxt[end]
                        nxt[a], prv[b] = b, a
                        remaining -= 1
                        if remaining < best_remaining:
                            best_remaining, best_frame, best_state = remaining, frame, state
                            if remaining == 0:
                                return outcome(Verdict.OK)
                        grew = True
                        break
                if pos == forced:
                    break  # the node's only child is known to fail
            pos = nxt[pos]
        resume = -1
        if grew:
            continue
        # Phase 1: try the unknown outcomes called before the first pending return (at pos);
        # when none fits, backtrack. A node whose forced child failed fails with it.
        j, t_limit = (n_info, 0.0) if forced >= 0 else (0, when[pos])
        while True:
            if steps >= check_at:
                check_at = steps + _CLOCK_EVERY
                if budget.exhausted(steps):
                    return outcome(Verdict.UNKNOWN)
            found = False
            while j < n_info and i_start[j] <= t_limit:
                if not i_done[j] and not (last_info and i_blind[j]) and not _has_twin(j):
                    steps += 1
                    ok, new = step(state, i_in[j], UNKNOWN)
                    if ok and new != state:
                        grown = linearized | i_bit[j]
                        key = (grown, new)
                        if key not in cache:
                            cache.add(key)
                            frame = (frame, ~j, state, last_info, t_limit)
                            state, linearized, last_info = new, grown, True
                            i_done[j] = True
                            found = True
                            break
                j += 1
            if found:
                break
            if frame is None:
                return outcome(Verdict.ILLEGAL)
            frame, ref, state, last_info, extra = frame
            if ref >= 0:
                end = mate[ref]
                a, b = prv[end], nxt[end]
                nxt[a] = prv[b] = end
                a, b = prv[ref], nxt[ref]
                nxt[a] = prv[b] = ref
                linearized ^= k_bit[op_at[ref]]
                remaining += 1
                if extra:  # it was its node's forced child: the node fails too
                    j = n_info
                    continue
                resume = nxt[ref]
                break
            j = ~ref
            i_done[j] = False
            linearized ^= i_bit[j]
            t_limit = extra
            j += 1


def _twins(inputs: Sequence[Any]) -> list[int]:
    """For each input, the index of the previous equal one (-1: none or unhashable)."""
    last: dict[Any, int] = {}
    twins = [-1] * len(inputs)
    for n, value in enumerate(inputs):
        try:
            twins[n] = last.get(value, -1)
            last[value] = n
        except TypeError:
            continue
    return twins


def _run(model: Model[Any], ops: Sequence[Operation], budget: _Budget) -> _Outcome:
    """Prepare one partition (in start order), search it, and map the path back to ``ops``."""
    prepared = model.prepare(ops)
    back = {id(new): old for old, new in zip(ops, prepared, strict=True) if new is not None}
    outcome = _search(model, [new for new in prepared if new is not None], budget)
    outcome.path = [back[id(op)] for op in outcome.path]
    return outcome


def _prefix(ops: Sequence[Operation], until: float) -> list[Operation]:
    """The history as it stood at ``until``: operations running then count as unknown."""
    out: list[Operation] = []
    for op in ops:
        if op.start > until:
            continue
        if op.end is not None and op.end > until:
            out.append(Operation(op.client, op.input, op.output, op.start, None, op.id))
        else:
            out.append(op)
    return out


def _witness(
    model: Model[Any], key: Hashable, ops: Sequence[Operation], found: _Outcome, budget: _Budget
) -> tuple[Witness, int]:
    """Find the shortest illegal prefix of an illegal partition (``found`` is the search of the
    whole of it; illegality only grows with the prefix), and the operations around its end."""
    ends = sorted({op.end for op in ops if op.end is not None})
    lo, hi = 0, len(ends) - 1  # ends[hi] is known illegal: the whole history
    steps = 0
    while lo < hi:
        mid = (lo + hi) // 2
        probe = _run(model, _prefix(ops, ends[mid]), budget)
        steps += probe.steps
        if probe.verdict is Verdict.ILLEGAL:
            hi, found = mid, probe
        else:  # legal, or undecided: keep the prefix proven illegal
            lo = mid + 1
    until = ends[hi]
    on_path = {id(op) for op in found.path}
    failing = next(
        (op for op in ops if op.end == until and id(op) not in on_path),
        next(op for op in ops if op.end == until),
    )
    context = [op for op in found.path[-_CONTEXT:] if op.end is not None]
    since = min([failing.start, *(op.start for op in context)])
    window = tuple(
        op
        for op in ops
        if op.start <= until and (op.start >= since if op.end is None else op.end >= since)
    )
    state = model.init()  # replayed on the operations as recorded, not as prepared
    for op in found.path:
        state = model.step(state, op.input, UNKNOWN if op.end is None else op.output)[1]
    witness = Witness(key, failing, window, tuple(found.path), state)
    return witness, steps


def _validate(ops: Iterable[Operation]) -> list[Operation]:
    out = list(ops)
    for op in out:
        if not isinstance(op, Operation):
            raise UsageError(f"a history holds Operation objects, not {op!r}")
        if op.end is not None and op.end < op.start:
            raise UsageError(f"operation {op!r} ends before it starts")
    return out


def check_linearizability(
    history: Iterable[Operation],
    model: Model[Any],
    *,
    budget: float | None = None,
    max_steps: int | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> LinearizabilityResult:
    """Check that ``history`` is linearizable with respect to ``model``.

    ``budget`` bounds the whole check in seconds of ``clock`` and ``max_steps`` in model steps
    (deterministic); partitions not decided within them are :attr:`Verdict.UNKNOWN`. An illegal
    partition gets a :class:`Witness` (its search for the shortest illegal prefix shares the
    budget). Raises :class:`ember.UsageError` for a malformed history.
    """
    ops = _validate(history)
    limits = _Budget(budget, max_steps, clock)
    started = clock()
    results: list[PartitionResult] = []
    for key, unsorted in model.partition(ops).items():
        part = sorted(unsorted, key=lambda op: op.start)
        if limits.exhausted():
            results.append(PartitionResult(key, Verdict.UNKNOWN, len(part), 0, ()))
            continue
        outcome = _run(model, part, limits)
        steps, witness = outcome.steps, None
        if outcome.verdict is Verdict.ILLEGAL:
            witness, more = _witness(model, key, part, outcome, limits)
            steps += more
        results.append(
            PartitionResult(key, outcome.verdict, len(part), steps, tuple(outcome.path), witness)
        )
    verdicts = {r.verdict for r in results}
    verdict = next((v for v in (Verdict.ILLEGAL, Verdict.UNKNOWN) if v in verdicts), Verdict.OK)
    return LinearizabilityResult(
        verdict, tuple(results), sum(r.steps for r in results), clock() - started
    )
