"""Configuration of the SWIM membership core: timing, fan-outs, limits.

:class:`SwimConfig` is a frozen, keyword-only dataclass. Every field is documented where it is
declared, defaults are filled in one place (the field defaults, which are the LAN profile) and
``__post_init__`` refuses values that cannot work. Three profiles tune it for where the nodes run:
:meth:`SwimConfig.local`, :meth:`SwimConfig.lan` and :meth:`SwimConfig.wan`, mirroring
memberlist's ``DefaultLocalConfig``, ``DefaultLANConfig`` and ``DefaultWANConfig``; each takes
field overrides as keywords. The derived quantities (suspicion timeouts, the retransmit limit,
the failure-detection bound) are methods here, so the docs, the core and the tests share them.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Self

from .._checks import check_int, check_positive
from .._errors import UsageError

__all__ = ["MAX_ADDRESS_SIZE", "MAX_NAME_SIZE", "SwimConfig"]

MAX_NAME_SIZE = 128
"""Longest member name, in UTF-8 bytes. With :data:`MAX_ADDRESS_SIZE` it bounds every protocol
message, so the packet budget can be checked once, here, instead of at every send."""
MAX_ADDRESS_SIZE = 128
"""Longest member address (``host:port``), in UTF-8 bytes."""

# Upper bounds of encoded message sizes (msgpack): a str of up to 128 bytes takes 130, an int up
# to 2**64 takes 9, a float 9, a small tag or bool 1, an array header 1.
_STR = MAX_NAME_SIZE + 2
_INT = 9
_LARGEST_PRIMARY_PACKET = 1 + (1 + 1 + _INT + 4 * _STR) + (1 + 1 + _STR + _INT + _STR)
"""A ping to a suspect with the buddy-system suspect beside it (the largest packet the core
sends before piggybacking); an indirect ping request is smaller."""
_ALIVE_OVERHEAD = 1 + 1 + 2 * _STR + _INT
"""An alive message without its metadata."""

PUSH_PULL_SCALE_THRESHOLD = 32
"""Members above which the push-pull period grows with log2 of the cluster size (memberlist)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class SwimConfig:
    """How one member probes, suspects, gossips and forgets. Times are in seconds.

    The defaults are the LAN profile (:meth:`lan`), which is memberlist's ``DefaultLANConfig``.
    """

    probe_interval: float = 1.0
    """Period of the failure detector: each member probes one other member per interval (scaled
    up by local health, see ``awareness_max_multiplier``). 1 s detects a crash in about 1.6 s on
    average (SWIM's e/(e-1) periods) while costing one ping and one ack per member per second."""
    probe_timeout: float = 0.5
    """How long a direct ping waits for its ack before indirect probes and the TCP fallback are
    tried. Must be below ``probe_interval``: the rest of the interval is the indirect window.
    500 ms is a generous LAN round trip, including a busy receiver's scheduling delay."""
    indirect_checks: int = 3
    """k: members asked to ping the target on our behalf when the direct ping times out. Three
    independent paths make a false suspicion from packet loss on one path unlikely (SWIM's k)."""
    tcp_fallback_probe: bool = True
    """Also ping the target over TCP when the direct ping times out, so a member whose UDP is
    blocked (one-way firewall, full socket buffer) is not declared failed while TCP works."""
    awareness_max_multiplier: int = 8
    """Lifeguard local health: the probe interval and timeout are scaled by (score + 1), the
    score staying in 0..multiplier-1. A member that misses acks because *it* is slow backs off
    to 8 s probes instead of accusing healthy peers."""
    suspicion_mult: int = 4
    """The minimum suspicion timeout is suspicion_mult * max(1, log10(n)) * probe_interval: 4 s
    at 10 members, 8 s at 100. It must outlast the gossip of the suspicion to the suspect and its
    refutation back, which both take O(log n) rounds. At least 2 (Lifeguard wants k = mult - 2
    independent confirmations)."""
    suspicion_max_timeout_mult: int = 6
    """Lifeguard dynamic suspicion: a suspicion starts at max = this * min and shrinks towards
    min (logarithmically) as k = suspicion_mult - 2 independent confirmations arrive. A lone,
    possibly mistaken, accuser waits 6x longer; for 10k members that is 96 s."""
    retransmit_mult: int = 4
    """λ: each piggybacked gossip message is sent λ * ceil(log10(n + 1)) times (8 at 10 to 99
    members), the epidemic bound that reaches every member with high probability."""
    gossip_interval: float = 0.2
    """Period of gossip rounds, which send pending broadcasts (if any) to ``gossip_fanout``
    random members. 200 ms spreads an update through 100 members in about 1.5 s."""
    gossip_fanout: int = 3
    """Members each gossip round sends to (memberlist's GossipNodes)."""
    gossip_to_the_dead_time: float = 30.0
    """Failed members keep receiving gossip this long after they fail, so one that was only
    cut off hears it was declared failed and refutes. Same as the push-pull interval."""
    push_pull_interval: float = 30.0
    """Period of full-state exchanges (anti-entropy) with one random member over TCP; above 32
    members it grows with log2(n) so the total rate stays bounded. 30 s is rare enough to be
    cheap and frequent enough to repair anything gossip missed within a minute."""
    reconnect_interval: float = 30.0
    """Period of reconnect attempts: a full-state exchange with one random failed member, with
    probability failed/alive (Serf's reconnect). This is what re-forms a cluster after a full
    partition longer than the suspicion timeout, when each side has declared the other failed
    and no longer probes or gossips to it. 30 s is Serf's default."""
    rejoin_interval: float = 10.0
    """A member with seeds that knows no other live member re-sends its join to the seeds this
    often. Asking costs one TCP exchange per seed; 10 s re-forms quickly after a seed outage."""
    leave_timeout: float = 2.0
    """How long a leaving member keeps gossiping its departure before it stops (memberlist's
    ``Leave(timeout)``). Enough for the leave's retransmit rounds at a few hundred members;
    the node stops earlier once every live member has been told often enough."""
    failed_reap_time: float = 3600.0
    """A failed member is forgotten (reaped) this long after it failed. Until then it is kept
    for reconnects and refutation, so a partition up to an hour heals by itself; after longer
    ones seeds and discovery re-introduce members. Bounds the view under churn of new names."""
    left_reap_time: float = 300.0
    """A member that left is forgotten this long after it left: ten push-pull intervals, by
    when every member has merged the leave, so no stale alive state can resurrect it."""
    reclaim_time: float = 0.0
    """How firmly a member's name stays at its address when an alive message gives it another.
    0 (the default): a higher incarnation moves it at once, so a node restarted at another port
    or IP replaces its old self in every view without waiting for that one to be declared
    failed (a restart's incarnation, from the wall clock or the creation counter, outranks the
    old); a failed or left member's name moves at any incarnation. Above 0 (memberlist's
    ``DeadNodeReclaimTime``): the name moves only once its holder has left, or failed at least
    this long ago; until then another address is a conflict and ignored."""
    max_packet_size: int = 1400
    """The UDP budget: no datagram the shell sends may exceed this many bytes. 1400 fits the
    1500-byte Ethernet MTU with room for IP/UDP headers and tunnels (VXLAN, WireGuard), so no
    packet is fragmented or silently dropped."""
    packet_overhead: int = 64
    """Bytes of ``max_packet_size`` reserved for the shell: a version byte, a key id, a nonce
    and a 32-byte HMAC-SHA256 (or 16-byte AEAD) tag. The core packs messages to the rest."""
    max_meta_size: int = 512
    """Largest node metadata (msgpack-encoded bytes), as memberlist's MetaMaxSize. It keeps an
    alive message well inside one packet; larger metadata belongs in the application's state."""

    def __post_init__(self) -> None:
        for name in (
            "probe_interval",
            "probe_timeout",
            "gossip_interval",
            "gossip_to_the_dead_time",
            "push_pull_interval",
            "reconnect_interval",
            "rejoin_interval",
            "leave_timeout",
            "failed_reap_time",
            "left_reap_time",
        ):
            check_positive(name, getattr(self, name))
        if not self.probe_timeout < self.probe_interval:
            raise UsageError(
                f"probe_timeout ({self.probe_timeout}) must be below probe_interval "
                f"({self.probe_interval}): the rest of the interval is for indirect probes"
            )
        if self.reclaim_time.__class__ not in (int, float) or not 0 <= self.reclaim_time < math.inf:
            raise UsageError(
                f"reclaim_time must be a finite number >= 0, not {self.reclaim_time!r}"
            )
        if self.tcp_fallback_probe.__class__ is not bool:
            raise UsageError(f"tcp_fallback_probe must be a bool, not {self.tcp_fallback_probe!r}")
        check_int("indirect_checks", self.indirect_checks, 0, 64)
        check_int("awareness_max_multiplier", self.awareness_max_multiplier, 1, 1000)
        check_int("suspicion_mult", self.suspicion_mult, 2, 1000)
        check_int("suspicion_max_timeout_mult", self.suspicion_max_timeout_mult, 1, 1000)
        check_int("retransmit_mult", self.retransmit_mult, 1, 1000)
        check_int("gossip_fanout", self.gossip_fanout, 1, 64)
        check_int("max_packet_size", self.max_packet_size, 64, 65507)
        check_int("packet_overhead", self.packet_overhead, 0, 65507)
        check_int("max_meta_size", self.max_meta_size, 1, 65507)
        needed = max(_LARGEST_PRIMARY_PACKET, 1 + _ALIVE_OVERHEAD + self.max_meta_size)
        if self.packet_budget < needed:
            raise UsageError(
                f"max_packet_size - packet_overhead ({self.packet_budget}) cannot hold the "
                f"largest protocol packet or an alive message with max_meta_size "
                f"({self.max_meta_size}) metadata: {needed} bytes needed; raise "
                f"max_packet_size or lower max_meta_size"
            )

    @property
    def packet_budget(self) -> int:
        """Bytes the core may fill in one UDP packet: ``max_packet_size - packet_overhead``."""
        return self.max_packet_size - self.packet_overhead

    def retransmit_limit(self, n: int) -> int:
        """Times each gossip message is transmitted in a cluster of ``n`` members:
        λ·ceil(log10(n + 1))."""
        return self.retransmit_mult * math.ceil(math.log10(max(n, 0) + 1))

    def suspicion_timeouts(self, n: int) -> tuple[float, float]:
        """The (min, max) suspicion timeout in a cluster of ``n`` members, before local health
        scaling: min = suspicion_mult·max(1, log10 n)·probe_interval, max = the max multiplier
        times min."""
        low = self.suspicion_mult * max(1.0, math.log10(max(1, n))) * self.probe_interval
        return low, low * self.suspicion_max_timeout_mult

    def suspicion_confirmations(self, n: int) -> int:
        """k, the independent confirmations that drive a suspicion to its minimum: suspicion_mult
        - 2, or 0 when the n - 2 members other than the suspect and ourselves cannot give them."""
        k = self.suspicion_mult - 2
        return 0 if n - 2 < k else k

    def push_pull_period(self, n: int) -> float:
        """The push-pull interval at ``n`` members: constant up to 32, then times
        ceil(log2 n - log2 32) + 1, so the cluster-wide rate of full-state syncs stays bounded."""
        if n <= PUSH_PULL_SCALE_THRESHOLD:
            return self.push_pull_interval
        mult = math.ceil(math.log2(n) - math.log2(PUSH_PULL_SCALE_THRESHOLD)) + 1
        return mult * self.push_pull_interval

    def detection_bound(self, n: int, *, max_delay: float = 0.0) -> float:
        """Seconds after a crash by which every live member has declared the crashed member
        failed, in a loss-free network of ``n`` members whose one-way delays are at most
        ``max_delay`` and whose local health is perfect. See ``docs/mesh.md`` for the derivation:

        - round-robin probing reaches the crashed member within 2(n - 1) - 1 probe intervals of
          every prober (it was probed first in one shuffled round and last in the next), and that
          probe concludes one interval later: at most 2(n - 1) intervals;
        - every member that hears the suspicion times it out after at most the maximum suspicion
          timeout (no confirmations);
        - the suspicion, then the failure, spread by gossip; we allow each twice
          ceil(log_fanout(n)) + 2 rounds of ``gossip_interval`` plus a delivery, where epidemic
          spreading covers n members in about log_fanout(n) rounds.
        """
        period = self.probe_interval
        first_probe = 2 * max(n - 1, 1) * period
        rounds = 2 * (math.ceil(math.log(max(n, 2), max(self.gossip_fanout, 2))) + 2)
        spread = rounds * (self.gossip_interval + max_delay)
        return first_probe + spread + self.suspicion_timeouts(n)[1] + spread

    def expected_detection_time(self, n: int) -> float:
        """The mean time from a crash until every member has declared it failed, in a loss-free
        cluster of ``n`` members: SWIM's e/(e-1) probe intervals until a probe of it ends
        without an ack, then the minimum suspicion timeout (Lifeguard's confirmations from the
        other probers arrive faster than it expires once n is above a handful)."""
        first = math.e / (math.e - 1) * self.probe_interval
        return first + self.suspicion_timeouts(n)[0]

    @classmethod
    def local(cls, **overrides: Any) -> Self:
        """Members on one machine (tests, ``ember cluster up``): memberlist's DefaultLocalConfig.

        Probe timeout 200 ms (loopback round trips are microseconds; the rest is scheduling), 1
        indirect check (all paths share one kernel, more prove nothing), retransmit λ = 2 and
        suspicion multiplier 3 (no loss to cover), gossip every 100 ms, push-pull every 15 s,
        reconnect every 10 s and rejoin every 2 s, leave within 1 s, failed members reaped after
        5 min and left ones after 2.5 min (a local cluster is restarted often; stale names are
        noise).
        """
        base: dict[str, Any] = {
            "probe_timeout": 0.2,
            "indirect_checks": 1,
            "retransmit_mult": 2,
            "suspicion_mult": 3,
            "gossip_interval": 0.1,
            "gossip_to_the_dead_time": 15.0,
            "push_pull_interval": 15.0,
            "reconnect_interval": 10.0,
            "rejoin_interval": 2.0,
            "leave_timeout": 1.0,
            "failed_reap_time": 300.0,
            "left_reap_time": 150.0,
        }
        return cls(**(base | overrides))

    @classmethod
    def lan(cls, **overrides: Any) -> Self:
        """Members in one data centre: the field defaults (memberlist's DefaultLANConfig)."""
        return cls(**overrides)

    @classmethod
    def wan(cls, **overrides: Any) -> Self:
        """Members across regions: memberlist's DefaultWANConfig.

        Probe every 5 s with a 3 s timeout (round trips of hundreds of ms, lossy paths),
        suspicion multiplier 6, gossip every 500 ms to 4 members (fewer rounds, wider fan-out),
        push-pull every 60 s with gossip to the dead for as long, reconnect every 60 s, rejoin
        every 30 s, leave within 5 s; failed members kept 24 h (Serf's reconnect timeout: WAN
        partitions last longer and there is no mDNS to re-introduce members) and left ones
        10 min.
        """
        base: dict[str, Any] = {
            "probe_interval": 5.0,
            "probe_timeout": 3.0,
            "suspicion_mult": 6,
            "gossip_interval": 0.5,
            "gossip_fanout": 4,
            "gossip_to_the_dead_time": 60.0,
            "push_pull_interval": 60.0,
            "reconnect_interval": 60.0,
            "rejoin_interval": 30.0,
            "leave_timeout": 5.0,
            "failed_reap_time": 86400.0,
            "left_reap_time": 600.0,
        }
        return cls(**(base | overrides))

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)
