"""The compiled contract: a checked dependency graph of steps, built from the declarations of a
class body when the class is defined (stdlib ``graphlib`` orders it and finds cycles)."""

from __future__ import annotations

import difflib
import graphlib
import hashlib
import heapq
import inspect
import json
import marshal
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._dsl import (
    AwaitDecl,
    BranchDecl,
    CollectionDecl,
    ComposeDecl,
    ComputeDecl,
    Decl,
    Input,
    Output,
    StepDecl,
    StepOptions,
)
from ._errors import (
    BadCorrelation,
    ContractDefinitionError,
    DependencyCycle,
    DuplicateAwait,
    DuplicateName,
    InvalidInputs,
    InvalidStep,
    UnknownDependency,
    UnknownOutput,
)
from ._retry import Retry

__all__ = [
    "Call",
    "Declared",
    "Graph",
    "Step",
    "checked_inputs",
    "child_graph",
    "code_fingerprint",
    "collect_declarations",
    "compile_graph",
    "is_contract",
]

CTX = "ctx"
"""The parameter name that receives the :class:`StepContext` instead of a dependency."""

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def is_contract(obj: Any) -> bool:
    """Whether ``obj`` is a contract class (anything with a compiled graph)."""
    return isinstance(obj, type) and isinstance(getattr(obj, "__contract__", None), Graph)


@dataclass(frozen=True, slots=True, eq=False)
class Call:
    """What one unit of a step runs: a function (``fn``) or a child contract (``contract``, a
    class or a ``"pkg.mod:Class"`` reference), and which names here feed it."""

    fn: Callable[..., Any] | None = None
    contract: Any = None
    params: tuple[str, ...] = ()
    """For a function: the dependencies it takes as keywords. For a contract: the names here
    that feed its inputs (the values of ``input_map``)."""
    input_map: Mapping[str, str] = field(default_factory=dict)
    """Child input -> name here."""
    wants_ctx: bool = False
    is_async: bool = False
    item: str | None = None
    """In a collection: the parameter (or child input) that gets the item."""
    code: str = ""
    """A fingerprint of the function's code (for content-addressed caching)."""

    @property
    def label(self) -> str:
        if self.fn is not None:
            return getattr(self.fn, "__qualname__", repr(self.fn))
        return contract_label(self.contract)


def contract_label(contract: Any) -> str:
    if isinstance(contract, str):
        return contract
    graph: Graph | None = getattr(contract, "__contract__", None)
    return graph.name if graph is not None else repr(contract)


@dataclass(frozen=True, slots=True, eq=False)
class Step:
    """One compiled step. ``deps`` are the names (inputs or steps) it needs before it runs."""

    name: str
    kind: str
    deps: tuple[str, ...]
    line: int | None
    file: str | None
    capabilities: frozenset[str] = frozenset()
    needs: frozenset[str] = frozenset()
    """The capabilities it needs of a node: ``capabilities`` but ``pure`` (offered everywhere)."""
    on: str | None = None
    timeout: float | None = None
    retry: Retry | None = None
    idempotent: bool = False
    pure: bool = False
    blocking: bool = False
    cache: bool = False
    call: Call | None = None
    """compute and compose: what runs; collection: what runs per item."""
    selector: str | None = None
    """branch: the name whose value picks the case."""
    cases: Mapping[Any, Call] = field(default_factory=dict)
    default: Call | None = None
    over: str | None = None
    """collection: the name whose value is the list of items."""
    mode: str = "fail_fast"
    event: str | None = None
    await_timeout: float | None = None
    on_timeout: str = "fail"
    doc: str = ""

    @property
    def calls(self) -> list[Call]:
        """Every unit this step may run (the cases of a branch, the one call otherwise)."""
        out = [] if self.call is None else [self.call]
        out.extend(self.cases.values())
        if self.default is not None:
            out.append(self.default)
        return out

    @property
    def runs_code(self) -> bool:
        """False for an await (it only waits), True for every other kind."""
        return self.kind != "await"

    def as_dict(self) -> dict[str, Any]:
        """The step as plain data."""
        out: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "deps": list(self.deps),
            "line": self.line,
            "capabilities": sorted(self.capabilities),
            "on": self.on,
            "timeout": self.timeout,
            "retry": None if self.retry is None else self.retry.as_dict(),
            "idempotent": self.idempotent,
            "pure": self.pure,
            "cached": self.cache,
        }
        if self.kind == "branch":
            out["on_value"] = self.selector
            out["cases"] = {repr(k): c.label for k, c in self.cases.items()}
            out["default"] = None if self.default is None else self.default.label
        elif self.kind == "collection":
            out["over"] = self.over
            out["each"] = None if self.call is None else self.call.label
            out["mode"] = self.mode
        elif self.kind == "compose":
            out["contract"] = None if self.call is None else self.call.label
        elif self.kind == "await":
            out["event"] = self.event
            out["await_timeout"] = self.await_timeout
            out["on_timeout"] = self.on_timeout
        elif self.call is not None:
            out["function"] = self.call.label
        return out


