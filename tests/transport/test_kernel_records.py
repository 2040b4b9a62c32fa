"""The kernel's records on the wire (``_kernel_records.py``): child specs by reference, checked
against the receiver's allow-list, and child rows; no event loop needed."""

from __future__ import annotations

from typing import Any

import pytest

import ember
from ember import ChildInfo, Pid, child
from ember.transport._codec import Codec
from ember.transport._errors import ProtocolError, UnsendableError
from ember.transport._kernel_records import register_kernel_records, spawn_allowed


class Worker(ember.Actor):
    async def receive(self, msg: Any) -> Any:
        return msg


@pytest.mark.parametrize(
    ("target", "allow", "ok"),
    [
        ("app:A", ("app",), True),
        ("app.x:A", ("app",), True),
        ("app.x.y:A", ("app.x",), True),
        ("apple:A", ("app",), False),  # a prefix matches whole module names
        ("apple.x:A", ("app",), False),
        ("app.x:A", ("app.",), True),  # a trailing dot is the same prefix
        ("appx:A", ("app.",), False),
        ("other:A", ("app", "other"), True),
        ("any.thing:A", None, True),
        ("ember.actors._supervisor:Supervisor", (), True),
        ("ember.actors._node:Node", (), False),
    ],
)
def test_spawn_allow_prefixes_match_whole_module_names(
    target: str, allow: tuple[str, ...] | None, ok: bool
) -> None:
    assert spawn_allowed(target, allow) is ok


def codecs(allow: tuple[str, ...] | None = None) -> tuple[Codec, Codec]:
    sender, receiver = Codec(), Codec()
    register_kernel_records(sender, "a", lambda: None)
    register_kernel_records(receiver, "b", lambda: allow)
    return sender, receiver


def test_a_child_spec_travels_by_reference_and_is_imported_on_arrival() -> None:
    sender, receiver = codecs()
    spec = child(Worker, 1, id="w", restart="transient", name="wk", extra=[2])
    back = receiver.decode(sender.encode(spec))
    assert back == spec and back.cls is Worker
    from examples.cluster_actors import Counter

    by_ref = child("examples.cluster_actors:Counter", 3, id="r")
    assert by_ref.cls == "examples.cluster_actors:Counter"
    assert receiver.decode(sender.encode(by_ref)) == child(Counter, 3, id="r")


def test_a_refused_child_spec_fails_to_decode_with_the_usage_error_as_cause() -> None:
    sender, receiver = codecs(allow=("examples",))
    data = sender.encode(("start", [child(Worker)]))  # nested: still checked
    with pytest.raises(ProtocolError) as info:
        receiver.decode(data)
    assert isinstance(info.value.__cause__, ember.UsageError)
    assert "not allowed on b" in str(info.value.__cause__)
    missing = sender.encode(child("examples.no_such:Thing"))
    with pytest.raises(ProtocolError) as info:
        receiver.decode(missing)
    assert "cannot import" in str(info.value.__cause__)


def test_a_class_that_cannot_be_imported_by_reference_is_unsendable() -> None:
    class Local(ember.Actor):
        pass

    sender, _ = codecs()
    with pytest.raises(UnsendableError, match="cannot be imported"):
        sender.encode(child(Local))


def test_child_rows_carry_the_class_only_if_its_module_is_loaded_here() -> None:
    sender, receiver = codecs()
    pid = Pid("a", 3, 1)
    row = ChildInfo(id="w", pid=pid, kind="worker", behaviour=Worker)
    assert receiver.decode(sender.encode(row)) == row
    remote = ChildInfo(id="x", pid=None, kind="worker", behaviour="not_loaded.mod:X")
    assert receiver.decode(sender.encode(remote)).behaviour == "not_loaded.mod:X"
