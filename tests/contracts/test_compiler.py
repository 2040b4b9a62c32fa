"""The compiler checks a contract when its class is defined: each problem is a typed error that
names the contract, the step and the source line."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from ember import UsageError
from ember.contracts import (
    BadCorrelation,
    Contract,
    ContractDefinitionError,
    DependencyCycle,
    DuplicateAwait,
    DuplicateName,
    Input,
    InvalidStep,
    Output,
    Retry,
    UnknownDependency,
    UnknownOutput,
    await_event,
    branch,
    collection,
    compose,
    compute,
)
from ember.contracts._dsl import ComputeDecl


def line_of(marker: str) -> int:
    """The line of this file that carries ``# <marker>``."""
    source = inspect.getsource(inspect.getmodule(line_of))  # type: ignore[arg-type]
    for number, text in enumerate(source.splitlines(), 1):
        if text.rstrip().endswith(f"# {marker}"):
            return number
    raise AssertionError(marker)


class Child(Contract):
    x = Input(int)

    @compute(capabilities="database")
    def doubled(x: int) -> int:
        return 2 * x

    outputs = ("doubled",)


def test_a_valid_contract_compiles_in_dependency_order() -> None:
    class Quote(Contract, version=3):
        total = Input(float)
        country = Input(str, default="UA")

        @compute(capabilities="pure")
        def gross(total: float, rate: float) -> float:
            return total * (1 + rate)

        @compute
        def rate(country: str) -> float:
            return 0.2 if country == "UA" else 0.0

        outputs = ("gross",)

    graph = Quote.graph()
    assert list(graph.steps) == ["rate", "gross"]
    assert graph.steps["gross"].deps == ("total", "rate")
    assert graph.version == 3 and graph.name == "Quote"
    assert graph.inputs["country"].required is False
    assert graph.outputs == {"gross": "gross"}
    assert graph.ref is None  # defined in a function: not importable by reference
    assert graph.steps["gross"].pure and graph.steps["gross"].idempotent
    assert graph.steps["gross"].cache
    assert not graph.steps["rate"].idempotent


def test_unknown_dependency_names_step_line_and_suggests() -> None:
    with pytest.raises(UnknownDependency) as err:

        class Lead(Contract):
            email = Input(str)

            @compute  # unknown-dep
            def welcome(emial: str) -> str:
                return emial

    e = err.value
    assert (e.contract, e.step, e.line) == ("Lead", "welcome", line_of("unknown-dep"))
    assert e.file == __file__
    assert str(e) == (
        f"contract Lead, step 'welcome' (line {e.line}): depends on 'emial', which is no "
        "input or step (did you mean 'email'?)"
    )
    assert isinstance(e, ContractDefinitionError)


def test_cycle_names_the_cycle() -> None:
    with pytest.raises(DependencyCycle) as err:

        class Loop(Contract):
            @compute  # cycle-a
            def a(c: int) -> int:
                return c

            @compute
            def b(a: int) -> int:
                return a

            @compute
            def c(b: int) -> int:
                return b

    e = err.value
    assert e.cycle[0] == e.cycle[-1] and set(e.cycle) == {"a", "b", "c"}
    assert " -> ".join(e.cycle) in str(e)
    assert e.line is not None and e.step is not None
    assert "steps depend on each other in a cycle" in str(e)


def test_a_step_that_depends_on_itself_is_a_cycle() -> None:
    with pytest.raises(DependencyCycle, match="depends on itself") as err:

        class Selfish(Contract):
            @compute  # self-dep
            def a(a: int) -> int:
                return a

    assert err.value.line == line_of("self-dep")


def test_duplicate_names_report_both_lines() -> None:
    with pytest.raises(DuplicateName) as err:

        class Twice(Contract):
            a = Input(int)  # first-a

            @compute  # second-a
            def a() -> int:  # noqa: F811
                return 1

    e = err.value
    assert e.line == line_of("second-a")
    assert f"declared twice (lines {line_of('first-a')} and {line_of('second-a')})" in str(e)