@dataclass(frozen=True, slots=True, eq=False)
class Graph:
    """A compiled contract: its inputs, steps in a topological order, outputs, correlation keys
    and version. ``shape`` fingerprints the structure (names, kinds, dependencies, events): a
    run started on one shape is resumed only where the same shape is loaded."""

    name: str
    version: int
    inputs: Mapping[str, Input]
    steps: Mapping[str, Step]
    """In a topological order: every step after its dependencies."""
    outputs: Mapping[str, str]
    """Output name -> the step or input it reports."""
    correlation: tuple[str, ...]
    shape: str
    ref: str | None
    """``"pkg.mod:Class"`` when the class is importable by that name, else None."""
    dependents: Mapping[str, tuple[str, ...]]
    """Name (input or step) -> the steps that depend on it."""
    awaits: Mapping[str, str]
    """Event name -> the step that awaits it."""
    doc: str = ""

    def step(self, name: str) -> Step:
        try:
            return self.steps[name]
        except KeyError:
            raise KeyError(f"contract {self.name} has no step {name!r}") from None

    def required_capabilities(self) -> frozenset[str]:
        """Every capability some step of this contract (or of a composed one) needs."""
        caps: set[str] = set()
        for step in self.steps.values():
            caps |= step.capabilities
            for call in step.calls:
                child = child_graph(call)
                if child is not None:
                    caps |= child.required_capabilities()
        return frozenset(caps)

    def as_dict(self) -> dict[str, Any]:
        """The graph as plain data (JSON-friendly): inputs, steps, edges, outputs."""
        return {
            "name": self.name,
            "version": self.version,
            "shape": self.shape,
            "ref": self.ref,
            "inputs": [
                {"name": n, "type": _type_name(i.type), "required": i.required, "line": i.line}
                for n, i in self.inputs.items()
            ],
            "steps": [s.as_dict() for s in self.steps.values()],
            "edges": [[d, s.name] for s in self.steps.values() for d in s.deps],
            "outputs": dict(self.outputs),
            "correlation": list(self.correlation),
        }


def child_graph(call: Call) -> Graph | None:
    """The compiled graph of a call's child contract, if it is a class (None for a function or
    a reference not imported yet)."""
    contract = call.contract
    if contract is None or isinstance(contract, str):
        return None
    graph: Graph = contract.__contract__
    return graph


def _type_name(t: Any) -> str:
    if isinstance(t, tuple):
        return " | ".join(_type_name(x) for x in t)
    return getattr(t, "__qualname__", repr(t))


# --- compiling ---------------------------------------------------------------------------------


@dataclass(slots=True)
class Declared:
    """What a class body (and its bases) declared, with the duplicates the namespace saw."""

    inputs: dict[str, Input]
    steps: dict[str, StepDecl]
    outputs: dict[str, tuple[str, int | None]]
    correlation: tuple[str, ...]
    correlation_line: int | None
    duplicates: list[tuple[str, int | None, int | None]]
    reserved: frozenset[str]
    file: str | None


