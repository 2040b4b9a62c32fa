"""``Contract``: the base class users subclass; the class statement declares the graph and
compiling it checks it, so a broken contract fails at import, not in production."""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from .._errors import UsageError
from ..actors._refs import resolve_class
from ._dsl import Decl
from ._errors import DependencyCycle, DuplicateName, InvalidStep
from ._graph import Declared, Graph, child_graph, collect_declarations, compile_graph, is_contract
from ._render import explain, mermaid

if TYPE_CHECKING:
    from ._handle import RunHandle
    from ._policy import CapabilityPolicy

__all__ = ["Contract", "resolve_contract"]


class _Namespace(dict[str, Any]):
    """A class body namespace that notices a name declared twice (Python would silently keep
    the second)."""

    def __init__(self) -> None:
        super().__init__()
        self.duplicates: list[tuple[str, int | None, int | None]] = []

    def __setitem__(self, key: str, value: Any) -> None:
        old = self.get(key)
        if isinstance(old, Decl) and isinstance(value, Decl) and old is not value:
            self.duplicates.append((key, old.line, value.line))
        super().__setitem__(key, value)


class ContractMeta(type):
    """Compiles a contract class once its body has run (see :class:`Contract`)."""

    @classmethod
    def __prepare__(mcls, cls_name: str, bases: tuple[type, ...], /, **kwargs: Any) -> _Namespace:
        return _Namespace()

    def __new__(
        mcls,
        cls_name: str,
        bases: tuple[type, ...],
        namespace: dict[str, Any],
        /,
        **kwargs: Any,
    ) -> ContractMeta:
        duplicates = list(getattr(namespace, "duplicates", ()))
        cls = super().__new__(mcls, cls_name, bases, dict(namespace), **kwargs)
        if not any(isinstance(b, ContractMeta) for b in bases):
            return cls  # Contract itself
        contract_name = kwargs.get("name") or cls_name
        version = kwargs.get("version", 1)
        if version.__class__ is not int or version < 1:
            raise InvalidStep(contract_name, None, f"version must be an int >= 1, not {version!r}")
        if not isinstance(contract_name, str) or not re.match(r"^[A-Za-z][\w.-]*$", contract_name):
            raise InvalidStep(
                contract_name, None, f"a contract name must be a name: {contract_name!r}"
            )
        inputs, steps, outputs = collect_declarations(namespace, bases)
        named = _tuple_attr(cls, "outputs", contract_name)
        if named:  # (finding a line parses the class's module: once for all outputs)
            line = _attr_line(cls, "outputs")
            for out in named:
                outputs.setdefault(out, (out, line))
        correlation = _tuple_attr(cls, "correlate_by", contract_name)
        file = _source_file(cls)
        declared = Declared(
            inputs=inputs,
            steps=steps,
            outputs=outputs,
            correlation=correlation,
            correlation_line=_attr_line(cls, "correlate_by"),
            duplicates=duplicates,
            reserved=RESERVED,
            file=file,
        )
        cls.__declared__ = declared  # type: ignore[attr-defined]
        if kwargs.get("abstract", False):
            return cls
        ref = None if "<locals>" in cls.__qualname__ else f"{cls.__module__}:{cls.__qualname__}"
        doc = (inspect.getdoc(cls) or "").strip()
        cls.__contract__ = compile_graph(contract_name, version, declared, ref, doc)  # type: ignore[attr-defined]
        return cls

    def __init__(
        cls, cls_name: str, bases: tuple[type, ...], namespace: dict[str, Any], /, **kwargs: Any
    ) -> None:
        super().__init__(cls_name, bases, namespace)


def _tuple_attr(cls: type, attr: str, contract: str) -> tuple[str, ...]:
    value = getattr(cls, attr, ())
    if isinstance(value, Decl):
        raise DuplicateName(contract, attr, f"name {attr!r} is reserved", line=value.line)
    if isinstance(value, str):
        value = (value,)
    if not isinstance(value, (tuple, list)) or not all(isinstance(v, str) for v in value):
        raise InvalidStep(
            contract,
            None,
            f"{attr} must be a tuple of names, not {value!r}",
            line=_attr_line(cls, attr),
        )
    return tuple(value)


def _source_file(cls: type) -> str | None:
    try:
        return inspect.getsourcefile(cls)
    except (OSError, TypeError):
        return None


def _attr_line(cls: type, attr: str) -> int | None:
    """The source line of ``attr = ...`` in the class body (the class line if not found)."""
    try:
        lines, start = inspect.getsourcelines(cls)
    except (OSError, TypeError):
        return None
    pattern = re.compile(rf"^\s+{re.escape(attr)}\s*(:[^=]*)?=")
    for offset, text in enumerate(lines):
        if pattern.match(text):
            return start + offset
    return start


