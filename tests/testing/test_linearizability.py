"""The linearizability checker on histories with known verdicts, and against a brute force."""

import random
from functools import cache

import pytest

import ember
from ember.testing import (
    UNKNOWN,
    KVModel,
    Model,
    Operation,
    RegisterModel,
    Verdict,
    check_linearizability,
    seeded,
    seeds,
)
from ember.testing._histories import random_kv_history


def op(f, *args, out=None, start, end, client=0):
    return Operation(client, (f, "k", *args), out, start, end)


def check(history, **kw):
    return check_linearizability(history, KVModel(), **kw)


class PlainRegister(Model):
    """The register with no hints and no preparation: the search at its most naive."""

    def init(self):
        return None

    def step(self, state, input, output):
        f, _, *args = input
        if f == "read":
            return output is UNKNOWN or output == state, state
        if f == "write":
            return True, args[0]
        old, new = args
        if output is UNKNOWN:
            return True, new if state == old else state
        return (state == old, new) if output else (state != old, state)


def brute_force(history, model):
    """Linearizable? by trying every order that respects real time (no pruning but a memo)."""
    ops = list(history)

    @cache
    def extend(placed, state):
        pending = [i for i in range(len(ops)) if not placed >> i & 1]
        if all(ops[i].end is None for i in pending):
            return True
        for i in pending:
            x = ops[i]
            if any(ops[j].end is not None and ops[j].end < x.start for j in pending):
                continue
            ok, new = model.step(state, x.input, x.output if x.end is not None else UNKNOWN)
            if ok and extend(placed | 1 << i, new):
                return True
        return False

    return extend(0, model.init())


def prefix(history, until):
    """The history as it stood at ``until``: operations still running count as unknown."""
    return [
        o
        if o.end is not None and o.end <= until
        else Operation(o.client, o.input, o.output, o.start, None)
        for o in history
        if o.start <= until
    ]


def assert_linearization(history, part, model):
    """An OK partition's linearization respects real time and replays to the outputs."""
    order = list(part.linearization)
    history = sorted(history, key=lambda o: o.start)
    kept = [o for o, p in zip(history, model.prepare(history), strict=True) if p is not None]
    assert {id(o) for o in kept if o.end is not None} <= {id(o) for o in order}
    state = model.init()
    for n, x in enumerate(order):
        assert not any(y.end is not None and y.end < x.start for y in order[n + 1 :])
        ok, state = model.step(state, x.input, x.output if x.end is not None else UNKNOWN)
        assert ok, x


# --- histories with known verdicts -----------------------------------------------------------


def test_sequential_history_is_linearizable():
    h = [
        op("write", 1, start=0, end=1),
        op("read", out=1, start=2, end=3),
        op("cas", 1, 2, out=True, start=4, end=5),
        op("cas", 1, 3, out=False, start=6, end=7),
        op("read", out=2, start=8, end=9),
    ]
    result = check(h)
    assert result.verdict is Verdict.OK
    assert result.witness is None
    assert_linearization(h, result.partitions[0], KVModel())


@pytest.mark.parametrize("seen", [None, 1])
def test_a_read_concurrent_with_a_write_may_see_either_value(seen):
    h = [op("write", 1, start=0, end=10), op("read", out=seen, start=1, end=2)]
    assert check(h).verdict is Verdict.OK


def test_stale_read_is_illegal_and_the_witness_names_it():
    w1 = op("write", 1, start=0, end=1)
    w2 = op("write", 2, start=2, end=3)
    stale = op("read", out=1, start=4, end=5)
    later = [op("write", 10 + n, start=6 + 2 * n, end=7 + 2 * n) for n in range(5)]
    result = check([w1, w2, stale, *later])
    assert result.verdict is Verdict.ILLEGAL
    w = result.witness
    assert w is not None and w.key == "k"
    assert w.failing is stale  # the shortest illegal prefix ends with the stale read
    assert w2 in w.window and stale in w.window
    assert not set(map(id, later)) & set(map(id, w.window))
    assert w.state == 2 and list(w.linearized) == [w1, w2]


def test_lost_acknowledged_write_is_illegal():
    h = [op("write", 1, start=0, end=1), op("read", out=None, start=2, end=3)]
    result = check(h)
    assert result.verdict is Verdict.ILLEGAL
    assert result.witness.failing is h[1]