def compile_graph(
    contract: str, version: int, declared: Declared, ref: str | None, doc: str = ""
) -> Graph:
    """Check the declarations and compile them; raises a :class:`ContractDefinitionError`
    subclass naming the contract, the step and the source line of the first problem."""
    c = _Compiler(contract, declared)
    return c.compile(version, ref, doc)


class _Compiler:
    def __init__(self, contract: str, declared: Declared) -> None:
        self.contract = contract
        self.d = declared

    def fail(
        self, kind: type[ContractDefinitionError], step: str | None, problem: str, line: Any
    ) -> ContractDefinitionError:
        return kind(self.contract, step, problem, line=line, file=self.d.file)

    def compile(self, version: int, ref: str | None, doc: str) -> Graph:
        d = self.d
        for name, first, second in d.duplicates:
            raise self.fail(
                DuplicateName,
                name,
                f"name {name!r} is declared twice (lines {first} and {second})",
                second,
            )
        for name, decl in [*d.inputs.items(), *d.steps.items()]:
            if name in d.reserved or name == CTX or not _NAME.match(name):
                why = (
                    f"name {name!r} is reserved"
                    if name in d.reserved or name == CTX
                    else f"name {name!r} must be an identifier not starting with _"
                )
                raise self.fail(DuplicateName, name, why, decl.line)
        known = set(d.inputs) | set(d.steps)
        steps = {name: self.step(name, decl, known) for name, decl in d.steps.items()}
        order = self.order(steps)
        outputs: dict[str, str] = {}
        for out, (target, line) in d.outputs.items():
            if target not in known:
                raise self.fail(
                    UnknownOutput,
                    None,
                    f"output {out!r} references {target!r}, which is no input or step"
                    + _suggest(target, known),
                    line,
                )
            outputs[out] = target
        for key in d.correlation:
            if key not in d.inputs:
                raise self.fail(
                    BadCorrelation,
                    None,
                    f"correlation key {key!r} is not an input" + _suggest(key, set(d.inputs)),
                    d.correlation_line,
                )
        awaits: dict[str, str] = {}
        for step in order:
            s = steps[step]
            if s.event is None:
                continue
            if s.event in awaits:
                raise self.fail(
                    DuplicateAwait,
                    step,
                    f"event {s.event!r} is already awaited by step {awaits[s.event]!r}",
                    s.line,
                )
            awaits[s.event] = step
        ordered = {n: steps[n] for n in order}
        dependents: dict[str, list[str]] = {n: [] for n in known}
        for s in ordered.values():
            for dep in s.deps:
                dependents[dep].append(s.name)
        graph = Graph(
            name=self.contract,
            version=version,
            inputs=dict(d.inputs),
            steps=ordered,
            outputs=outputs,
            correlation=d.correlation,
            shape="",
            ref=ref,
            dependents={k: tuple(v) for k, v in dependents.items()},
            awaits=awaits,
            doc=doc,
        )
        object.__setattr__(graph, "shape", shape_of(graph))
        return graph

    def order(self, steps: dict[str, Step]) -> list[str]:
        sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
        for name, s in steps.items():
            sorter.add(name, *(dep for dep in s.deps if dep in steps))
        try:
            sorter.prepare()
        except graphlib.CycleError as exc:
            cycle = tuple(exc.args[1])
            first = cycle[0]
            raise DependencyCycle(
                self.contract,
                first,
                "steps depend on each other in a cycle: " + " -> ".join(cycle),
                cycle=cycle,
                line=steps[first].line,
                file=self.d.file,
            ) from None
        # Kahn's order, taking the earliest declared ready step each time: declaration order
        # wherever the dependencies allow it, and the same order on every node.
        index = {name: i for i, name in enumerate(steps)}
        ready: list[tuple[int, str]] = []
        order: list[str] = []
        while sorter.is_active():
            for name in sorter.get_ready():
                heapq.heappush(ready, (index[name], name))
            _, name = heapq.heappop(ready)
            order.append(name)
            sorter.done(name)
        return order

    # --- one step ---

    def step(self, name: str, decl: StepDecl, known: set[str]) -> Step:
        opts = decl.options
        problems = opts.problems()
        if problems:
            raise self.fail(InvalidStep, name, "; ".join(problems), decl.line)
        common: dict[str, Any] = {
            "name": name,
            "kind": decl.kind,
            "line": decl.line,
            "file": decl.file,
            "capabilities": frozenset(opts.capabilities),
            "needs": frozenset(opts.capabilities) - {"pure"},
            "on": opts.on,
            "timeout": opts.timeout,
            "retry": opts.retry,
            "idempotent": opts.pure or bool(opts.idempotent),
            "pure": opts.pure,
            "blocking": opts.blocking,
            "cache": opts.pure and opts.cache is not False,
        }
        if isinstance(decl, ComputeDecl):
            call = self.function(name, decl.fn, decl.depends_on, decl.line, opts)
            return self.checked(
                Step(deps=call.params, call=call, doc=_doc(decl.fn), **common), known
            )
        if isinstance(decl, BranchDecl):
            cases = {k: self.case(name, v, decl.line, opts) for k, v in decl.cases.items()}
            default = (
                None if decl.default is None else self.case(name, decl.default, decl.line, opts)
            )
            deps = _union([decl.on_value], *(c.params for c in cases.values()))
            if default is not None:
                deps = _union(deps, default.params)
            return self.checked(
                Step(deps=deps, selector=decl.on_value, cases=cases, default=default, **common),
                known,
            )
        if isinstance(decl, CollectionDecl):
            if decl.mode not in ("fail_fast", "collect"):
                raise self.fail(
                    InvalidStep,
                    name,
                    f"mode must be fail_fast or collect: {decl.mode!r}",
                    decl.line,
                )
            if not isinstance(decl.item, str) or not _NAME.match(decl.item):
                raise self.fail(
                    InvalidStep, name, f"item= must be a name: {decl.item!r}", decl.line
                )
            call = self.case(name, decl.each, decl.line, opts, item=decl.item, inputs=decl.inputs)
            deps = _union([decl.over], call.params)
            return self.checked(
                Step(deps=deps, call=call, over=decl.over, mode=decl.mode, **common), known
            )
        if isinstance(decl, ComposeDecl):
            call = self.child(name, decl.contract, decl.inputs, decl.line)
            child = child_graph(call)
            if child is not None:
                common["idempotent"] = all(s.idempotent for s in child.steps.values())
            return self.checked(Step(deps=call.params, call=call, **common), known)
        assert isinstance(decl, AwaitDecl)
        t = decl.timeout
        if t is not None and (t.__class__ not in (int, float) or not 0 < t < float("inf")):
            raise self.fail(
                InvalidStep, name, f"timeout must be a positive number of seconds: {t!r}", decl.line
            )
        if decl.on_timeout not in ("fail", "continue"):
            raise self.fail(
                InvalidStep,
                name,
                f"on_timeout must be 'fail' or 'continue', not {decl.on_timeout!r}",
                decl.line,
            )
        common["idempotent"] = True
        return self.checked(
            Step(
                deps=decl.after,
                event=decl.event,
                await_timeout=decl.timeout,
                on_timeout=decl.on_timeout,
                **common,
            ),
            known,
        )

    def checked(self, step: Step, known: set[str]) -> Step:
        for dep in step.deps:
            if dep not in known:
                raise self.fail(
                    UnknownDependency,
                    step.name,
                    f"depends on {dep!r}, which is no input or step" + _suggest(dep, known),
                    step.line,
                )
        if step.name in step.deps:
            raise DependencyCycle(
                self.contract,
                step.name,
                f"step {step.name!r} depends on itself",
                cycle=(step.name, step.name),
                line=step.line,
                file=self.d.file,
            )
        return step

    def case(
        self,
        name: str,
        target: Any,
        line: int | None,
        opts: StepOptions,
        *,
        item: str | None = None,
        inputs: dict[str, str] | None = None,
    ) -> Call:
        if isinstance(target, ComputeDecl):
            target = target.fn
        if isinstance(target, staticmethod):
            target = target.__func__
        if is_contract(target) or isinstance(target, str):
            return self.child(name, target, inputs, line, item=item)
        if callable(target):
            call = self.function(name, target, None, line, opts, item=item)
            return call
        raise self.fail(
            InvalidStep, name, f"expected a function or a contract class, not {target!r}", line
        )

    def function(
        self,
        name: str,
        fn: Callable[..., Any],
        depends_on: tuple[str, ...] | None,
        line: int | None,
        opts: StepOptions,
        *,
        item: str | None = None,
    ) -> Call:
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError) as exc:
            raise self.fail(
                InvalidStep, name, f"cannot read the signature of {fn!r}", line
            ) from exc
        params = sig.parameters
        wants_ctx = CTX in params
        var_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
        names = [
            p.name
            for p in params.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != CTX
        ]
        positional_only = [p.name for p in params.values() if p.kind is p.POSITIONAL_ONLY]
        if positional_only:
            raise self.fail(
                InvalidStep,
                name,
                f"parameters {positional_only} are positional-only: dependencies go by name",
                line,
            )
        if depends_on is not None:
            missing = [d for d in depends_on if d not in names and not var_kw]
            if missing:
                raise self.fail(
                    InvalidStep,
                    name,
                    f"depends_on names {missing}, which the function does not accept",
                    line,
                )
            deps = list(depends_on)
        else:
            if any(p.kind is p.VAR_POSITIONAL for p in params.values()) or var_kw:
                raise self.fail(
                    InvalidStep,
                    name,
                    "a function with *args or **kwargs needs depends_on=(...)",
                    line,
                )
            deps = names
        if item is not None:
            if item not in deps:
                raise self.fail(
                    InvalidStep,
                    name,
                    f"the function of a collection takes the item as parameter {item!r}",
                    line,
                )
            deps.remove(item)
        is_async = inspect.iscoroutinefunction(fn)
        if is_async and opts.blocking:
            raise self.fail(
                InvalidStep, name, "blocking=True is for plain functions, not async ones", line
            )
        return Call(
            fn=fn,
            params=tuple(deps),
            wants_ctx=wants_ctx,
            is_async=is_async,
            item=item,
            code=code_fingerprint(fn),
        )

    def child(
        self,
        name: str,
        contract: Any,
        inputs: dict[str, str] | None,
        line: int | None,
        *,
        item: str | None = None,
    ) -> Call:
        if not (is_contract(contract) or isinstance(contract, str)):
            raise self.fail(
                InvalidStep, name, f"compose needs a contract class, not {contract!r}", line
            )
        if isinstance(contract, str) and ":" not in contract:
            raise self.fail(
                InvalidStep,
                name,
                f"a contract reference looks like 'pkg.mod:Class', not {contract!r}",
                line,
            )
        if isinstance(contract, str) and inputs is None and item is None:
            raise self.fail(
                InvalidStep,
                name,
                f"a contract given by reference ({contract}) needs inputs={{child: name}}",
                line,
            )
        input_map = dict(inputs or {})
        graph = None if isinstance(contract, str) else contract.__contract__
        if graph is not None:
            if inputs is None:
                taken = {item} if item is not None else set()
                for child_input, spec in graph.inputs.items():
                    if child_input in taken:
                        continue
                    if child_input in self.d.inputs or child_input in self.d.steps:
                        input_map[child_input] = child_input
                    elif spec.required and item is None:
                        raise self.fail(
                            UnknownDependency,
                            name,
                            f"child contract {graph.name} needs input {child_input!r}, which is "
                            "no input or step here (map it with inputs=)",
                            line,
                        )
            unknown = [k for k in input_map if k not in graph.inputs]
            if unknown:
                raise self.fail(
                    InvalidStep, name, f"child contract {graph.name} has no inputs {unknown}", line
                )
        return Call(
            contract=contract,
            params=tuple(dict.fromkeys(input_map.values())),
            input_map=input_map,
            item=item,
        )


