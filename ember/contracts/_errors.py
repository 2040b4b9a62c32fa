"""The errors of contracts, grouped by who is at fault and what the caller can do.

Definition errors (:class:`ContractDefinitionError` and its kinds) are raised when a contract
class is defined: they are programming errors and name the contract, the step and the source
line. Run errors name the run and, where one is to blame, the step and the node.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

from .._errors import EmberError, UsageError

__all__ = [
    "AwaitTimeout",
    "BadCorrelation",
    "CapabilityDenied",
    "ContractDefinitionError",
    "ContractError",
    "DependencyCycle",
    "DuplicateAwait",
    "DuplicateEvent",
    "DuplicateName",
    "InvalidInputs",
    "InvalidStep",
    "NoCapableNode",
    "NoMatchingRun",
    "ResultTimeout",
    "RunCancelled",
    "RunConflict",
    "RunCrashed",
    "RunError",
    "RunNotFound",
    "StepFailed",
    "StepOutcomeUnknown",
    "StepTimeout",
    "StoreUnavailable",
    "UnknownDependency",
    "UnknownOutput",
    "VersionUnavailable",
]


class ContractError(EmberError):
    """Root of the errors of ``ember.contracts``.

    Every subclass remembers the arguments it was made with, so that it crosses nodes with
    its type (the transport rebuilds Ember errors from ``__reduce__``)."""

    _made_with: tuple[Any, ...] | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return
        signature = inspect.signature(init)

        @functools.wraps(init)
        def remembering(self: ContractError, *args: Any, **kw: Any) -> None:
            init(self, *args, **kw)
            bound = signature.bind(self, *args, **kw)
            bound.apply_defaults()
            self._made_with = tuple(bound.arguments.values())[1:]

        cls.__init__ = remembering  # type: ignore[method-assign,assignment]

    def __reduce__(self) -> Any:
        if self._made_with is not None:
            return (type(self), self._made_with)
        return super().__reduce__()


# --- definition errors: raised when the class statement runs -------------------------------


class ContractDefinitionError(ContractError, UsageError):
    """A contract class is ill-formed. ``contract`` and ``step`` name what is wrong, ``line``
    and ``file`` where it was declared (None when unknown)."""

    def __init__(
        self,
        contract: str,
        step: str | None,
        problem: str,
        line: int | None = None,
        file: str | None = None,
    ) -> None:
        where = f" (line {line})" if line is not None else ""
        what = f"contract {contract}" + (f", step {step!r}" if step is not None else "")
        super().__init__(f"{what}{where}: {problem}")
        self.contract = contract
        self.step = step
        self.problem = problem
        self.line = line
        self.file = file


class UnknownDependency(ContractDefinitionError):
    """A step depends on a name that is neither an input nor a step."""


class DependencyCycle(ContractDefinitionError):
    """Steps depend on each other in a cycle (``cycle`` lists it, first name repeated last),
    possibly through composed contracts."""

    def __init__(  # noqa: PLR0917 - positional, so that it is rebuilt on another node
        self,
        contract: str,
        step: str | None,
        problem: str,
        cycle: tuple[str, ...] = (),
        line: int | None = None,
        file: str | None = None,
    ) -> None:
        super().__init__(contract, step, problem, line=line, file=file)
        self.cycle = cycle


class DuplicateName(ContractDefinitionError):
    """Two declarations (inputs, steps, outputs) share a name, or a name is reserved."""


class UnknownOutput(ContractDefinitionError):
    """An output references no input or step."""


class BadCorrelation(ContractDefinitionError):
    """A correlation key is not an input of the contract."""


class DuplicateAwait(ContractDefinitionError):
    """Two steps await the same event: a run could not tell which one a delivery is for."""


class InvalidStep(ContractDefinitionError):
    """A step's options are invalid (a bad timeout, retry policy, capability, placement...)."""


# --- errors of starting runs and delivering events -----------------------------------------


class InvalidInputs(ContractError, UsageError):
    """The inputs given to a run are missing, unknown or of the wrong type."""

    def __init__(self, contract: str, problem: str) -> None:
        super().__init__(f"contract {contract}: {problem}")
        self.contract = contract
        self.problem = problem


class RunConflict(ContractError, UsageError):
    """A run with this id exists already, of another contract or with other inputs: a run id is
    an idempotency key, a second start with the same id and the same request returns the same
    run."""

    def __init__(self, run_id: str, problem: str) -> None:
        super().__init__(f"run {run_id}: {problem}")
        self.run_id = run_id