@pytest.mark.parametrize("name", ["start", "run", "graph", "ctx", "outputs"])
def test_reserved_names_are_refused(name: str) -> None:
    with pytest.raises(DuplicateName, match=f"name {name!r} is reserved"):
        type(f"R_{name}", (Contract,), {name: Input(int)})


def test_output_that_references_nothing() -> None:
    with pytest.raises(UnknownOutput) as err:

        class Out(Contract):
            total = Input(int)
            report = Output("totl")  # bad-output

    assert err.value.line == line_of("bad-output")
    assert "output 'report' references 'totl'" in str(err.value)
    assert "did you mean 'total'?" in str(err.value)

    with pytest.raises(UnknownOutput, match="output 'nothing' references 'nothing'"):

        class Out2(Contract):
            total = Input(int)
            outputs = ("nothing",)  # bad-outputs

    try:

        class Out3(Contract):
            total = Input(int)
            outputs = ("nothing",)  # bad-outputs-3

    except UnknownOutput as exc:
        assert exc.line == line_of("bad-outputs-3")


def test_correlation_keys_must_be_inputs() -> None:
    with pytest.raises(BadCorrelation) as err:

        class Corr(Contract):
            lead_id = Input(str)
            correlate_by = ("lead_id", "company")  # bad-corr

    assert err.value.line == line_of("bad-corr")
    assert "correlation key 'company' is not an input" in str(err.value)


def test_two_awaits_of_one_event() -> None:
    with pytest.raises(DuplicateAwait) as err:

        class Waits(Contract):
            first = await_event("paid")
            second = await_event("paid")  # second-await

    assert err.value.step == "second" and err.value.line == line_of("second-await")
    assert "event 'paid' is already awaited by step 'first'" in str(err.value)


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"timeout": 0}, "timeout must be a positive number"),
        ({"timeout": "soon"}, "timeout must be a positive number"),
        ({"capabilities": ("pure", "network")}, "a pure step cannot also need network"),
        ({"capabilities": ("bad name!",)}, "is not a name"),
        ({"capabilities": "pure", "idempotent": False}, "idempotent=False contradicts it"),
        ({"retry": 3}, "retry must be a Retry"),
        ({"on": ""}, "on= must be a node name"),
    ],
)
def test_invalid_step_options(options: dict[str, Any], problem: str) -> None:
    with pytest.raises(InvalidStep, match=problem) as err:

        class Opts(Contract):
            @compute(**options)
            def a() -> int:
                return 1

    assert err.value.step == "a"


def test_invalid_function_shapes() -> None:
    with pytest.raises(InvalidStep, match=r"\*args or \*\*kwargs needs depends_on"):

        class Var(Contract):
            @compute
            def a(**kw: Any) -> int:
                return 1

    with pytest.raises(InvalidStep, match="blocking=True is for plain functions"):

        class Blocking(Contract):
            @compute(blocking=True)
            async def a() -> int:
                return 1

    with pytest.raises(InvalidStep, match="does not accept"):

        class Declared(Contract):
            x = Input(int)

            @compute(depends_on=("x",))
            def a(y: int) -> int:
                return y


def test_await_options_are_checked() -> None:
    with pytest.raises(InvalidStep, match="on_timeout must be 'fail' or 'continue'"):

        class W(Contract):
            a = await_event("e", timeout=5, on_timeout="later")  # type: ignore[arg-type]

    with pytest.raises(InvalidStep, match="timeout must be a positive"):

        class W2(Contract):
            a = await_event("e", timeout=-1)


def test_retry_policy_defaults_are_temporals() -> None:
    r = Retry()
    assert (r.attempts, r.initial, r.backoff, r.cap) == (0, 1.0, 2.0, 100.0)
    assert [r.delay(n) for n in (1, 2, 3, 7, 8, 200)] == [1.0, 2.0, 4.0, 64.0, 100.0, 100.0]
    assert r.allows(10_000, "ValueError")
    short = Retry(attempts=3, non_retryable=("KeyError",))
    assert short.allows(2, "builtins.ValueError") and not short.allows(3, "ValueError")
    assert not short.allows(1, "builtins.KeyError")
    for bad in ({"attempts": -1}, {"initial": 0}, {"backoff": 0.5}, {"non_retryable": "X"}):
        with pytest.raises(UsageError):
            Retry(**bad)  # type: ignore[arg-type]


