"""msgpack encoding of message payloads, with ext types for Ember's own values.

What travels, and what comes back:

- ``None``, ``bool``, ``int`` (-2**63 .. 2**64-1), ``float``, ``str``, ``bytes``, ``list`` and
  ``dict`` travel as themselves; ``bytes`` and ``str`` stay distinct. ``bytearray`` and
  ``memoryview`` arrive as ``bytes``.
- ``tuple`` arrives as ``tuple``: an array whose first element is the empty ext value
  :data:`EXT_TUPLE`. msgpack has one array type, and ``use_list=False`` alone would turn every list
  into a tuple; marking tuples keeps the native array path for both, at 3 bytes per tuple.
- :class:`~ember.actors.Pid` and :class:`~ember.actors.Ref` travel as ext :data:`EXT_PID` and
  :data:`EXT_REF` whose data is the msgpack array ``[node, serial, creation]``.
- Dataclasses registered with :meth:`Codec.register` travel as an array
  ``[ext EXT_RECORD(type id), {field name: value}]``.

msgpack's own ``msgpack.Timestamp`` (ext -1) passes through too. Anything else, subclasses of the
types above included (an ``IntEnum``, an ``OrderedDict``, a ``NamedTuple``), raises
:class:`UnsendableError` at the sender: what arrives always has the type that was sent.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import msgpack  # type: ignore[import-untyped]
from msgpack import ExtType

from .._errors import UsageError
from ..actors import Pid, Ref
from ._errors import ProtocolError, UnsendableError

__all__ = ["EXT_PID", "EXT_RECORD", "EXT_REF", "EXT_TUPLE", "Codec"]

EXT_PID = 1
"""Ext code of a :class:`~ember.actors.Pid`: data is msgpack ``[node, serial, creation]``."""
EXT_REF = 2
"""Ext code of a :class:`~ember.actors.Ref`: data is msgpack ``[node, serial, creation]``."""
EXT_TUPLE = 3
"""Ext code of the empty marker that opens an array holding a tuple."""
EXT_RECORD = 4
"""Ext code of the marker that opens a registered dataclass; data is its msgpack type id."""

_MAX_CODE = 0xFFFF_FFFF
_BUILTINS = (bool, int, float, str, bytes, bytearray, tuple, list, dict)

_unpackb = msgpack.unpackb
_ARRAY32 = struct.Struct(">BI")

_T = TypeVar("_T")


def _ext(code: int, data: bytes) -> ExtType:
    # ExtType.__new__ re-validates code and data in Python on every call; ours are known good.
    return tuple.__new__(ExtType, (code, data))


class _TupleMark:
    """What an :data:`EXT_TUPLE` marker decodes to, until the array it opens becomes a tuple."""

    __slots__ = ()


_TUPLE_MARK = _TupleMark()
_TUPLE_EXT = _ext(EXT_TUPLE, b"")


Dump = Callable[[Any], dict[str, Any]]
"""Turns a record into the fields it travels as (raises ``UnsendableError`` if it cannot)."""
Load = Callable[[dict[str, Any]], Any]
"""Rebuilds a record from the fields that arrived (raises if they are refused)."""


class _Record:
    """One registered dataclass: how to mark it on the wire and rebuild it."""

    __slots__ = ("cls", "dump", "fields", "load", "marker", "names", "type_id")

    def __init__(
        self, cls: type, type_id: int | str, dump: Dump | None = None, load: Load | None = None
    ) -> None:
        self.cls = cls
        self.type_id = type_id
        self.fields = tuple(f.name for f in dataclasses.fields(cls) if f.init)
        self.names = frozenset(self.fields)
        self.marker = _ext(EXT_RECORD, msgpack.packb(type_id))
        self.dump = dump
        self.load = load

    def values(self, obj: Any) -> dict[str, Any]:
        if self.dump is not None:
            return self.dump(obj)
        return {name: getattr(obj, name) for name in self.fields}

    def rebuild(self, items: list[Any]) -> Any:
        if len(items) != 2 or items[1].__class__ is not dict:
            raise ProtocolError("bad_msgpack", f"malformed {self.cls.__qualname__} record")
        fields: dict[str, Any] = items[1]
        if not fields.keys() <= self.names:
            # Fields a newer sender added are dropped, as protobuf does with unknown fields.
            fields = {k: v for k, v in fields.items() if k in self.names}
        if self.load is not None:
            return self.load(fields)
        return self.cls(**fields)


ID_CACHE = 4096
"""Decoded pids a codec remembers (by their encoded bytes)."""


def _decode_id(cls: type[Pid] | type[Ref], data: bytes) -> Pid | Ref:
    parts = _unpackb(data)
    if parts.__class__ is list and len(parts) == 3:
        node, serial, creation = parts
        if node.__class__ is str and serial.__class__ is int and creation.__class__ is int:
            return cls(node, serial, creation)
    raise ProtocolError("bad_msgpack", f"malformed {cls.__name__} ext value")


class Codec:
    """Encodes messages to msgpack bytes and back; a node owns one.

    It keeps the dataclasses registered on it, a reusable packer and per-decode scratch state, so it
    is not thread-safe: use it from its node's event loop.
    """

    __slots__ = (
        "_array_hook_fn",
        "_by_class",
        "_by_id",
        "_by_marker",
        "_ext_hook_fn",
        "_leaf",
        "_open",
        "_pack",
        "_pids",
        "resolve_pid",
    )

    def __init__(self) -> None:
        self._by_class: dict[type, _Record] = {}
        self._by_id: dict[int | str, _Record] = {}
        self._by_marker: dict[bytes, _Record] = {}
        # strict_types hands tuples and subclasses of builtins to _default instead of packing them
        # as their base type, so the receiver gets back exactly the type that was sent.
        self._pack = msgpack.Packer(
            default=self._default, use_bin_type=True, strict_types=True, datetime=False
        ).pack
        # Packs the flat insides of Pid and Ref from within _default, while the main packer is busy.
        self._leaf = msgpack.Packer(use_bin_type=True, strict_types=True)
        # Markers decoded minus markers consumed by the array they open; nonzero means a stray.
        self._open = 0
        # Bound once: binding on every decode is a measurable part of a small message's cost.
        self._ext_hook_fn = self._ext_hook
        self._pids: dict[bytes, Any] = {}
        self.resolve_pid: Callable[[Pid], Pid] | None = None
        """Set by a node: maps a decoded pid of one of its live processes to the pid object that
        process holds, so delivery finds the process without a table lookup."""
        self._array_hook_fn = self._array_hook

    def register(self, cls: type[_T], code: int | None = None) -> type[_T]:
        """Let instances of dataclass ``cls`` be sent; returns ``cls``.

        Fields that ``__init__`` takes are sent by name and passed to ``cls(**fields)`` on the
        receiver, so ``__post_init__`` runs there too, missing fields take their defaults and
        unknown fields are dropped. ``code`` (0 .. 2**32-1) names the class on the wire in a few
        bytes; without it the class is named by ``"module.QualName"``. Every node must register the
        class the same way.
        """
        if code is not None and (code.__class__ is not int or not 0 <= code <= _MAX_CODE):
            raise UsageError(f"code must be an int in 0..{_MAX_CODE}, not {code!r}")
        return self.register_record(cls, code)

    def register_record(
        self,
        cls: type[_T],
        code: int | None = None,
        *,
        dump: Dump | None = None,
        load: Load | None = None,
    ) -> type[_T]:
        """:meth:`register`, with a say in how the record travels: ``dump(obj)`` gives the
        fields it is sent as (instead of its init fields as they are), ``load(fields)``
        rebuilds it (instead of ``cls(**fields)``); how Ember's own records carry classes by
        reference and check them on arrival."""
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
            raise UsageError(f"only dataclasses can be registered, not {cls!r}")
        type_id: int | str = f"{cls.__module__}.{cls.__qualname__}" if code is None else code
        known = self._by_class.get(cls)
        if known is not None:
            if known.type_id != type_id:
                raise UsageError(f"{cls.__qualname__} is already registered as {known.type_id!r}")
            return cls
        taken = self._by_id.get(type_id)
        if taken is not None:
            raise UsageError(f"type id {type_id!r} is already taken by {taken.cls.__qualname__}")
        record = _Record(cls, type_id, dump, load)
        self._by_class[cls] = record
        self._by_id[type_id] = record
        self._by_marker[record.marker.data] = record
        return cls

    def encode(self, obj: Any) -> bytes:
        """Encode one message; raise :class:`UnsendableError`, naming the type, if it cannot be."""
        try:
            if obj.__class__ is tuple:
                # Most messages are tuples: marking this one here saves a call back from C.
                data: bytes = self._pack([_TUPLE_EXT, *obj])
            else:
                data = self._pack(obj)
            return data
        except UnsendableError:
            raise
        except Exception as exc:
            raise UnsendableError(type(obj), str(exc)) from exc

    def decode(self, data: bytes) -> Any:
        """Decode one message; raise :class:`ProtocolError` (``"bad_msgpack"``) if it is not one."""
        self._open = 0
        try:
            obj = _unpackb(
                data,
                use_list=True,
                raw=False,
                strict_map_key=False,
                ext_hook=self._ext_hook_fn,
                list_hook=self._array_hook_fn,
            )
        except ProtocolError:
            raise
        except Exception as exc:
            raise ProtocolError("bad_msgpack", f"{type(exc).__name__}: {exc}") from exc
        if self._open:
            raise ProtocolError("bad_msgpack", "a tuple or record marker outside its array")
        return obj

    def decode_batch(self, payloads: Sequence[bytes]) -> list[Any]:
        """Decode many messages at once, as from a batch of frames, faster than one by one.

        The batch is checked as a whole: it must hold as many messages as payloads, using all the
        bytes. Raises :class:`ProtocolError` (``"bad_msgpack"``) otherwise.
        """
        if not payloads:
            return []
        if len(payloads) == 1:
            return [self.decode(payloads[0])]
        data = b"".join(payloads)
        unpacker = self._unpacker(len(data))
        self._open = 0
        try:
            unpacker.feed(data)
            objs = list(unpacker)
        except ProtocolError:
            raise
        except Exception as exc:
            raise ProtocolError("bad_msgpack", f"{type(exc).__name__}: {exc}") from exc
        if len(objs) != len(payloads) or unpacker.tell() != len(data):
            raise ProtocolError("bad_msgpack", "payloads do not hold one message each")
        if self._open:
            raise ProtocolError("bad_msgpack", "a tuple or record marker outside its array")
        return objs

    def decode_run(self, data: bytes, lengths: list[int]) -> list[Any]:
        """Decode the messages of a run of small USER frames (``FrameRun``), headers and all.

        A header of such a frame is five msgpack fixints, so the run, behind an array head, is
        one msgpack array ``[0, 0, 0, length, channel, message, ...]``, decoded in one call,
        without an object or a copy per frame. The run is checked as a whole, as
        :meth:`decode_batch` checks a batch: six values per frame, each group's first five
        equal to the frame's header, and every byte used. Raises :class:`ProtocolError`
        (``"bad_msgpack"``) otherwise.
        """
        n = len(lengths)
        self._open = 0
        try:
            # As one array of 6n values: one call into C for the run, no iteration per value.
            flat = _unpackb(
                _ARRAY32.pack(0xDD, 6 * n) + data,
                use_list=True,
                raw=False,
                strict_map_key=False,
                ext_hook=self._ext_hook_fn,
                list_hook=self._array_hook_fn,
            )
            zeros = [0] * n
            aligned = (
                flat.__class__ is list
                and len(flat) == 6 * n
                and flat[3::6] == lengths
                and flat[4::6] == [1] * n  # Channel.USER
                and flat[0::6] == zeros
                and flat[1::6] == zeros
                and flat[2::6] == zeros
            )
        except ProtocolError:
            raise
        except Exception as exc:
            raise ProtocolError("bad_msgpack", f"{type(exc).__name__}: {exc}") from exc
        if not aligned:
            raise ProtocolError("bad_msgpack", "payloads do not hold one message each")
        if self._open:
            raise ProtocolError("bad_msgpack", "a tuple or record marker outside its array")
        messages: list[Any] = flat[5::6]
        return messages

    def _unpacker(self, size: int) -> Any:
        return msgpack.Unpacker(
            use_list=True,  # lists arrive as they are: the hook copies only tuples
            raw=False,
            strict_map_key=False,
            ext_hook=self._ext_hook_fn,
            list_hook=self._array_hook_fn,
            max_buffer_size=size,
        )

    def _default(self, obj: Any) -> Any:
        cls: type = obj.__class__
        if cls is tuple:
            return [_TUPLE_EXT, *obj]
        if cls is Pid:
            return _ext(EXT_PID, self._leaf.pack([obj.node, obj.serial, obj.creation]))
        if cls is Ref:
            return _ext(EXT_REF, self._leaf.pack([obj.node, obj.serial, obj.creation]))
        record = self._by_class.get(cls)
        if record is not None:
            return [record.marker, record.values(obj)]
        if cls is int:
            raise UnsendableError(cls, "integer outside msgpack's range -2**63 .. 2**64-1")
        if dataclasses.is_dataclass(cls):
            raise UnsendableError(cls, "dataclass not registered with Codec.register")
        for base in _BUILTINS:
            if isinstance(obj, base):
                raise UnsendableError(cls, f"a subclass of {base.__name__} would arrive as one")
        raise UnsendableError(cls, "not a type the codec knows")

    def _ext_hook(self, code: int, data: bytes) -> Any:
        if code == EXT_TUPLE:
            if data:
                raise ProtocolError("bad_msgpack", "tuple marker with data")
            self._open += 1
            return _TUPLE_MARK
        if code == EXT_PID:
            # A node hears the same few pids over and over: decode each once.
            pid = self._pids.get(data)
            if pid is None:
                if len(self._pids) >= ID_CACHE:
                    self._pids.clear()
                pid = _decode_id(Pid, data)
                if self.resolve_pid is not None:
                    pid = self.resolve_pid(pid)  # type: ignore[arg-type]
                self._pids[data] = pid
            return pid
        if code == EXT_REF:
            return _decode_id(Ref, data)
        if code == EXT_RECORD:
            record = self._by_marker.get(data)
            if record is None:
                # A type id packed less tightly than we pack it still names the same class.
                type_id = _unpackb(data)
                if type_id.__class__ not in (int, str) or type_id not in self._by_id:
                    raise ProtocolError("bad_msgpack", f"unregistered record type {type_id!r}")
                record = self._by_id[type_id]
            self._open += 1
            return record
        raise ProtocolError("bad_msgpack", f"unknown ext type {code}")

    def _array_hook(self, items: list[Any]) -> Any:
        if items:
            head = items[0]
            if head is _TUPLE_MARK:
                self._open -= 1
                del items[0]
                return tuple(items)
            if head.__class__ is _Record:
                self._open -= 1
                return head.rebuild(items)
        return items
