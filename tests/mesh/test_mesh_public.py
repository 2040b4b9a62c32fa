"""Pins the public surface of ``ember.mesh``, so nothing leaks into (or drops out of) it."""

import ast
import pathlib
import types

import ember.mesh

EXPECTED = {
    "MAX_ADDRESS_SIZE",
    "MAX_NAME_SIZE",
    "Ack",
    "Alive",
    "Dead",
    "IndirectPing",
    "Member",
    "MemberAlive",
    "MemberEvent",
    "MemberFailed",
    "MemberJoined",
    "MemberLeft",
    "MemberReaped",
    "MemberStatus",
    "MemberSuspect",
    "MemberUpdated",
    "Message",
    "Meta",
    "Nack",
    "Outgoing",
    "Ping",
    "PushPull",
    "Ready",
    "SimEvent",
    "SimMember",
    "SimStatistics",
    "Simulation",
    "Suspect",
    "Swim",
    "SwimConfig",
    "SwimStatistics",
    "TransportHint",
    "Discovery",
    "DiscoveryError",
    "DiscoveryStatistics",
    "DnsSeeds",
    "MdnsDiscovery",
    "Membership",
    "MeshStatistics",
    "Seed",
    "SeedSpecError",
    "StaticSeeds",
    "make_discovery",
    "decode_message",
    "decode_packet",
    "encode_message",
    "encode_packet",
    "message_size",
}


def test_mesh_namespace_is_pinned() -> None:
    public = {
        n
        for n, v in vars(ember.mesh).items()
        if not n.startswith("_") and not isinstance(v, types.ModuleType)
    }
    assert public == EXPECTED


def test_the_core_does_no_io_reads_no_clock_and_uses_no_global_randomness() -> None:
    forbidden = {"asyncio", "socket", "time", "datetime", "os", "selectors", "threading"}
    shells = {"_shell.py", "_mdns.py", "_discovery.py"}  # the I/O around the core
    for path in pathlib.Path(ember.mesh.__file__).parent.glob("_*.py"):
        if path.name in shells:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = {(node.module or "").split(".")[0]}
            else:
                names = set()
            assert not names & forbidden, f"{path.name} imports {names & forbidden}"
            # the random module only provides the type of the injected generator
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "random"
            ):
                assert node.attr == "Random", f"{path.name} uses random.{node.attr}"