class RunNotFound(ContractError):
    """No run has this id (it never existed, or it finished long enough ago to be evicted)."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"no run {run_id!r}")
        self.run_id = run_id


class NoMatchingRun(ContractError):
    """``deliver_event`` found no unfinished run with these correlation keys that awaits this
    event; nothing was recorded."""

    def __init__(self, event: str, correlation: dict[str, Any], detail: str = "") -> None:
        text = f"no run awaits event {event!r} with correlation {correlation!r}"
        super().__init__(f"{text}: {detail}" if detail else text)
        self.event = event
        self.correlation = correlation


class DuplicateEvent(ContractError):
    """The run already received this event (a different delivery, ``event_id`` says which one
    it kept); with ``duplicates="ignore"`` it is dropped silently instead."""

    def __init__(self, run_id: str, event: str, kept_id: str) -> None:
        super().__init__(f"run {run_id} already received event {event!r} (delivery {kept_id})")
        self.run_id = run_id
        self.event = event
        self.kept_id = kept_id


class StoreUnavailable(ContractError):
    """The durable store could not be reached in time (no quorum, no store configured); the
    operation may be retried. For a start or a delivery with an id, a retry applies once."""


class ResultTimeout(ContractError, TimeoutError):
    """``RunHandle.result(timeout=...)`` elapsed; the run goes on."""

    def __init__(self, run_id: str, timeout: float) -> None:
        super().__init__(f"run {run_id} did not finish within {timeout} s (it goes on)")
        self.run_id = run_id


# --- errors that end a run -------------------------------------------------------------------


class RunError(ContractError):
    """An error that ended a run; ``run_id`` names it and ``step`` the step to blame, if any."""

    def __init__(self, message: str, run_id: str, step: str | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.step = step


class StepFailed(RunError):
    """A step raised on every attempt. ``kind`` is the exception's qualified type name,
    ``message`` its text, ``node`` where the last attempt ran, ``attempts`` how many ran, and
    ``remote_traceback`` the formatted traceback of the last attempt."""

    def __init__(  # noqa: PLR0917 - positional, so that it is rebuilt on another node
        self,
        run_id: str,
        step: str,
        kind: str,
        message: str,
        node: str | None = None,
        attempts: int = 1,
        remote_traceback: str = "",
    ) -> None:
        where = f" on node {node}" if node else ""
        super().__init__(
            f"run {run_id}: step {step!r} failed{where} after {attempts} attempt(s): "
            f"{kind}: {message}",
            run_id,
            step,
        )
        self.kind = kind
        self.message = message
        self.node = node
        self.attempts = attempts
        self.remote_traceback = remote_traceback


class StepTimeout(StepFailed, TimeoutError):
    """A step's last attempt did not finish within its ``timeout``."""


class StepOutcomeUnknown(RunError):
    """The node running a step that is neither ``pure`` nor ``idempotent`` was lost (or its run
    moved to another node) before the step reported: it may or may not have taken effect, so
    it is not run again and the run ends with status ``unknown``."""

    def __init__(self, run_id: str, step: str, node: str | None, detail: str = "") -> None:
        text = f"run {run_id}: outcome of step {step!r} on node {node} unknown"
        super().__init__(f"{text}: {detail}" if detail else text, run_id, step)
        self.node = node


class CapabilityDenied(RunError):
    """A policy denies a capability a step needs; the step did not run. ``by`` says whose
    policy: ``"run"`` or ``"node <name>"``."""

    def __init__(self, run_id: str, step: str, capability: str, by: str) -> None:
        super().__init__(
            f"run {run_id}: step {step!r} needs capability {capability!r}, denied by {by}",
            run_id,
            step,
        )
        self.capability = capability
        self.by = by


class NoCapableNode(RunError):
    """No reachable node offers what a step needs (its capabilities, its ``on=`` node, the
    policies) within the placement timeout; the step did not run."""

    def __init__(self, run_id: str, step: str, needs: str) -> None:
        super().__init__(f"run {run_id}: no node can run step {step!r}: {needs}", run_id, step)
        self.needs = needs


class AwaitTimeout(RunError, TimeoutError):
    """An ``await_event`` step with ``on_timeout="fail"`` saw no event within its timeout."""

    def __init__(self, run_id: str, step: str, event: str, timeout: float) -> None:
        super().__init__(
            f"run {run_id}: step {step!r} got no event {event!r} within {timeout} s", run_id, step
        )
        self.event = event
        self.timeout = timeout


class RunCancelled(RunError):
    """The run was cancelled (``reason`` says by whom or why)."""

    def __init__(self, run_id: str, reason: str) -> None:
        super().__init__(f"run {run_id} cancelled: {reason}", run_id)
        self.reason = reason


class VersionUnavailable(RunError):
    """No node could load the contract version a run started with (or the contract's shape
    changed under the same version); the run is reported ``unknown``, not left pending."""

    def __init__(self, run_id: str, contract: str, version: int, detail: str) -> None:
        super().__init__(
            f"run {run_id}: version {version} of contract {contract} unavailable: {detail}",
            run_id,
        )
        self.contract = contract
        self.version = version


class RunCrashed(RunError):
    """The run's coordinator crashed more often than its restart budget allows (a bug in
    Ember or in a hook it calls); ``detail`` says how often."""

    def __init__(self, run_id: str, detail: str) -> None:
        super().__init__(f"run {run_id} crashed: {detail}", run_id)
        self.detail = detail
