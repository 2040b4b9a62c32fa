"""Contracts: dependency graphs of steps declared as classes, checked when defined, run as actor
pipelines placed by capability across the mesh, durable through Raft with awaited external
events. See ``docs/contracts.md``."""

from ._contract import Contract as Contract
from ._dsl import Input as Input
from ._dsl import Output as Output
from ._dsl import await_event as await_event
from ._dsl import branch as branch
from ._dsl import collection as collection
from ._dsl import compose as compose
from ._dsl import compute as compute
from ._errors import AwaitTimeout as AwaitTimeout
from ._errors import BadCorrelation as BadCorrelation
from ._errors import CapabilityDenied as CapabilityDenied
from ._errors import ContractDefinitionError as ContractDefinitionError
from ._errors import ContractError as ContractError
from ._errors import DependencyCycle as DependencyCycle
from ._errors import DuplicateAwait as DuplicateAwait
from ._errors import DuplicateEvent as DuplicateEvent
from ._errors import DuplicateName as DuplicateName
from ._errors import InvalidInputs as InvalidInputs
from ._errors import InvalidStep as InvalidStep
from ._errors import NoCapableNode as NoCapableNode
from ._errors import NoMatchingRun as NoMatchingRun
from ._errors import ResultTimeout as ResultTimeout
from ._errors import RunCancelled as RunCancelled
from ._errors import RunConflict as RunConflict
from ._errors import RunError as RunError
from ._errors import RunNotFound as RunNotFound
from ._errors import StepFailed as StepFailed
from ._errors import StepOutcomeUnknown as StepOutcomeUnknown
from ._errors import StepTimeout as StepTimeout
from ._errors import StoreUnavailable as StoreUnavailable
from ._errors import UnknownDependency as UnknownDependency
from ._errors import UnknownOutput as UnknownOutput
from ._errors import VersionUnavailable as VersionUnavailable
from ._graph import Graph as Graph
from ._graph import Step as Step
from ._retry import Retry as Retry
