"""The actor kernel's metrics: processes, exits, restarts, messages, mailboxes, receive time."""

from __future__ import annotations

from collections.abc import Iterator

from ..actors import Node as KernelNode
from ._metrics import Histogram, Metric, counter, gauge

__all__ = ["kernel_collector"]

_EXIT_CLASSES = ("normal", "shutdown", "killed", "noconnection", "error", "other")


def kernel_collector(kernel: KernelNode, receive: Histogram) -> Iterator[Metric]:
    """The families of ``kernel``'s counters (``Node.statistics()``), a scan of its mailbox
    lengths, and the sampled receive-duration histogram ``receive``."""
    stats = kernel.statistics()
    c = stats.counters
    yield gauge("ember_processes", "Live processes on the node.", stats.processes)
    yield counter("ember_processes_spawned", "Processes spawned.", c["spawned"])
    yield counter(
        "ember_processes_exited",
        "Processes exited, by reason class (error: an exception was the reason).",
        labels=["reason"],
        samples=(((r,), c[f"exited_{r}"]) for r in _EXIT_CLASSES),
    )
    yield counter(
        "ember_processes_crashed",
        "Processes whose own code raised (not those that exited by a link).",
        c["crashed"],
    )
    yield counter("ember_supervisor_restarts", "Children restarted by supervisors.", c["restarts"])
    yield counter(
        "ember_messages_processed", "Messages handled by receive.", c["messages_processed"]
    )
    yield counter(
        "ember_dead_letters",
        "Messages to a process that no longer existed (or was exiting).",
        c["dropped_dead"],
    )
    yield counter(
        "ember_mailbox_drops",
        "Messages lost at a mailbox: rejected (the sender got MailboxFull), dropped_newest "
        "(drop policy), on_exit (still queued when the process exited).",
        labels=["reason"],
        samples=(
            (("rejected",), c["mailbox_rejected"]),
            (("dropped_newest",), c["mailbox_dropped"]),
            (("on_exit",), c["dropped_on_exit"]),
        ),
    )
    queued = longest = 0
    for _, length, _ in kernel.mailbox_lengths():
        queued += length
        longest = max(longest, length)
    yield gauge("ember_mailbox_messages", "Messages waiting in all mailboxes.", queued)
    yield gauge("ember_mailbox_messages_max", "Messages waiting in the longest mailbox.", longest)
    yield receive.family()


def receive_histogram() -> Histogram:
    """The histogram the kernel's sampled receive timer feeds."""
    return Histogram(
        "ember_receive_duration_seconds",
        "Time receive took per message, sampled: one scheduling slice in 16 is timed and "
        "each of its messages counted at the slice's mean.",
    )
