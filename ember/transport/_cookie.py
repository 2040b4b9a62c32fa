"""The cluster cookie: one rule for what counts as the cookie, wherever it comes from.

A cookie is the secret every node of a cluster shares (the key of the handshake's HMAC and of
the mesh's datagram tags). Whitespace around it is never part of it: ``echo secret > cookie``
writes a newline that the command-line tools and ``Node(cookie=open(f).read())`` must both
ignore, or the two would fail to authenticate each other with nothing to show why. So
:func:`normalize_cookie` strips surrounding whitespace (``str.strip`` for text, ASCII
whitespace for bytes) and encodes text as UTF-8, and every consumer (``Transport``,
``MemoryTransport``, the mesh key, ``ember.Node``, the CLI) goes through it.
"""

from __future__ import annotations

import logging
import os
import stat

from .._errors import UsageError

__all__ = ["normalize_cookie", "read_cookie_file"]

log = logging.getLogger("ember.transport")


def normalize_cookie(cookie: str | bytes) -> bytes:
    """The cookie as the handshake uses it: surrounding whitespace stripped, text encoded as
    UTF-8. Raises :class:`~ember.UsageError` if nothing is left (or it is not str or bytes)."""
    if isinstance(cookie, str):
        secret = cookie.strip().encode()
    elif isinstance(cookie, bytes | bytearray):
        secret = bytes(cookie).strip()
    else:
        raise UsageError(f"a cookie must be str or bytes, not {type(cookie).__name__}")
    if not secret:
        raise UsageError("the cookie is empty (whitespace around a cookie does not count)")
    return secret


def read_cookie_file(path: str | os.PathLike[str]) -> str:
    """The cookie in the file at ``path``, by the rule of :func:`normalize_cookie`.

    Warns (as ssh does for a private key) if the file can be read by its group or by others:
    anyone who can read the cookie can join the cluster and run code on it. Raises
    :class:`~ember.UsageError` if the file cannot be read or holds no cookie.
    """
    try:
        with open(path, "rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            data = f.read()
    except OSError as exc:
        raise UsageError(f"cannot read cookie file {os.fspath(path)}: {exc.strerror}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning(
            "cookie file %s is accessible by others (mode %04o): anyone who can read it can "
            "join the cluster; run chmod 600 %s",
            os.fspath(path),
            stat.S_IMODE(mode),
            os.fspath(path),
        )
    try:
        text = data.decode()
    except UnicodeDecodeError as exc:
        raise UsageError(f"cookie file {os.fspath(path)} is not UTF-8 text") from exc
    try:
        normalize_cookie(text)
    except UsageError:
        raise UsageError(f"cookie file {os.fspath(path)} is empty") from None
    return text.strip()
