"""The wire form of Raft messages, membership-change entries and the config's validation."""

from __future__ import annotations

from typing import get_args

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ember import EmberError
from ember.consensus._config import RaftConfig
from ember.consensus._errors import MessageDecodeError, RaftUsageError
from ember.consensus._messages import (
    ConfChange,
    ConfChangeOp,
    Message,
    MsgType,
    decode_conf_change,
    decode_message,
    encode_conf_change,
    encode_message,
)
from ember.consensus._types import ConfState, Entry, EntryType, SnapshotMeta

names = st.text(min_size=1, max_size=5)
uints = st.integers(min_value=0, max_value=2**63)
entries = st.builds(Entry, uints, uints, st.sampled_from(EntryType), st.binary(max_size=20))
metas = st.builds(
    SnapshotMeta,
    uints,
    uints,
    st.builds(ConfState, st.tuples(names, names), st.tuples(names)),
)


@st.composite
def messages(draw: st.DrawFn) -> Message:
    meta = draw(st.none() | metas)
    mtype = draw(st.sampled_from(MsgType))
    term, log_term, index = draw(uints), draw(uints), draw(uints)
    ents = tuple(draw(st.lists(entries, max_size=4)))
    if mtype == MsgType.APP:  # appends carry well-formed runs of entries
        log_term, term = sorted((log_term, term))
        terms = sorted(draw(st.lists(st.integers(log_term, term), max_size=4)))
        data = draw(st.binary(max_size=8))
        ents = tuple(Entry(index + 1 + k, t, EntryType.NORMAL, data) for k, t in enumerate(terms))
    return Message(
        type=mtype,
        to=draw(names),
        frm=draw(names),
        term=term,
        log_term=log_term,
        index=index,
        entries=ents,
        commit=draw(uints),
        reject=draw(st.booleans()),
        reject_hint=draw(uints),
        context=draw(st.binary(max_size=8)),
        snapshot=meta,
        snap_offset=draw(uints),
        snap_data=draw(st.binary(max_size=8)) if meta else b"",
        snap_done=draw(st.booleans()) if meta else False,
    )


@given(messages())
@settings(deadline=None)  # no timing goal here: a loaded machine must not fail it
def test_every_message_round_trips(msg: Message) -> None:
    assert decode_message(encode_message(msg)) == msg


def _wire(msg: Message) -> list[object]:
    return msgpack.unpackb(encode_message(msg))  # type: ignore[no-any-return]


GOOD = Message(MsgType.APP, "2", "1", term=3, entries=(Entry(1, 3, EntryType.NORMAL, b"x"),))


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda w: w[:5], "array of 13"),
        (lambda w: [99, *w[1:]], "unknown message type"),
        (lambda w: [w[0], 7, *w[2:]], "to must be a string"),
        (lambda w: [*w[:3], -1, *w[4:]], "term must be an unsigned int"),
        (lambda w: [*w[:6], [1, 3, 9, b"x"], *w[7:]], "unknown entry type"),
        (lambda w: [*w[:6], [1, 3, 0], *w[7:]], "4-tuples"),
        (lambda w: [*w[:6], [1, 3, 0, "x"], *w[7:]], "data must be bytes"),
        (lambda w: [*w[:8], 1, *w[9:]], "reject must be a bool"),
        (lambda w: [*w[:11], -3, None], "snap_offset must be an unsigned int"),
        (lambda w: [*w[:12], [1, 2]], "snapshot must be an array of 6"),
    ],
)
def test_malformed_messages_raise_a_typed_error(mutate: object, match: str) -> None:
    raw = msgpack.packb(mutate(_wire(GOOD)))  # type: ignore[operator]
    with pytest.raises(MessageDecodeError, match=match) as info:
        decode_message(raw)
    assert isinstance(info.value, EmberError)


@given(st.binary(max_size=64))
@settings(deadline=None)
def test_garbage_never_escapes_as_another_error(data: bytes) -> None:
    try:
        decode_message(data)
    except MessageDecodeError:
        pass


@pytest.mark.parametrize(
    ("entries", "match"),
    [
        ((Entry(7, 3),), "entry 7 where 6 was due"),
        ((Entry(6, 3), Entry(8, 3)), "entry 8 where 7 was due"),
        ((Entry(6, 4),), "term 4 out of order"),  # above the message's term
        ((Entry(6, 1),), "term 1 out of order"),  # below log_term
        ((Entry(6, 3), Entry(7, 2)), "term 2 out of order"),  # decreasing
    ],
)
def test_impossible_appends_are_rejected(entries: tuple[Entry, ...], match: str) -> None:
    msg = Message(MsgType.APP, "2", "1", term=3, log_term=2, index=5, entries=entries)
    with pytest.raises(MessageDecodeError, match=match):
        decode_message(encode_message(msg))


def test_conf_change_entries_round_trip_and_reject_garbage() -> None:
    ops = get_args(ConfChangeOp)
    assert "demote" in ops
    for op in ops:
        cc = ConfChange(op, "n4")
        assert decode_conf_change(encode_conf_change(cc)) == cc
    with pytest.raises(MessageDecodeError):
        decode_conf_change(msgpack.packb(("explode", "n4")))
    with pytest.raises(MessageDecodeError):
        decode_conf_change(b"\xc1")
    with pytest.raises(RaftUsageError):
        ConfChange("add_voter", "")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"id": ""}, "id"),
        ({"election_tick": 0}, "election_tick"),
        ({"election_tick": 3, "heartbeat_tick": 2}, "twice"),
        ({"max_inflight_msgs": True}, "max_inflight_msgs"),
        ({"read_only": "fast"}, "read_only"),
        ({"read_only": "lease", "check_quorum": False}, "requires check_quorum"),
        ({"applied": -1}, "applied"),
    ],
)
def test_config_is_validated(fields: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"id": "1", **fields}
    with pytest.raises(RaftUsageError, match=match):
        RaftConfig(**args)  # type: ignore[arg-type]


def test_config_defaults() -> None:
    cfg = RaftConfig(id="a")
    assert (cfg.election_tick, cfg.heartbeat_tick, cfg.pre_vote, cfg.check_quorum) == (
        10,
        1,
        True,
        True,
    )
    assert cfg.read_only == "safe"
