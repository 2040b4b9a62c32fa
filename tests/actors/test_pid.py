"""Pids and refs: identity, ordering, printing and pickling. Pure values: no event loop."""

from __future__ import annotations

import copy
import pickle

import pytest

from ember import Pid, Ref


def test_pid_equality_is_by_node_serial_and_creation() -> None:
    assert Pid("a", 17, 1) == Pid("a", 17, 1)
    assert Pid("a", 17, 1) != Pid("b", 17, 1)
    assert Pid("a", 17, 1) != Pid("a", 18, 1)
    assert Pid("a", 17, 1) != Pid("a", 17, 2)  # an earlier incarnation of the node


def test_pid_is_not_equal_to_other_types() -> None:
    assert Pid("a", 1, 1) != ("a", 1, 1)
    assert Pid("a", 1, 1) != "<a.1.1>"
    assert Pid("a", 1, 1) != Ref("a", 1, 1)


def test_equal_pids_hash_equal_and_work_as_keys() -> None:
    table = {Pid("a", 17, 1): "x"}
    assert hash(Pid("a", 17, 1)) == hash(Pid("a", 17, 1))
    assert table[Pid("a", 17, 1)] == "x"
    assert len({Pid("a", 1, 1), Pid("a", 1, 1), Pid("a", 1, 2)}) == 2


def test_pids_order_by_node_then_creation_then_serial() -> None:
    pids = [Pid("b", 1, 1), Pid("a", 2, 2), Pid("a", 10, 1), Pid("a", 2, 1)]
    assert sorted(pids) == [Pid("a", 2, 1), Pid("a", 10, 1), Pid("a", 2, 2), Pid("b", 1, 1)]
    assert Pid("a", 1, 1) < Pid("a", 2, 1) <= Pid("a", 2, 1)
    assert Pid("a", 3, 1) > Pid("a", 2, 1) >= Pid("a", 2, 1)


def test_serials_order_numerically_not_as_text() -> None:
    assert Pid("a", 9, 1) < Pid("a", 10, 1)


def test_pid_does_not_order_against_other_types() -> None:
    with pytest.raises(TypeError):
        _ = Pid("a", 1, 1) < 5  # type: ignore[operator]
    with pytest.raises(TypeError):
        sorted([Pid("a", 1, 1), "x"])  # type: ignore[type-var]


def test_pid_repr() -> None:
    assert repr(Pid("a", 17, 1)) == "<a.17.1>"
    assert str(Pid("node1", 3, 2)) == "<node1.3.2>"


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pid_pickles_to_an_equal_pid(protocol: int) -> None:
    pid = Pid("a", 17, 1)
    back = pickle.loads(pickle.dumps(pid, protocol))
    assert back == pid and hash(back) == hash(pid) and repr(back) == "<a.17.1>"


def test_pickled_and_copied_pids_do_not_carry_the_local_process() -> None:
    pid = Pid("a", 1, 1)
    pid._proc = object()  # type: ignore[assignment]  # what spawn sets on a live pid
    assert pickle.loads(pickle.dumps(pid))._proc is None
    assert copy.copy(pid)._proc is None and copy.deepcopy(pid)._proc is None


def test_ref_equality_and_hashing() -> None:
    assert Ref("a", 5, 1) == Ref("a", 5, 1)
    assert hash(Ref("a", 5, 1)) == hash(Ref("a", 5, 1))
    assert Ref("a", 5, 1) != Ref("a", 6, 1)
    assert Ref("a", 5, 1) != Ref("b", 5, 1)
    assert Ref("a", 5, 1) != Ref("a", 5, 2)
    assert Ref("a", 5, 1) != Pid("a", 5, 1)
    assert len({Ref("a", 5, 1), Ref("a", 5, 1), Ref("a", 6, 1)}) == 2


def test_refs_are_ordered_like_pids() -> None:
    refs = [Ref("b", 1, 1), Ref("a", 10, 1), Ref("a", 9, 1), Ref("a", 1, 2)]
    assert sorted(refs) == [Ref("a", 9, 1), Ref("a", 10, 1), Ref("a", 1, 2), Ref("b", 1, 1)]
    assert Ref("a", 1, 1) < Ref("a", 2, 1) <= Ref("a", 2, 1)
    assert Ref("a", 3, 1) > Ref("a", 2, 1) >= Ref("a", 2, 1)
    with pytest.raises(TypeError):
        _ = Ref("a", 1, 1) < Pid("a", 1, 1)  # type: ignore[operator]


def test_ref_repr() -> None:
    assert repr(Ref("a", 5, 1)) == "#Ref<a.5.1>"


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_ref_pickles_to_an_equal_ref(protocol: int) -> None:
    ref = Ref("a", 5, 1)
    back = pickle.loads(pickle.dumps(ref, protocol))
    assert back == ref and hash(back) == hash(ref)
