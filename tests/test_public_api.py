"""Pins the public surface, so nothing leaks into (or drops out of) it by accident."""

import types

import ember
import ember.actors
import ember.testing

EXPECTED = {
    "Actor",
    "AuthenticationError",
    "DiscoveryError",
    "FrameTooLarge",
    "UndecodableError",
    "BindError",
    "NodeEvent",
    "ProtocolError",
    "QueueFull",
    "UnsendableError",
    "CallTimeout",
    "ChildInfo",
    "ChildSpec",
    "Down",
    "EmberError",
    "Exit",
    "KILL",
    "KILLED",
    "MailboxFull",
    "NOCONNECTION",
    "NOPROC",
    "NORMAL",
    "Name",
    "NameTaken",
    "Node",
    "NodeDown",
    "NoProc",
    "Pid",
    "ProcessInfo",
    "RECEIVE_TIMEOUT",
    "ReceiveTimeout",
    "Ref",
    "RemoteError",
    "ReplyHandle",
    "SHUTDOWN",
    "StartError",
    "Statistics",
    "Supervisor",
    "TimerRef",
    "UnknownName",
    "UsageError",
    "call",
    "cancel_timer",
    "cast",
    "child",
    "current",
    "demonitor",
    "exit",
    "link",
    "monitor",
    "monitor_node",
    "register",
    "run",
    "self",
    "send",
    "send_after",
    "send_wait",
    "spawn",
    "spawn_link",
    "spawn_monitor",
    "subscribe_nodes",
    "trap_exits",
    "unlink",
    "unregister",
    "whereis",
}


def public(module):
    """Public names, leaving out subpackages (they appear as attributes once imported)."""
    return {
        n
        for n, v in vars(module).items()
        if not n.startswith("_") and not isinstance(v, types.ModuleType) and n != "annotations"
    }


def test_ember_namespace_is_pinned():
    assert public(ember) == EXPECTED


def test_errors_share_one_root_and_timeouts_are_timeouterrors():
    for name in (
        "BindError",
        "CallTimeout",
        "MailboxFull",
        "NameTaken",
        "NoProc",
        "NodeDown",
        "RemoteError",
        "StartError",
        "UnknownName",
        "UsageError",
    ):
        assert issubclass(getattr(ember, name), ember.EmberError)
    assert issubclass(ember.CallTimeout, TimeoutError)
    assert issubclass(ember.NodeDown, ember.NoProc)


ERRORS = {
    "AuthenticationError",
    "BindError",
    "CallTimeout",
    "DiscoveryError",
    "EmberError",
    "FrameTooLarge",
    "MailboxFull",
    "NameTaken",
    "NoProc",
    "NodeDown",
    "ProtocolError",
    "QueueFull",
    "RemoteError",
    "StartError",
    "UndecodableError",
    "UnknownName",
    "UnsendableError",
    "UsageError",
}


def test_every_exported_error_is_pinned_and_an_ember_error():
    exported = {
        name
        for name, value in vars(ember).items()
        if isinstance(value, type) and issubclass(value, BaseException)
    }
    assert exported == ERRORS
    assert all(issubclass(getattr(ember, name), ember.EmberError) for name in ERRORS)


def test_the_error_tables_name_only_exported_errors_and_all_of_them():
    """docs/actors.md and docs/nodes.md list every error a public call raises, by type."""
    import re
    from pathlib import Path

    docs = Path(__file__).resolve().parent.parent / "docs"
    named: set[str] = set()
    for page in ("actors.md", "nodes.md"):
        text = (docs / page).read_text()
        table = text.split("## Errors", 1)[1].split("\n## ", 1)[0]
        for row in table.splitlines():
            cells = row.split("|")
            if len(cells) > 3:
                named |= set(re.findall(r"`([A-Z][A-Za-z]+)`", cells[2]))
    assert named - {"TimeoutError", "OSError", "TypeError", "ValueError"} <= ERRORS
    assert ERRORS - {"EmberError"} <= named


def test_testing_namespace():
    assert public(ember.testing) == {
        "KVModel",
        "LinearizabilityResult",
        "Model",
        "Operation",
        "PartitionResult",
        "RegisterModel",
        "UNKNOWN",
        "Verdict",
        "Witness",
        "check_linearizability",
        "SimCluster",
        "SimNetwork",
        "VirtualTimeDeadlock",
        "VirtualTimeLoop",
        "run",
        "run_test",
        "seeded",
        "seeds",
    }


def test_observability_namespace():
    import ember.observability

    assert public(ember.observability) == {
        "AdminConfig",
        "AdminRequest",
        "AdminRoute",
        "Collector",
        "Histogram",
        "Metric",
        "Metrics",
        "MetricsExportConfig",
        "Tracing",
        "TracingConfig",
        "counter",
        "derive_token",
        "gauge",
        "int_param",
    }
