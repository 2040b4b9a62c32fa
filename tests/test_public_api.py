"""Pins the public surface, so nothing leaks into (or drops out of) it by accident."""

import types

import ember
import ember.actors
import ember.testing

EXPECTED = {
    "Actor",
    "AuthenticationError",
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
