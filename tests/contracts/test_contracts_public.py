"""Pins the public surface of ``ember.contracts`` and the error hierarchy."""

from __future__ import annotations

import types

import ember
import ember.contracts as contracts

EXPECTED = {
    # the DSL
    "Contract",
    "Input",
    "Output",
    "Retry",
    "await_event",
    "branch",
    "collection",
    "compose",
    "compute",
    # the compiled graph
    "Graph",
    "Step",
    # running
    "CapabilityPolicy",
    "CollectionResult",
    "ContractsConfig",
    "ContractsService",
    "ContractsStatistics",
    "EventRecord",
    "EventTimedOut",
    "ItemOutcome",
    "RunHandle",
    "RunStatus",
    "RunSummary",
    "StepContext",
    "StepStatus",
    "cancel",
    "deliver_event",
    "runs",
    "status",
    # errors
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
}


def test_namespace_is_pinned() -> None:
    names = {
        n
        for n, v in vars(contracts).items()
        if not n.startswith("_") and not isinstance(v, types.ModuleType) and n != "annotations"
    }
    assert names == EXPECTED


def test_errors_derive_from_ember_error_by_category() -> None:
    for name in EXPECTED:
        obj = getattr(contracts, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, contracts.ContractError), name
            assert issubclass(obj, ember.EmberError), name
    for definition in (
        "BadCorrelation",
        "DependencyCycle",
        "DuplicateAwait",
        "DuplicateName",
        "InvalidStep",
        "UnknownDependency",
        "UnknownOutput",
    ):
        assert issubclass(getattr(contracts, definition), contracts.ContractDefinitionError)
    assert issubclass(contracts.ContractDefinitionError, ember.UsageError)
    assert issubclass(contracts.InvalidInputs, ember.UsageError)
    for timeout in ("AwaitTimeout", "ResultTimeout", "StepTimeout"):
        assert issubclass(getattr(contracts, timeout), TimeoutError)
    for ends_a_run in (
        "AwaitTimeout",
        "CapabilityDenied",
        "NoCapableNode",
        "RunCancelled",
        "RunCrashed",
        "StepFailed",
        "StepOutcomeUnknown",
        "VersionUnavailable",
    ):
        assert issubclass(getattr(contracts, ends_a_run), contracts.RunError)
