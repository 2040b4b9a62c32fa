"""How errors cross nodes (``_wire_errors.py``), without a network: Ember errors are rebuilt
with their type and arguments, anything else is a RemoteError, and only Ember's classes are
ever built from what a peer sends."""

from __future__ import annotations

import pytest

import ember
from ember.transport import FrameTooLarge, UnsendableError
from ember.transport._codec import Codec
from ember.transport._wire_errors import MAX_MESSAGE, ErrorCodec, wire_reason


def through_the_wire(exc: BaseException) -> BaseException:
    """``exc`` as the caller on node b gets it from node a (encoded and decoded too)."""
    errors, codec = ErrorCodec(), Codec()
    return errors.from_wire(codec.decode(codec.encode(errors.to_wire(exc))), "a")


def raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


@pytest.mark.parametrize(
    "exc",
    [
        ember.NoProc(ember.Pid("a", 3, 1), ("exception", "builtins.ValueError", "x")),
        ember.NodeDown(("sup", "c")),
        ember.NameTaken("db", ember.Pid("a", 4, 1)),
        ember.UnknownName(("x", 1)),
        ember.MailboxFull(ember.Pid("a", 5, 1)),
        ember.UsageError("spawning 'x:Y' is not allowed on a"),
        ember.CallTimeout("call to <a.6.1> got no reply within 1.0 s"),
        FrameTooLarge(10, 5, "b", "the reply of <a.7.1>"),
        ember.RemoteError("builtins.KeyError", "7", "Traceback...", "c"),
    ],
)
def test_ember_errors_arrive_as_themselves(exc: BaseException) -> None:
    back = through_the_wire(exc)
    assert type(back) is type(exc)
    assert back.__reduce__()[:2] == exc.__reduce__()[:2]
    assert str(back) == str(exc)
    if not isinstance(exc, ember.RemoteError):
        assert "(raised on node a)" in back.__notes__


def test_a_start_error_keeps_its_reason_and_the_remote_traceback_of_its_cause() -> None:
    cause = raised(ValueError("no database"))
    error = ember.StartError(cause)
    error.__cause__ = cause
    back = through_the_wire(error)
    assert isinstance(back, ember.StartError)
    assert back.reason == ("exception", "builtins.ValueError", "no database")
    assert isinstance(back.__cause__, ember.RemoteError)
    assert back.__cause__.type_name == "builtins.ValueError"
    assert "raise exc" in back.__cause__.remote_traceback and back.__cause__.node == "a"


def test_other_exceptions_arrive_as_remote_errors_with_their_traceback() -> None:
    back = through_the_wire(raised(KeyError("k")))
    assert isinstance(back, ember.RemoteError)
    assert (back.type_name, back.message, back.node) == ("builtins.KeyError", "'k'", "a")
    assert "KeyError" in back.remote_traceback


def test_an_unsendable_error_names_the_type_it_could_not_send() -> None:
    back = through_the_wire(UnsendableError(object, "not a type the codec knows"))
    assert isinstance(back, UnsendableError) and back.value_type == "builtins.object"
    assert "cannot send a value of type builtins.object" in str(back)


def test_only_embers_own_classes_are_built_from_a_peers_term() -> None:
    errors = ErrorCodec()
    for name in ("builtins.KeyError", "os.system", "ember.no.Such", "subprocess.Popen"):
        back = errors.from_wire([name, "m", ["rm -rf /"], "", None], "evil")
        assert isinstance(back, ember.RemoteError) and back.type_name == name
    # wrong arguments for an Ember class: still an error, never an exception while decoding
    back = errors.from_wire(["ember._errors.NameTaken", "m", [1, 2, 3, 4], "", None], "x")
    assert isinstance(back, ember.RemoteError)
    for junk in (None, 3, [1, 2], "text", [None] * 5):
        assert isinstance(errors.from_wire(junk, "x"), ember.RemoteError)


def test_long_messages_and_nested_reasons_are_made_to_travel() -> None:
    term = ErrorCodec().to_wire(ember.UsageError("x" * 10 * MAX_MESSAGE))
    assert len(term[1]) == MAX_MESSAGE
    reason = ("failed_to_start_child", "db", [ValueError("v"), {"k": KeyError("k")}], int)
    assert wire_reason(reason) == (
        "failed_to_start_child",
        "db",
        [
            ("exception", "builtins.ValueError", "v"),
            {"k": ("exception", "builtins.KeyError", "'k'")},
        ],
        "builtins.int",
    )
