"""The gossip hook for the layers above the mesh: ``Swim.gossip`` piggybacks a payload on gossip
packets, each member delivers it once and passes it on; what cannot fit is refused."""

from __future__ import annotations

from meshkit import addr, core, introduce

from ember.mesh._messages import Custom, decode_packet, encode_packet
from ember.mesh._swim import CUSTOM_QUEUE_LIMIT


def gossip_until_custom(swim, limit: int = 200):  # type: ignore[no-untyped-def]
    """Tick ``swim`` until a UDP packet carries a Custom message; that message."""
    for _ in range(limit):
        t = swim.next_deadline()
        swim.tick(t)
        for out in swim.ready().messages:
            for m in out.messages:
                if isinstance(m, Custom) and out.transport == "udp":
                    return t, m
    raise AssertionError("no custom message was gossiped")


def test_a_broadcast_is_delivered_once_and_passed_on() -> None:
    a, b = core("a", seed=1), core("b", seed=2)
    introduce(a, "b")
    introduce(b, "a", "c")
    assert a.gossip("names#a#1", b"delta") is True
    t, msg = gossip_until_custom(a)
    assert msg == Custom("names#a#1", b"delta")
    assert decode_packet(encode_packet([msg])) == [msg]  # it survives the wire
    b.receive(t, addr("a"), msg)
    assert b.ready().custom == (("names#a#1", b"delta"),)
    b.receive(t, addr("a"), msg)  # a second copy: not delivered again
    assert b.ready().custom == ()
    assert b.statistics().custom_received == 1
    _, passed = gossip_until_custom(b)  # b passes it on (epidemic)
    assert passed == msg


def test_what_cannot_fit_or_overfills_the_queue_is_refused() -> None:
    a = core("a")
    introduce(a, "b")
    assert a.gossip("big#a#1", b"x" * 2000) is False
    assert a.statistics().custom_refused == 1
    sent = sum(a.gossip(f"k#a#{i}", b"y") for i in range(CUSTOM_QUEUE_LIMIT + 10))
    assert sent <= CUSTOM_QUEUE_LIMIT
    assert a.statistics().custom_refused == 1 + CUSTOM_QUEUE_LIMIT + 10 - sent
