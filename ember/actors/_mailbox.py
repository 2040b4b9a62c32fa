"""Mailbox length: the slow path of a delivery, watchers of a draining mailbox, long mailboxes.

A delivery compares the mailbox length with one number per process, ``_mbox_check``: the
smaller of the class's ``mailbox_size`` and the node's ``mailbox_warning``. Below it (nearly
always) the message is appended with no further test; at it, :func:`over_check` decides:

- a full bounded mailbox refuses the message by its policy (``MailboxFull`` or a counted drop);
- an unbounded (or larger) one that grew past ``mailbox_warning`` is *long*: the node logs it
  once, with the pid and the class (rate-limited across processes), counts it
  (``mailbox_long``) and lists it in ``Node.statistics().long_mailboxes`` until it drains
  below half the warning length. Unbounded stays the default, as in OTP, but never silently.

*Watchers* (:func:`watch`) are called when a mailbox has drained to a given length: the
scheduler checks them at the end of each slice of messages it runs (never per message), and
calls every one when the process exits. ``send_wait`` waits on them for room, and the
distribution layer uses them to tell remote senders that room came back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._actor import Actor

__all__ = ["UNBOUNDED", "check_length", "drained", "over_check", "release", "watch"]

UNBOUNDED = 1 << 62
"""A length no mailbox reaches: the check of a process with no bound and no warning."""


def check_length(cls: type[Actor], warning: int | None) -> int:
    """The mailbox length at which a delivery to an instance of ``cls`` takes the slow path."""
    size = cls.mailbox_size if cls.mailbox_size is not None else UNBOUNDED
    return min(size, warning if warning is not None else UNBOUNDED)


def over_check(proc: Actor, msg: Any) -> bool:
    """A delivery found the mailbox at its check length: True if ``msg`` must not be appended
    (a full bounded mailbox refused it: raised or counted), False to append it."""
    mbox = proc._mbox
    assert mbox is not None
    limit = proc.mailbox_size
    if limit is not None and len(mbox) >= limit:
        proc._overflow(msg)  # raises MailboxFull, or counts the drop
        return True
    node = proc._node
    warning = node.mailbox_warning
    proc._mbox_check = limit if limit is not None else UNBOUNDED  # logged once: no more checks
    if warning is not None and len(mbox) >= warning:
        node._stats.mailbox_long += 1
        node._long[proc] = None
        cls = type(proc)
        node._report(
            ("mailbox_long", cls),
            "node %s: the mailbox of %s (%s.%s) has reached %d messages (mailbox_warning): "
            "its senders outpace it (bound it with mailbox_size, or pace them with send_wait)",
            node.name,
            proc._pid,
            cls.__module__,
            cls.__qualname__,
            warning,
        )
        watch(proc, warning // 2, lambda: _rearm(proc))
    return False


def _rearm(proc: Actor) -> None:
    """The long mailbox drained (or its process exited): watch for the next time."""
    node = proc._node
    node._long.pop(proc, None)
    proc._mbox_check = check_length(type(proc), node.mailbox_warning)


def watch(proc: Actor, below: int, callback: Callable[[], None]) -> None:
    """Call ``callback()`` once ``proc``'s mailbox holds ``below`` messages or fewer (checked
    when a slice of its messages has run), or when it exits. Called from the loop."""
    if proc._watch is None:
        proc._watch = []
    proc._watch.append((below, callback))


def drained(proc: Actor) -> None:
    """A slice of ``proc``'s messages ran: call the watchers whose length is reached."""
    watchers = proc._watch
    if not watchers:
        return
    length = len(proc._mbox or ())
    due = [callback for below, callback in watchers if length <= below]
    if due:
        proc._watch = [(b, c) for b, c in watchers if length > b] or None
        for callback in due:
            callback()


def release(proc: Actor) -> None:
    """``proc`` exited: call every watcher (each finds the process gone)."""
    watchers, proc._watch = proc._watch, None
    for _, callback in watchers or ():
        callback()
