"""What a contract class body declares: inputs, steps (``compute``, ``branch``, ``collection``,
``compose``, ``await_event``) and outputs. The declarations only record what was written and
where; :mod:`._graph` compiles and checks them when the class is defined."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, overload

from .._errors import UsageError
from ._retry import Retry

__all__ = [
    "BUILTIN_CAPABILITIES",
    "MISSING",
    "AwaitDecl",
    "BranchDecl",
    "CollectionDecl",
    "ComposeDecl",
    "ComputeDecl",
    "Decl",
    "Input",
    "Output",
    "StepDecl",
    "StepOptions",
    "await_event",
    "branch",
    "collection",
    "compose",
    "compute",
]

BUILTIN_CAPABILITIES = frozenset(("pure", "network", "database", "filesystem", "external_api"))
"""Capabilities Ember names; any other non-empty identifier is a custom one (``"gpu"``)."""

SIDE_EFFECTS = frozenset(("network", "database", "filesystem", "external_api"))
"""Capabilities that contradict ``pure``."""

F = TypeVar("F", bound=Callable[..., Any])


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
"""An input without a default."""


def _caller(depth: int = 2) -> tuple[int | None, str | None]:
    """The line and file of the class body that made a declaration."""
    try:
        frame = sys._getframe(depth)
    except ValueError:  # pragma: no cover - no such frame
        return None, None
    return frame.f_lineno, frame.f_code.co_filename


class Decl:
    """A declaration in a contract class body; ``name`` is the attribute it is bound to."""

    __slots__ = ("file", "line", "name")

    def __init__(self, line: int | None, file: str | None) -> None:
        self.name = ""
        self.line = line
        self.file = file

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name


class Input(Decl):
    """An input of the contract: ``lead_id = Input(str)``; ``default=`` makes it optional.
    ``type`` (a class or tuple of classes, default any) is checked with ``isinstance`` when a
    run starts."""

    __slots__ = ("default", "doc", "type")

    def __init__(self, type: Any = object, *, default: Any = MISSING, doc: str = "") -> None:
        super().__init__(*_caller())
        self.type = type
        self.default = default
        self.doc = doc

    @property
    def required(self) -> bool:
        return self.default is MISSING

    def __repr__(self) -> str:
        return f"Input({getattr(self.type, '__name__', self.type)!s}, name={self.name!r})"


class Output(Decl):
    """An output: ``report = Output("summary")`` makes the run's result carry the value of step
    (or input) ``summary`` under the key ``report``. ``outputs = ("summary",)`` on the class is
    the short form (same names)."""

    __slots__ = ("ref",)

    def __init__(self, ref: str) -> None:
        super().__init__(*_caller())
        if not isinstance(ref, str) or not ref:
            raise UsageError(f"Output needs the name of a step or input, not {ref!r}")
        self.ref = ref


@dataclass(frozen=True, slots=True, kw_only=True)
class StepOptions:
    """What every kind of step may declare (see :func:`compute`)."""

    capabilities: tuple[str, ...] = ()
    on: str | None = None
    timeout: float | None = None
    retry: Retry | None = None
    idempotent: bool | None = None
    blocking: bool = False
    cache: bool | None = None

    @classmethod
    def of(  # noqa: PLR0917 - the declarators' own keywords, passed on in order
        cls,
        capabilities: Iterable[str] | str = (),
        on: str | None = None,
        timeout: float | None = None,
        retry: Retry | None = None,
        idempotent: bool | None = None,
        blocking: bool = False,
        cache: bool | None = None,
    ) -> StepOptions:
        """Options as given; their checks (with the step's name and line) are the compiler's."""
        caps = (capabilities,) if isinstance(capabilities, str) else tuple(capabilities)
        return cls(
            capabilities=caps,
            on=on,
            timeout=timeout,
            retry=retry,
            idempotent=idempotent,
            blocking=blocking,
            cache=cache,
        )

    def problems(self) -> list[str]:
        """What is wrong with these options (empty if nothing)."""
        out: list[str] = []
        for cap in self.capabilities:
            if not isinstance(cap, str) or not cap.replace("_", "a").replace("-", "a").isalnum():
                out.append(f"capability {cap!r} is not a name (letters, digits, _ and -)")
        side = SIDE_EFFECTS.intersection(self.capabilities)
        if "pure" in self.capabilities and side:
            out.append(f"a pure step cannot also need {', '.join(sorted(side))}")
        if self.on is not None and (not isinstance(self.on, str) or not self.on):
            out.append(f"on= must be a node name, not {self.on!r}")
        t = self.timeout
        if t is not None and (t.__class__ not in (int, float) or not 0 < t < math.inf):
            out.append(f"timeout must be a positive number of seconds or None, not {t!r}")
        if self.retry is not None and not isinstance(self.retry, Retry):
            out.append(f"retry must be a Retry(...) policy or None, not {self.retry!r}")
        if self.idempotent is not None and not isinstance(self.idempotent, bool):
            out.append(f"idempotent must be True, False or None, not {self.idempotent!r}")
        if "pure" in self.capabilities and self.idempotent is False:
            out.append("a pure step is idempotent by definition (idempotent=False contradicts it)")
        return out

    @property
    def pure(self) -> bool:
        return "pure" in self.capabilities


class StepDecl(Decl):
    """A step declaration; ``kind`` says which."""

    __slots__ = ("options",)
    kind: str = ""

    def __init__(self, options: StepOptions, line: int | None, file: str | None) -> None:
        super().__init__(line, file)
        self.options = options

    def __repr__(self) -> str:
        return f"<{self.kind} step {self.name!r}>"


class ComputeDecl(StepDecl):
    __slots__ = ("depends_on", "fn")
    kind = "compute"

    def __init__(
        self,
        fn: Callable[..., Any],
        depends_on: tuple[str, ...] | None,
        options: StepOptions,
        line: int | None,
        file: str | None,
    ) -> None:
        super().__init__(options, line, file)
        self.fn = fn
        self.depends_on = depends_on

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """The step's function, called directly (for tests of the function alone)."""
        return self.fn(*args, **kwargs)


class BranchDecl(StepDecl):
    __slots__ = ("cases", "default", "on_value")
    kind = "branch"

    def __init__(  # noqa: PLR0917
        self,
        on_value: str,
        cases: dict[Any, Any],
        default: Any,
        options: StepOptions,
        line: int | None,
        file: str | None,
    ) -> None:
        super().__init__(options, line, file)
        self.on_value = on_value
        self.cases = cases
        self.default = default


class CollectionDecl(StepDecl):
    __slots__ = ("each", "inputs", "item", "mode", "over")
    kind = "collection"

    def __init__(  # noqa: PLR0917
        self,
        over: str,
        each: Any,
        mode: str,
        item: str,
        inputs: dict[str, str] | None,
        options: StepOptions,
        line: int | None,
        file: str | None,
    ) -> None:
        super().__init__(options, line, file)
        self.over = over
        self.each = each
        self.mode = mode
        self.item = item
        self.inputs = inputs


class ComposeDecl(StepDecl):
    __slots__ = ("contract", "inputs")
    kind = "compose"

    def __init__(
        self,
        contract: Any,
        inputs: dict[str, str] | None,
        options: StepOptions,
        line: int | None,
        file: str | None,
    ) -> None:
        super().__init__(options, line, file)
        self.contract = contract
        self.inputs = inputs


class AwaitDecl(StepDecl):
    __slots__ = ("after", "event", "on_timeout", "timeout")
    kind = "await"

    def __init__(  # noqa: PLR0917
        self,
        event: str,
        timeout: float | None,
        on_timeout: str,
        after: tuple[str, ...],
        line: int | None,
        file: str | None,
    ) -> None:
        super().__init__(StepOptions(), line, file)
        self.event = event
        self.timeout = timeout
        self.on_timeout = on_timeout
        self.after = after


# --- the declarators ---------------------------------------------------------------------------


@overload
def compute(fn: F, /) -> ComputeDecl: ...


@overload
def compute(
    *,
    depends_on: Iterable[str] | None = None,
    capabilities: Iterable[str] | str = (),
    on: str | None = None,
    timeout: float | None = None,
    retry: Retry | None = None,
    idempotent: bool | None = None,
    blocking: bool = False,
    cache: bool | None = None,
) -> Callable[[F], ComputeDecl]: ...


def compute(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    depends_on: Iterable[str] | None = None,
    capabilities: Iterable[str] | str = (),
    on: str | None = None,
    timeout: float | None = None,
    retry: Retry | None = None,
    idempotent: bool | None = None,
    blocking: bool = False,
    cache: bool | None = None,
) -> ComputeDecl | Callable[[F], ComputeDecl]:
    """A step computed by the decorated function (plain or ``async def``). Its dependencies are
    its parameter names (inputs or other steps), or ``depends_on`` (passed as keywords); a
    parameter named ``ctx`` gets the :class:`StepContext` instead.

    ``capabilities`` are what the step needs of the node it runs on (``"pure"``, ``"network"``,
    ``"database"``, ``"filesystem"``, ``"external_api"`` or custom names); ``on`` pins it to a
    node. ``timeout`` bounds each attempt (seconds), ``retry`` retries failed attempts
    (:class:`Retry`). ``idempotent`` (default: True for pure steps) says running it twice is
    harmless, so a step whose node is lost is run again elsewhere instead of ending the run with
    an unknown outcome. ``blocking`` runs a plain function in a worker thread. ``pure`` steps
    are cached by content (``cache=False`` opts out).
    """
    options = StepOptions.of(capabilities, on, timeout, retry, idempotent, blocking, cache)
    deps = None if depends_on is None else _names(depends_on, "depends_on")

    def declare(f: Callable[..., Any]) -> ComputeDecl:
        if isinstance(f, staticmethod):
            f = f.__func__
        if not callable(f):
            raise UsageError(f"@compute decorates a function, not {f!r}")
        code = getattr(f, "__code__", None)
        line = code.co_firstlineno if code is not None else None
        file = code.co_filename if code is not None else None
        return ComputeDecl(f, deps, options, line, file)

    if fn is not None:
        return declare(fn)
    return declare


def branch(
    value: str,
    cases: Mapping[Any, Any],
    *,
    default: Any = None,
    capabilities: Iterable[str] | str = (),
    on: str | None = None,
    timeout: float | None = None,
    retry: Retry | None = None,
    idempotent: bool | None = None,
) -> BranchDecl:
    """A step whose value is that of the case chosen by ``value`` (the name of an input or step):
    ``cases`` maps values to a function (its parameters are dependencies, as for
    :func:`compute`) or a contract class (run as a child with the inputs of the same names);
    ``default`` serves any other value (without one, an unmatched value fails the step)."""
    line, file = _caller()
    options = StepOptions.of(capabilities, on, timeout, retry, idempotent)
    if not isinstance(cases, Mapping) or not cases:
        raise UsageError("branch(...) needs a non-empty mapping of cases")
    return BranchDecl(value, dict(cases), default, options, line, file)


def collection(
    over: str,
    each: Any,
    *,
    mode: Literal["fail_fast", "collect"] = "fail_fast",
    item: str = "item",
    inputs: Mapping[str, str] | None = None,
    capabilities: Iterable[str] | str = (),
    on: str | None = None,
    timeout: float | None = None,
    retry: Retry | None = None,
    idempotent: bool | None = None,
) -> CollectionDecl:
    """A step that maps ``each`` over the items of ``over`` (a list-valued input or step), the
    items in parallel, each with its own attempts, status and node. ``each`` is a function whose
    parameter ``item`` (renamed with ``item=``) gets the item, other parameters being
    dependencies, or a contract class run as a child per item (a mapping item gives its
    inputs; ``inputs`` maps more child inputs to names here). The value is the list of results
    in item order. ``mode="fail_fast"`` fails the step with the first item that fails;
    ``"collect"`` lets every item finish and yields a :class:`CollectionResult`."""
    line, file = _caller()
    options = StepOptions.of(capabilities, on, timeout, retry, idempotent)
    return CollectionDecl(
        over, each, mode, item, None if inputs is None else dict(inputs), options, line, file
    )


def compose(
    contract: Any,
    *,
    inputs: Mapping[str, str] | None = None,
    timeout: float | None = None,
    retry: Retry | None = None,
) -> ComposeDecl:
    """A step that runs another contract (a class, or ``"pkg.mod:Class"``) as a child and takes
    its result (the dict of its outputs). ``inputs`` maps the child's inputs to names here
    (default: the same names)."""
    line, file = _caller()
    options = StepOptions.of((), None, timeout, retry)
    return ComposeDecl(contract, None if inputs is None else dict(inputs), options, line, file)


def await_event(
    event: str,
    *,
    timeout: float | None = None,
    on_timeout: Literal["fail", "continue"] = "fail",
    after: Iterable[str] = (),
) -> AwaitDecl:
    """A step that waits for the external event ``event`` (delivered with
    ``deliver_event(event, correlation=...)``); its value is the event's payload. The wait is
    reached once the steps in ``after`` are done; an event delivered earlier is kept and
    consumed then. ``timeout`` (seconds from when the wait is reached): ``on_timeout="fail"``
    ends the run with :class:`AwaitTimeout`, ``"continue"`` gives the step the value
    :class:`EventTimedOut`. A waiting durable run holds no actor."""
    line, file = _caller()
    if not isinstance(event, str) or not event:
        raise UsageError(f"await_event needs an event name, not {event!r}")
    return AwaitDecl(event, timeout, on_timeout, _names(after, "after"), line, file)


def _names(names: Iterable[str], what: str) -> tuple[str, ...]:
    if isinstance(names, str):
        names = (names,)
    out = tuple(names)
    if not all(isinstance(n, str) and n for n in out):
        raise UsageError(f"{what} must be step or input names, not {out!r}")
    return out
