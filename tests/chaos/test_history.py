"""The Jepsen history model: invokes, completions, pairing, files, conversion to operations."""

import pytest

import ember
from ember.chaos._history import Event, History, kv_operations


def test_invoke_then_complete_pairs_and_counts():
    h = History()
    a = h.invoke(0, "write", "k", 1, 0.0)
    b = h.invoke(1, "read", "k", None, 0.1)
    h.complete(a, "ok", None, 0.5, node="n1")
    c = h.invoke(2, "cas", "k", (1, 2), 0.6)
    h.complete(b, "info", None, 0.7, error="CallTimeout")
    h.complete(c, "fail", None, 0.8, error="NoLeader")
    d = h.invoke(3, "write", "k", 3, 0.9)
    assert [e.type for e in h] == ["invoke", "invoke", "ok", "invoke", "info", "fail", "invoke"]
    assert h.counts() == {"ok": 1, "fail": 1, "info": 1, "open": 1}
    pairs = h.pairs()
    assert [(i.process, None if c is None else c.type) for i, c in pairs] == [
        (0, "ok"),
        (1, "info"),
        (2, "fail"),
        (3, None),
    ]
    assert h.open() == [d]
    assert pairs[0][1].node == "n1" and pairs[1][1].error == "CallTimeout"


def test_a_process_has_one_operation_open_at_a_time():
    h = History()
    a = h.invoke(0, "read", "k", None, 0.0)
    with pytest.raises(ember.UsageError, match="already has an operation open"):
        h.invoke(0, "read", "k", None, 0.1)
    h.complete(a, "ok", 1, 0.2)
    with pytest.raises(ember.UsageError, match="is not open"):
        h.complete(a, "ok", 1, 0.3)
    with pytest.raises(ember.UsageError, match="ok, fail or info"):
        h.complete(h.invoke(0, "read", "k", None, 0.4), "invoke", None, 0.5)


def test_dump_and_load_round_trip(tmp_path):
    h = History()
    a = h.invoke(0, "cas", "k", (1, 2), 0.0)
    h.complete(a, "ok", True, 0.25, node="n2")
    b = h.invoke(1, "read", ("pair", 1), None, 0.3)
    h.complete(b, "info", None, 0.4, error="OutcomeUnknown")
    path = tmp_path / "history.jsonl"
    h.dump(path)
    assert len(path.read_text().splitlines()) == 4
    again = History.load(path)
    assert again.events == h.events  # JSON lists come back as tuples


def test_load_names_the_bad_line(tmp_path):
    path = tmp_path / "history.jsonl"
    good = Event(0, "invoke", 0, "read", "k", None, 0.0).as_dict()
    path.write_text(f'{__import__("json").dumps(good)}\n{{"type": "bogus"}}\n')
    with pytest.raises(ember.UsageError, match=r"history.jsonl:2"):
        History.load(path)


def test_kv_operations_drop_fails_and_make_info_and_open_unknown():
    h = History()
    w = h.invoke(0, "write", "k", 1, 0.0)
    r = h.invoke(1, "read", "k", None, 0.1)
    h.complete(w, "ok", None, 1.0)
    h.complete(r, "ok", 1, 1.1)
    c = h.invoke(2, "cas", "k", (1, 2), 1.2)
    h.complete(c, "info", None, 2.0)
    f = h.invoke(3, "write", "k", 9, 2.1)
    h.complete(f, "fail", None, 2.2)
    h.invoke(4, "final_read", "k", None, 3.0)  # never completed
    h.invoke(5, "register", "name", "pid", 3.1)  # not a KV operation
    ops = kv_operations(h)
    assert [(o.input, o.output, o.start, o.end) for o in ops] == [
        (("write", "k", 1), None, 0.0, 1.0),
        (("read", "k"), 1, 0.1, 1.1),
        (("cas", "k", 1, 2), None, 1.2, None),
        (("read", "k"), None, 3.0, None),
    ]
    assert [o.id for o in ops] == [w.index, r.index, c.index, 8]