def test_a_value_once_read_cannot_disappear():
    h = [
        op("write", 1, start=0, end=None),  # unknown outcome
        op("read", out=1, start=1, end=2),
        op("read", out=None, start=3, end=4),
    ]
    assert check(h).verdict is Verdict.ILLEGAL
    assert check(h[:2]).verdict is Verdict.OK


def test_unknown_write_may_take_effect_late_or_never():
    late = [op("write", 1, start=0, end=None), op("read", out=1, start=50, end=51)]
    never = [op("write", 1, start=0, end=None), op("read", out=None, start=50, end=51)]
    assert check(late).verdict is Verdict.OK
    assert check(never).verdict is Verdict.OK


def test_failed_cas_explained_only_by_an_unknown_write():
    base = [op("write", 1, start=0, end=1), op("cas", 1, 3, out=False, start=3, end=4)]
    assert check(base).verdict is Verdict.ILLEGAL
    assert check([*base, op("write", 2, start=2, end=None)]).verdict is Verdict.OK


def test_unknown_write_cannot_act_before_it_was_invoked():
    h = [op("read", out=1, start=0, end=1), op("write", 1, start=2, end=None)]
    assert check(h).verdict is Verdict.ILLEGAL


def test_cas_that_claims_to_swap_from_a_value_never_written_is_illegal():
    h = [op("write", 1, start=0, end=1), op("cas", 7, 8, out=True, start=2, end=3)]
    assert check(h).verdict is Verdict.ILLEGAL


def test_keys_are_checked_independently_and_the_illegal_one_is_named():
    good = [Operation(c, ("write", f"g{c}", c), None, 0, 1) for c in range(3)] + [
        Operation(c, ("read", f"g{c}"), c, 2, 3) for c in range(3)
    ]
    bad = [Operation(9, ("write", "bad", 1), None, 0, 1), Operation(9, ("read", "bad"), 2, 2, 3)]
    result = check(good + bad)
    assert result.verdict is Verdict.ILLEGAL
    verdicts = {p.key: p.verdict for p in result.partitions}
    assert verdicts == {
        "g0": Verdict.OK,
        "g1": Verdict.OK,
        "g2": Verdict.OK,
        "bad": Verdict.ILLEGAL,
    }
    assert result.witness.key == "bad"
    assert sum(p.operations for p in result.partitions) == len(good + bad)


def test_register_model_without_keys():
    h = [
        Operation(0, ("write", 5), None, 0, 1),
        Operation(1, ("cas", 5, 6), True, 2, 3),
        Operation(2, ("read",), 6, 4, 5),
    ]
    assert check_linearizability(h, RegisterModel()).verdict is Verdict.OK
    assert check_linearizability(h, RegisterModel(initial=5)).verdict is Verdict.OK
    stale = [*h, Operation(2, ("read",), 5, 6, 7)]
    assert check_linearizability(stale, RegisterModel()).verdict is Verdict.ILLEGAL


# --- unknown outcomes and budgets ------------------------------------------------------------


@pytest.mark.parametrize("seed", seeds(1, 2, 3))
def test_generated_histories_with_many_unknown_outcomes_are_accepted(seed):
    with seeded(seed):
        h = random_kv_history(random.Random(seed), operations=3000, keys=5, clients=12, unknown=0.3)
        assert sum(o.end is None for o in h) > 600
        result = check(h)
        assert result.verdict is Verdict.OK
        for part in result.partitions:
            assert_linearization([o for o in h if o.input[1] == part.key], part, KVModel())


@pytest.mark.parametrize("seed", seeds(4, 5))
def test_a_stale_read_planted_in_a_generated_history_is_found(seed):
    with seeded(seed):
        rng = random.Random(seed)
        h = random_kv_history(rng, operations=2000, keys=3, clients=8, unknown=0.1)
        # Plant a read, after everything else, of a value some completed write overwrote.
        last = max(o.end or o.start for o in h)
        write = next(o for o in h if o.input[0] == "write" and o.end is not None)
        stale = Operation("planted", ("read", write.input[1]), write.input[2], last + 1, last + 2)
        result = check([*h, stale])
        assert result.verdict is Verdict.ILLEGAL
        assert result.witness.failing is stale