def test_compose_resolves_inputs_and_checks_them() -> None:
    class Parent(Contract):
        x = Input(int)
        child = compose(Child)
        outputs = ("child",)

    step = Parent.graph().steps["child"]
    assert step.deps == ("x",) and step.call is not None and step.call.input_map == {"x": "x"}
    assert not step.idempotent  # the child's step is not idempotent
    assert Parent.required_capabilities() == {"database"}

    with pytest.raises(UnknownDependency, match="needs input 'x'"):

        class Orphan(Contract):
            y = Input(int)
            child = compose(Child)

    class Mapped(Contract):
        y = Input(int)
        child = compose(Child, inputs={"x": "y"})

    assert Mapped.graph().steps["child"].deps == ("y",)


def test_compose_cycle_through_references() -> None:
    from tests.contracts import cyclic

    with pytest.raises(DependencyCycle) as err:
        cyclic.Ping.graph()
    assert err.value.cycle == ("Ping@1", "Pong@1", "Ping@1")


def test_branch_and_collection_dependencies() -> None:
    def us(amount: float) -> float:
        return amount * 0.1

    def other(amount: float, country: str) -> float:
        return 0.0

    class Tax(Contract):
        amount = Input(float)
        country = Input(str)
        items = Input(list)
        tax = branch("country", {"US": us}, default=other)
        scored = collection("items", lambda item, amount: item * amount, mode="collect")

    steps = Tax.graph().steps
    assert steps["tax"].deps == ("country", "amount")
    assert steps["scored"].deps == ("items", "amount")
    assert steps["scored"].mode == "collect"

    with pytest.raises(InvalidStep, match="takes the item as parameter 'item'"):

        class NoItem(Contract):
            items = Input(list)
            scored = collection("items", lambda x: x)

    with pytest.raises(InvalidStep, match="mode must be fail_fast or collect"):

        class BadMode(Contract):
            items = Input(list)
            scored = collection("items", lambda item: item, mode="some")  # type: ignore[arg-type]


def test_subclass_redefines_steps_and_keeps_the_rest() -> None:
    class V1(Contract, name="Signup", version=1):
        email = Input(str)

        @compute
        def normalized(email: str) -> str:
            return email.lower()

        @compute
        def greeting(normalized: str) -> str:
            return f"hi {normalized}"

        outputs = ("greeting",)

    class V2(V1, name="Signup", version=2):
        @compute
        def greeting(normalized: str) -> str:
            return f"hello {normalized}"

    g1, g2 = V1.graph(), V2.graph()
    assert g1.name == g2.name == "Signup" and (g1.version, g2.version) == (1, 2)
    assert list(g2.steps) == ["normalized", "greeting"]
    assert g1.shape != g2.shape  # the version is part of the shape
    assert isinstance(V2.__dict__["greeting"], ComputeDecl)


def test_abstract_contracts_are_not_compiled() -> None:
    class Base(Contract, abstract=True):
        @compute
        def a(missing: int) -> int:
            return missing

    class Concrete(Base):
        missing = Input(int)

    assert list(Concrete.graph().steps) == ["a"]
    with pytest.raises(Exception, match="abstract contract"):
        Base.graph()


def test_contract_classes_are_not_instantiated() -> None:
    with pytest.raises(Exception, match="is a contract"):
        Child()


def test_bad_version_and_name() -> None:
    with pytest.raises(InvalidStep, match="version must be an int >= 1"):

        class V0(Contract, version=0):
            pass

    with pytest.raises(InvalidStep, match="a contract name must be a name"):

        class Named(Contract, name="no spaces"):
            pass