class Contract(metaclass=ContractMeta):
    """A dependency graph of steps, declared as a class::

        class Quote(Contract, version=1):
            order_total = Input(float)
            country = Input(str)

            @compute
            def vat_rate(country):
                return 0.2 if country == "UA" else 0.0

            @compute(capabilities="pure")
            def gross(order_total, vat_rate):
                return order_total * (1 + vat_rate)

            outputs = ("gross",)

    Class keywords: ``name`` (default: the class name; two classes may share one with
    different ``version`` numbers), ``version`` (an int, default 1), ``abstract=True`` (a base
    that declares steps for subclasses and is not compiled). Class attributes: ``outputs`` (a
    tuple of names) and ``correlate_by`` (the inputs that identify a run to
    ``deliver_event``). Problems are raised when the class is defined
    (:class:`ContractDefinitionError`).
    """

    __contract__: ClassVar[Graph]
    outputs: ClassVar[tuple[str, ...]] = ()
    correlate_by: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        for key in ("name", "version", "abstract"):
            kwargs.pop(key, None)
        super().__init_subclass__(**kwargs)

    def __init__(self) -> None:
        raise UsageError(
            f"{type(self).__name__} is a contract: start runs with {type(self).__name__}.start(...)"
        )

    # --- introspection ---

    @classmethod
    def graph(cls) -> Graph:
        """The compiled graph (composed contracts given by reference are resolved and checked
        for cycles the first time)."""
        graph = _graph_of(cls)
        if cls.__dict__.get("__composition_checked__") is not graph:
            check_composition(graph)
            cls.__composition_checked__ = graph  # type: ignore[attr-defined]
        return graph

    @classmethod
    def mermaid(cls) -> str:
        """The graph as a Mermaid flowchart."""
        return mermaid(cls.graph())

    @classmethod
    def explain(cls, step: str) -> str:
        """What step ``step`` is, needs, runs on, and what happens when it fails."""
        return explain(cls.graph(), step)

    @classmethod
    def required_capabilities(cls) -> frozenset[str]:
        """Every capability its steps (and those of composed contracts) need."""
        return cls.graph().required_capabilities()

    # --- runs (see docs/contracts.md) ---

    @classmethod
    async def start(
        cls,
        inputs: Mapping[str, Any] | None = None,
        *,
        run_id: str | None = None,
        durable: bool | None = None,
        policy: CapabilityPolicy | None = None,
        node: Any = None,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> RunHandle:
        """Start a run and return its handle. ``run_id`` is the idempotency key: a second start
        with the same id returns the same run. ``durable`` (default: when the node has a
        contracts store) keeps the run in the replicated store, so it survives its node;
        otherwise it lives on this node. ``policy`` denies capabilities to this run."""
        from ._service import service_of

        return await service_of(node).start_run(
            cls, inputs or {}, run_id=run_id, durable=durable, policy=policy, timeout=timeout
        )

    @classmethod
    async def run(
        cls,
        inputs: Mapping[str, Any] | None = None,
        *,
        policy: CapabilityPolicy | None = None,
        node: Any = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> dict[str, Any]:
        """Run to completion on this node (not durable) and return the outputs; raises the
        error that ended the run."""
        handle = await cls.start(inputs, durable=False, policy=policy, node=node)
        return await handle.result(timeout=timeout)


RESERVED = frozenset(
    n for n in dir(Contract) if not n.startswith("__") or n in ("__contract__", "__declared__")
) | {"outputs", "correlate_by", "name", "version", "abstract", "start", "run"}


def _graph_of(cls: type) -> Graph:
    graph = getattr(cls, "__contract__", None)
    if not isinstance(graph, Graph):
        raise UsageError(f"{cls.__qualname__} is an abstract contract (it is not compiled)")
    return graph


def resolve_contract(ref: str) -> type[Contract]:
    """The contract class ``"pkg.mod:Class"`` names."""
    return resolve_class(ref, Contract, "a contract")


def check_composition(graph: Graph, _stack: tuple[str, ...] = ()) -> None:
    """Resolve the composed contracts of ``graph`` given by reference and check that no
    contract composes itself through others (:class:`DependencyCycle`)."""
    stack = (*_stack, f"{graph.name}@{graph.version}")
    for step in graph.steps.values():
        for call in step.calls:
            if call.contract is None:
                continue
            child = child_graph(call)
            if child is None:
                child = _graph_of(resolve_contract(call.contract))
            key = f"{child.name}@{child.version}"
            if key in stack:
                cycle = (*stack[stack.index(key) :], key)
                raise DependencyCycle(
                    graph.name,
                    step.name,
                    "contracts compose each other in a cycle: " + " -> ".join(cycle),
                    cycle=cycle,
                    line=step.line,
                    file=step.file,
                )
            check_composition(child, stack)


def contract_class(obj: Any) -> type[Contract]:
    """``obj`` as a compiled contract class (a class or a ``"pkg.mod:Class"`` reference)."""
    cls = resolve_contract(obj) if isinstance(obj, str) else obj
    if not is_contract(cls):
        raise UsageError(f"{obj!r} is not a compiled contract class")
    return cls