def test_step_budget_gives_unknown():
    h = random_kv_history(random.Random(7), operations=500, keys=1, clients=8, unknown=0.2)
    result = check(h, max_steps=10)
    assert result.verdict is Verdict.UNKNOWN
    assert result.steps <= 10 + 1024  # checked between rounds of the search


def test_time_budget_gives_unknown_and_later_partitions_are_not_started():
    ticks = iter(range(10**9))
    h = random_kv_history(random.Random(8), operations=2000, keys=4, clients=8)
    result = check(h, budget=3, clock=lambda: next(ticks))
    assert result.verdict is Verdict.UNKNOWN
    assert Verdict.UNKNOWN in {p.verdict for p in result.partitions}
    assert any(p.steps == 0 for p in result.partitions)


def test_illegal_wins_over_unknown():
    bad = [Operation(0, ("write", "a", 1), None, 0, 1), Operation(0, ("read", "a"), 2, 2, 3)]
    big = random_kv_history(random.Random(9), operations=2000, keys=1, clients=8)
    result = check(bad + big, max_steps=50)
    assert [p.verdict for p in result.partitions] == [Verdict.ILLEGAL, Verdict.UNKNOWN]
    assert result.verdict is Verdict.ILLEGAL


# --- agreement with a brute force ------------------------------------------------------------


def random_small_history(rng, unique):
    """A few operations on one key with arbitrary (often wrong) outputs. Values repeat, or
    (``unique``) every write and cas writes a fresh one, as the chaos workloads do."""
    h = []
    values = [None, 1, 2, 3]
    for n in range(rng.randint(1, 7)):
        start = rng.uniform(0, 10)
        end = None if rng.random() < 0.3 else start + rng.uniform(0, 4)
        f = rng.choice(["read", "read", "write", "cas"])
        new = 10 + n if unique else rng.randint(1, 3)
        if f == "read":
            h.append(Operation(n, ("read", "k"), rng.choice(values), start, end))
        elif f == "write":
            h.append(Operation(n, ("write", "k", new), None, start, end))
        else:
            args = ("cas", "k", rng.choice(values), new)
            h.append(Operation(n, args, rng.random() < 0.5, start, end))
        if unique:
            values.append(new)
    return h


@pytest.mark.parametrize("unique", [False, True])
@pytest.mark.parametrize("seed", seeds(11))
def test_verdicts_agree_with_brute_force(seed, unique):
    rng = random.Random(seed)
    counts = {True: 0, False: 0}
    with seeded(seed):
        for _ in range(2000):
            h = random_small_history(rng, unique)
            expected = brute_force(h, PlainRegister())
            counts[expected] += 1
            for model in (KVModel(), PlainRegister()):
                result = check_linearizability(h, model)
                assert result.verdict is (Verdict.OK if expected else Verdict.ILLEGAL), (h, model)
                if expected:
                    assert_linearization(h, result.partitions[0], model)
                else:
                    w = result.witness
                    assert w.failing in h and w.failing.end is not None
                    # The history up to the failing completion is illegal, and up to the
                    # completion before it is not.
                    assert not brute_force(prefix(h, w.failing.end), PlainRegister())
                    ends = sorted({o.end for o in h if o.end is not None and o.end < w.failing.end})
                    if ends:
                        assert brute_force(prefix(h, ends[-1]), PlainRegister())
    assert min(counts.values()) > 200  # both verdicts well represented


# --- bad input -------------------------------------------------------------------------------


def test_operation_ending_before_it_starts_is_a_usage_error():
    with pytest.raises(ember.UsageError, match="ends before it starts"):
        check([op("write", 1, start=5, end=4)])


def test_non_operations_are_a_usage_error():
    with pytest.raises(ember.UsageError, match="Operation"):
        check([("write", "k", 1)])


def test_unknown_register_operation_is_a_usage_error():
    with pytest.raises(ember.UsageError, match="read, write or cas"):
        check([Operation(0, ("delete", "k"), None, 0, 1)])


def test_describe_for_reports():
    m = KVModel()
    assert m.describe(("read", "k"), 3) == "'k': read -> 3"
    assert m.describe(("write", "k", 3), UNKNOWN) == "'k': write 3 ?"
    assert m.describe(("cas", "k", 1, 2), False) == "'k': cas 1 -> 2: False"
