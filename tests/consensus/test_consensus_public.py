"""Pins the public surface of ``ember.consensus``, so nothing leaks into (or drops out of) it."""

import ember.consensus

EXPECTED = {
    "Cluster",
    "ClusterConfig",
    "ClusterError",
    "CommandFailed",
    "Compacted",
    "ConfChange",
    "ConfState",
    "DurableStorage",
    "Entry",
    "EntryType",
    "HardState",
    "KVStateMachine",
    "LogStorage",
    "MemoryStorage",
    "Message",
    "MessageDecodeError",
    "NoLeader",
    "NotLeader",
    "OutcomeUnknown",
    "ProposalDropped",
    "RaftConfig",
    "RaftUsageError",
    "RawNode",
    "ReadState",
    "ReadTimeout",
    "Ready",
    "Role",
    "Snapshot",
    "SnapshotMeta",
    "SoftState",
    "StateMachine",
    "Status",
    "StorageError",
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
    for name in ("NoLeader", "NotLeader", "OutcomeUnknown", "WriteTimeout", "ReadTimeout"):
        assert issubclass(getattr(ember.consensus, name), ember.EmberError)
    assert issubclass(ember.consensus.WriteTimeout, TimeoutError)
    assert issubclass(ember.consensus.WriteTimeout, ember.consensus.OutcomeUnknown)
    assert ember.consensus.NotLeader("b").leader_hint == "b"
