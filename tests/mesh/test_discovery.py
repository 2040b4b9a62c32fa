"""Discovery sources: static seeds, DNS seeds (a fake resolver) and mDNS in one process.

The mDNS tests run real zeroconf on the loopback interface only (``host="127.0.0.1"`` makes
``MdnsDiscovery`` join the group there), so nothing leaves the machine. Each test uses its own
cluster names, so other mDNS users on this machine cannot disturb the assertions.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable

import dns.exception
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import pytest
from meshkit import FakeResolver

from ember import EmberError, UsageError
from ember.mesh._discovery import (
    Discovery,
    DiscoveryError,
    DnsSeeds,
    Seed,
    SeedSpecError,
    StaticSeeds,
    make_discovery,
    parse_address,
    parse_seed,
    parse_seeds,
)
from ember.mesh._mdns import MdnsDiscovery, instance_name

BOUND = 20.0  # generous: registration probing alone takes about 1.2 s


# -- static seeds ------------------------------------------------------------------------------


def test_seed_specs_parse_with_and_without_names() -> None:
    assert parse_seed("a@10.0.0.1:7946") == Seed("10.0.0.1:7946", "a")
    assert parse_seed(" 10.0.0.1:7946 ") == Seed("10.0.0.1:7946", None)
    assert parse_seed("n1@[::1]:4000") == Seed("[::1]:4000", "n1")
    assert parse_seed("db-1@db.example:1") == Seed("db.example:1", "db-1")
    assert parse_seeds("a@h:1,b@h:2, h:3,a@h:1") == [
        Seed("h:1", "a"),
        Seed("h:2", "b"),
        Seed("h:3"),
    ]
    assert parse_seeds(["a@h:1", "h:2"]) == [Seed("h:1", "a"), Seed("h:2")]
    assert parse_address("[::1]:80") == ("::1", 80)


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "host",
        "host:",
        ":7946",
        "host:0",
        "host:65536",
        "host:http",
        "@host:1",
        "a@b@host:1",
        "a b@host:1",
        "::1:7946",
        "[::1:7946",
        "[nothost]:1",
        "a,b:1",
        "x" * 200 + ":1",
        "n" * 200 + "@host:1",
    ],
)
def test_bad_seed_specs_are_refused_with_a_typed_error(spec: str) -> None:
    with pytest.raises(SeedSpecError) as info:
        parse_seeds(spec)
    assert isinstance(info.value, UsageError) and isinstance(info.value, EmberError)
    bad_part = spec.split(",", maxsplit=1)[0]  # the error names the offending part
    assert (repr(bad_part) in str(info.value)) if bad_part else "empty" in str(info.value)


async def test_static_seeds_report_each_seed_and_count() -> None:
    found: list[Seed] = []
    source = StaticSeeds("a@127.0.0.1:7001,127.0.0.1:7002")
    await source.start(found.append)
    assert found == [Seed("127.0.0.1:7001", "a"), Seed("127.0.0.1:7002")]
    assert await source.seeds() == found
    assert source.statistics().found == 2
    await source.stop()
    with pytest.raises(UsageError):
        StaticSeeds([])


# -- DNS seeds ---------------------------------------------------------------------------------


async def test_dns_seeds_resolve_a_and_aaaa_records_with_the_given_port() -> None:
    resolver = FakeResolver(
        {
            ("ember.default.svc.cluster.local", "A"): ["10.1.0.5", "10.1.0.6"],
            ("ember.default.svc.cluster.local", "AAAA"): ["fd00::5"],
        }
    )
    source = DnsSeeds("ember.default.svc.cluster.local.", port=7946, resolver=resolver)
    found: list[Seed] = []
    await source.start(found.append)
    assert found == [Seed("10.1.0.5:7946"), Seed("10.1.0.6:7946"), Seed("[fd00::5]:7946")]
    assert await source.seeds() == found
    stats = source.statistics()
    assert (stats.found, stats.lookups, stats.resolve_errors) == (3, 4, 0)


async def test_dns_seeds_follow_srv_records_in_priority_order() -> None:
    svc = "_ember._tcp.ember.default.svc.cluster.local"
    resolver = FakeResolver(
        {
            (svc, "SRV"): [
                "20 0 7000 ember-1.ember.default.svc.cluster.local.",
                "10 5 7946 ember-0.ember.default.svc.cluster.local.",
                "10 0 7946 10.1.0.9.",
            ],
            ("ember-0.ember.default.svc.cluster.local", "A"): ["10.1.0.7"],
            ("ember-0.ember.default.svc.cluster.local", "AAAA"): dns.resolver.NoAnswer(),
            ("ember-1.ember.default.svc.cluster.local", "A"): ["10.1.0.8"],
            ("ember-1.ember.default.svc.cluster.local", "AAAA"): dns.resolver.NoAnswer(),
        }
    )
    # A plain name without a port means SRV records of _ember._tcp.<name>.
    source = DnsSeeds("ember.default.svc.cluster.local", resolver=resolver)
    assert source.srv_name == svc
    assert await source.seeds() == [
        Seed("10.1.0.7:7946"),
        Seed("10.1.0.9:7946"),
        Seed("10.1.0.8:7000"),
    ]
    assert source.statistics().resolve_errors == 0  # NoAnswer for AAAA is not an error
    # A name starting with "_" is taken as the SRV name itself.
    assert DnsSeeds("_gossip._udp.x.local", resolver=resolver).srv_name == "_gossip._udp.x.local"


async def test_dns_failures_are_counted_never_raised() -> None:
    resolver = FakeResolver(
        {
            ("seeds.example", "A"): dns.exception.Timeout(),
            ("seeds.example", "AAAA"): dns.resolver.NoNameservers(),
        }
    )
    source = DnsSeeds("seeds.example", port=7946, resolver=resolver)
    found: list[Seed] = []
    await source.start(found.append)
    assert found == []
    assert await source.seeds() == []
    stats = source.statistics()
    assert stats.resolve_errors == 4 and stats.lookups == 4 and stats.found == 0
    # Recovery: the next lookup that works is reported.
    resolver.table[("seeds.example", "A")] = ["10.1.0.1"]
    assert await source.seeds() == [Seed("10.1.0.1:7946")]
    assert source.statistics().found == 1


def test_dns_seeds_refuse_bad_arguments() -> None:
    for name, port in (("", None), ("a b", None), ("host:1", None), ("ok.example", 0)):
        with pytest.raises(UsageError):
            DnsSeeds(name, port, resolver=FakeResolver({}))


def test_make_discovery_builds_each_kind_and_refuses_bad_requests() -> None:
    assert isinstance(make_discovery("seeds", join="a@h:1"), StaticSeeds)
    dns_source = make_discovery("dns", dns_name="x.example", dns_port=1, resolver=FakeResolver({}))
    assert isinstance(dns_source, DnsSeeds)
    mdns = make_discovery("mdns", cluster="c", node="n", host="127.0.0.1", port=7000)
    assert isinstance(mdns, MdnsDiscovery)
    sources: list[Discovery] = [mdns, dns_source]  # both satisfy the protocol (checked by mypy)
    assert len(sources) == 2
    for kind, kwargs in (
        ("seeds", {}),
        ("dns", {}),
        ("gossip", {}),
        ("seeds", {"join": "h:1", "interfaces": "auto"}),
    ):
        with pytest.raises(UsageError):
            make_discovery(kind, **kwargs)  # type: ignore[arg-type]


def test_mdns_refuses_bad_arguments_and_names_instances_per_cluster() -> None:
    for cluster, node, host, port in (
        ("", "n", "127.0.0.1", 1),
        ("c", "", "127.0.0.1", 1),
        ("c", "n", "0.0.0.0", 1),
        ("c", "n", "example.org", 1),
        ("c", "n", "::1", 1),
        ("c", "n", "127.0.0.1", 0),
    ):
        with pytest.raises(UsageError):
            MdnsDiscovery(cluster, node, host, port)
    assert instance_name("blue", "n1") != instance_name("green", "n1")
    long_name = instance_name("c" * 100, "n1")
    assert len(long_name.encode()) <= 63 and long_name.startswith("n1-")
    assert long_name != instance_name("c" * 101, "n1")


# -- mDNS, in one process, on loopback -----------------------------------------------------


async def wait_until(condition: Callable[[], bool], what: str) -> None:
    async with asyncio.timeout(BOUND):
        while not condition():  # noqa: ASYNC110  # counters change without a callback
            await asyncio.sleep(0.02)
    assert condition(), what


class Peer:
    def __init__(self, cluster: str, node: str, port: int, *, probe: bool = False) -> None:
        self.found: list[Seed] = []
        self.source = MdnsDiscovery(cluster, node, "127.0.0.1", port, probe=probe)

    def names(self) -> set[str | None]:
        return {seed.name for seed in self.found}


@pytest.mark.ember_realtime
async def test_mdns_peers_of_one_cluster_find_each_other_and_not_another_cluster() -> None:
    blue, green = f"blue-{secrets.token_hex(4)}", f"green-{secrets.token_hex(4)}"
    a = Peer(blue, "a", 17001, probe=True)
    b = Peer(blue, "b", 17002)
    other = Peer(green, "a", 17003)  # the same node name in another cluster
    peers = (a, b, other)
    try:
        for peer in peers:
            await peer.source.start(peer.found.append)
        await wait_until(lambda: a.names() == {"b"} and b.names() == {"a"}, "a and b meet")
        assert a.found == [Seed("127.0.0.1:17002", "b")]
        assert b.found == [Seed("127.0.0.1:17001", "a")]
        await wait_until(
            lambda: all(p.source.statistics().ignored_other_cluster >= 1 for p in peers),
            "every peer heard of the other cluster",
        )
        assert other.found == []
        for peer in peers:
            stats = peer.source.statistics()
            assert stats.ignored_self >= 1 and stats.resolve_errors == 0
        assert await a.source.seeds() == a.found

        # A second node named "b" in the blue cluster is refused by probing.
        clash = MdnsDiscovery(blue, "b", "127.0.0.1", 17004, probe=True)
        with pytest.raises(DiscoveryError):
            await clash.start(lambda seed: None)

        # Stopping sends a goodbye: the others forget the peer.
        await b.source.stop()
        await wait_until(lambda: a.source.statistics().removed == 1, "a hears b's goodbye")
        assert await a.source.seeds() == []
        assert a.source.statistics().found == 1
    finally:
        for peer in peers:
            await peer.source.stop()
    await a.source.stop()  # idempotent


@pytest.mark.ember_realtime
async def test_mdns_peer_started_later_is_found_by_existing_ones() -> None:
    cluster = f"late-{secrets.token_hex(4)}"
    first = Peer(cluster, "first", 17011)
    late = Peer(cluster, "late", 17012)
    try:
        await first.source.start(first.found.append)
        await late.source.start(late.found.append)
        await wait_until(lambda: late.names() == {"first"}, "the late peer finds the first")
        await wait_until(lambda: first.names() == {"late"}, "the first hears the late one")
    finally:
        await first.source.stop()
        await late.source.stop()
