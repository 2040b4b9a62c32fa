"""The transport probe: what the node's metrics see of a transport's traffic."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from transport_kit import Recorder

from ember.observability import Metrics
from ember.transport._frame import Channel
from ember.transport._memory import MemoryNetwork
from ember.transport._metrics import TransportProbe


def samples(metrics: Metrics, family: str) -> dict[tuple[tuple[str, str], ...], float]:
    text = metrics.exposition().decode()
    return {
        tuple(sorted(s.labels.items())): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == family
    }


async def test_frames_and_bytes_by_channel_and_direction() -> None:
    net = MemoryNetwork(seed=4)
    ra, rb = Recorder(), Recorder()
    a = net.endpoint("a", "test", "c", 1, **ra.callbacks())
    b = net.endpoint("b", "test", "c", 2, **rb.callbacks())
    await a.start()
    await b.start()
    metrics = Metrics()
    for collector in TransportProbe(a).collectors():
        metrics.add("transport", collector)
    await a.connect("b")
    for _ in range(3):
        a.send("b", Channel.RAFT, b"r" * 10)
    a.send("b", Channel.USER, b"u")
    b.send("a", Channel.PG, b"p" * 100)
    await rb.wait(lambda: len(rb.frames["a"]) == 4)
    await ra.wait(lambda: len(ra.frames["b"]) == 1)
    frames = samples(metrics, "ember_transport_frames_total")
    # One series per channel and direction, zeros included: bounded, and rate() has a start.
    assert len(frames) == 2 * len(Channel)
    assert frames[(("channel", "RAFT"), ("direction", "sent"))] == 3
    assert frames[(("channel", "USER"), ("direction", "sent"))] == 1
    assert frames[(("channel", "PG"), ("direction", "received"))] == 1
    assert frames[(("channel", "PG"), ("direction", "sent"))] == 0
    nbytes = samples(metrics, "ember_transport_bytes_total")
    assert nbytes[(("channel", "RAFT"), ("direction", "sent"))] == 3 * 15
    assert nbytes[(("channel", "PG"), ("direction", "received"))] == 105
    assert sum(v for k, v in nbytes.items() if ("direction", "sent") in k) == 3 * 15 + 6
    await a.close()
    await b.close()