def _union(*parts: Any) -> tuple[str, ...]:
    return tuple(dict.fromkeys(n for part in parts for n in part))


def _suggest(name: str, known: set[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _doc(fn: Any) -> str:
    doc = inspect.getdoc(fn) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def code_fingerprint(fn: Callable[..., Any]) -> str:
    """A hash of a function's compiled code (its constants, names and nested code included), so
    that a cached result of a pure step is not reused after its code changed."""
    code = getattr(fn, "__code__", None)
    h = hashlib.sha256()
    h.update(getattr(fn, "__qualname__", repr(fn)).encode())
    if code is not None:
        h.update(marshal.dumps(code.replace(co_filename="", co_firstlineno=1)))
        defaults = getattr(fn, "__defaults__", None)
        h.update(repr(defaults).encode())
    return h.hexdigest()[:32]


def shape_of(graph: Graph) -> str:
    """The fingerprint of a graph's structure: what a resumed run relies on."""
    data = {
        "name": graph.name,
        "version": graph.version,
        "inputs": sorted(graph.inputs),
        "steps": [
            [s.name, s.kind, list(s.deps), s.event, s.over, s.selector, s.mode]
            for s in graph.steps.values()
        ],
        "outputs": sorted(graph.outputs.items()),
        "correlation": list(graph.correlation),
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def collect_declarations(
    namespace: Mapping[str, Any], bases: tuple[type, ...]
) -> tuple[dict[str, Input], dict[str, StepDecl], dict[str, tuple[str, int | None]]]:
    """The inputs, steps and ``Output`` declarations of a class body and its contract bases
    (a subclass may redefine what a base declared)."""
    inputs: dict[str, Input] = {}
    steps: dict[str, StepDecl] = {}
    outputs: dict[str, tuple[str, int | None]] = {}
    for base in reversed(bases):
        declared = getattr(base, "__declared__", None)
        if isinstance(declared, Declared):
            inputs.update(declared.inputs)
            steps.update(declared.steps)
            outputs.update(declared.outputs)
    for name, value in namespace.items():
        if isinstance(value, Decl):
            inputs.pop(name, None)
            steps.pop(name, None)
            outputs.pop(name, None)
        if isinstance(value, Input):
            inputs[name] = value
        elif isinstance(value, StepDecl):
            steps[name] = value
        elif isinstance(value, Output):
            outputs[name] = (value.ref, value.line)
    return inputs, steps, outputs


def checked_inputs(graph: Graph, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The inputs of a run of ``graph``, checked (unknown, missing, mistyped) and completed
    with the defaults; :class:`InvalidInputs` names the problem."""
    if not isinstance(inputs, Mapping):
        raise InvalidInputs(graph.name, f"inputs must be a mapping, not {type(inputs).__name__}")
    unknown = sorted(set(inputs) - set(graph.inputs))
    if unknown:
        raise InvalidInputs(
            graph.name, f"unknown inputs {unknown} (it takes {sorted(graph.inputs)})"
        )
    values: dict[str, Any] = {}
    for name, spec in graph.inputs.items():
        if name in inputs:
            value = inputs[name]
            kind = spec.type
            if kind is not object and _is_class(kind) and not isinstance(value, kind):
                raise InvalidInputs(
                    graph.name,
                    f"input {name!r} must be {getattr(kind, '__name__', kind)}, "
                    f"not {type(value).__name__}",
                )
            values[name] = value
        elif spec.required:
            raise InvalidInputs(graph.name, f"missing input {name!r}")
        else:
            values[name] = spec.default
    return values


def _is_class(kind: Any) -> bool:
    if isinstance(kind, tuple):
        return all(isinstance(k, type) for k in kind)
    return isinstance(kind, type)
