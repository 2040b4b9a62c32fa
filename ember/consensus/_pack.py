"""msgpack for what the consensus layer sends and logs: plain values only, and a typed error
naming the type when a value is not one."""

from __future__ import annotations

from typing import Any

import msgpack  # type: ignore[import-untyped]

from ..transport._errors import UnsendableError

__all__ = ["pack"]


def _unencodable(obj: Any) -> Any:
    raise UnsendableError(
        type(obj),
        "Raft commands, keys and results are plain msgpack values (dict, list, "
        "tuple, str, bytes, int, float, bool, None)",
    )


def pack(value: Any) -> bytes:
    """msgpack of ``value``; :class:`~ember.UnsendableError` (naming the type) if it is not a
    plain msgpack value."""
    try:
        return msgpack.packb(value, default=_unencodable)  # type: ignore[no-any-return]
    except UnsendableError:
        raise
    except (TypeError, ValueError, OverflowError) as exc:
        raise UnsendableError(type(value), str(exc)) from exc
