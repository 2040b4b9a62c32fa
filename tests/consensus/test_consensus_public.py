"""Pins the public surface of ``ember.consensus``, so nothing leaks into (or drops out of) it."""

from pathlib import Path

import ember.consensus

EXPECTED = {
    "ChangePending",
    "Cluster",
    "ClusterConfig",
    "ClusterError",
    "CommandFailed",
    "CommandTooLarge",
    "Compacted",
    "ConfChange",
    "ConfState",
    "DurableStorage",
    "Entry",
    "EntryType",
    "GroupExists",
    "HardState",
    "KVStateMachine",
    "LogStorage",
    "MemoryStorage",
    "Message",
    "MessageDecodeError",
    "NoLeader",
    "NodeUnreachable",
    "NotLeader",
    "OutcomeUnknown",
    "ProposalDropped",
    "RaftConfig",
    "RaftUsageError",
    "RawNode",
    "ReadState",
    "ReadTimeout",
    "RequestTimeout",
    "Ready",
    "Role",
    "Snapshot",
    "SnapshotMeta",
    "SoftState",
    "StateMachine",
    "Status",
    "StorageError",
    "UnknownGroup",
    "Unavailable",
    "WriteTimeout",
    "apply",
    "decode_message",
    "encode_message",
}


def test_public_names() -> None:
    public = {n for n in dir(ember.consensus) if not n.startswith("_")}
    modules = {n for n in public if type(getattr(ember.consensus, n)).__name__ == "module"}
    assert public - modules == EXPECTED


def test_errors_are_ember_errors() -> None:
    c = ember.consensus
    for error in (
        c.ChangePending,
        c.CommandFailed,
        c.CommandTooLarge,
        c.GroupExists,
        c.NoLeader,
        c.NodeUnreachable,
        c.NotLeader,
        c.OutcomeUnknown,
        c.ReadTimeout,
        c.RequestTimeout,
        c.UnknownGroup,
        c.WriteTimeout,
    ):
        assert issubclass(error, c.ClusterError)
    assert issubclass(c.ClusterError, ember.EmberError)
    for timeout in (c.WriteTimeout, c.ReadTimeout, c.RequestTimeout):
        assert issubclass(timeout, TimeoutError)
    for misuse in (c.CommandTooLarge, c.GroupExists):
        assert issubclass(misuse, ember.UsageError)
    assert issubclass(c.WriteTimeout, c.OutcomeUnknown)
    assert c.NotLeader("b").leader_hint == "b"


def test_every_cluster_error_is_in_the_docs_table() -> None:
    docs = (Path(__file__).parents[2] / "docs" / "consensus.md").read_text()
    table = docs[docs.index("#### Errors: what the caller can do") :]
    table = table[: table.index("\n#### ", 10)]
    names = {n for n in dir(ember.consensus) if n.endswith(("Error", "Timeout"))} | {
        "ChangePending",
        "CommandFailed",
        "CommandTooLarge",
        "GroupExists",
        "NoLeader",
        "NodeUnreachable",
        "NotLeader",
        "OutcomeUnknown",
        "UnknownGroup",
        "UnsendableError",
        "UsageError",
    }
    names -= {"MessageDecodeError", "RaftUsageError", "StorageError"}  # the core's, below
    missing = sorted(n for n in names if f"`{n}" not in table and f"`ember.{n}" not in table)
    assert missing == []
