"""The messages between the validating process and a worker, and the pipe they travel on.

Each message is one JSON header frame (plain values only) followed by its binary frames
(model bytes, arrays). Nothing is pickled: the two sides may run different numpy versions,
and a worker that misbehaves can send garbage, never code. Every message is validated where it
is read (:class:`ProtocolError` says what is wrong), and the parent reads with a deadline and a
size limit, so a half-sent or oversized answer is a per-case verdict, never a hang. What the
worker sends is decoded through :mod:`opref.boundary` (bounded, typed, text normalised): the
parent never trusts a value because the worker produced it.

Frames: an 8-byte little-endian length, then that many bytes.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import select
import struct
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from opref import boundary
from opref.boundary import BoundaryError
from opref.runtimes.base import Status

_LENGTH = struct.Struct("<Q")
MAX_HEADER_BYTES = 4 * 2**20  # a header is names, statuses and messages: never this large
MAX_TEXT = boundary.MAX_TEXT  # messages and placements are cut to this many characters
MAX_DEPTH = 16  # a header nests 3 deep; an adapter's details a few levels more
_CHUNK = 2**20

# Element types an array may have on the wire: numbers only (no objects, strings or records).
_WIRE_DTYPES = frozenset(
    {
        *("float16", "float32", "float64", "bfloat16", "complex64", "complex128", "bool"),
        *("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"),
    }
)


class ProtocolError(Exception):
    """A message that is not what the protocol allows (malformed, oversized, or out of step)."""


class Deadline(Exception):
    """No complete frame arrived before the deadline."""


class Closed(Exception):
    """The other side closed the pipe (or died) before a complete frame arrived."""


def wire_dtype(name: str) -> np.dtype:
    """The numpy dtype of a wire dtype name; ProtocolError for anything else."""
    if name not in _WIRE_DTYPES:
        raise ProtocolError(f"array element type {name!r} is not one of {sorted(_WIRE_DTYPES)}")
    if name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


@dataclass(frozen=True)
class ArraySpec:
    """An array's description in a header; its bytes travel in the next frame."""

    dtype: str
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * wire_dtype(self.dtype).itemsize

    def to_wire(self) -> dict:
        return {"dtype": self.dtype, "shape": list(self.shape)}

    @classmethod
    def from_wire(cls, obj: object) -> ArraySpec:
        if not isinstance(obj, dict) or set(obj) != {"dtype", "shape"}:
            raise ProtocolError(f"array description {obj!r:.200} is not {{dtype, shape}}")
        dtype, shape = obj["dtype"], obj["shape"]
        if not isinstance(dtype, str):
            raise ProtocolError("array dtype is not a string")
        wire_dtype(dtype)
        try:
            return cls(dtype, boundary.shape(shape, "array shape"))
        except BoundaryError as exc:
            raise ProtocolError(str(exc)) from None

    @classmethod
    def of(cls, array: np.ndarray) -> ArraySpec:
        name = "bfloat16" if array.dtype.name == "bfloat16" else array.dtype.name
        wire_dtype(name)
        return cls(name, tuple(int(d) for d in array.shape))

    def decode(self, data: bytes) -> np.ndarray:
        if len(data) != self.nbytes:
            raise ProtocolError(f"{len(data)} bytes for an array of {self.nbytes}")
        dt = wire_dtype(self.dtype).newbyteorder("<")
        # A view of the received buffer where the byte order allows it: no second copy.
        return np.frombuffer(data, dtype=dt).astype(wire_dtype(self.dtype), copy=False).reshape(self.shape)


def encode_array(array: np.ndarray) -> tuple[ArraySpec, memoryview]:
    """The array's description and its little-endian bytes (a view, not a copy, when it can be)."""
    spec = ArraySpec.of(array)
    data = np.ascontiguousarray(array, dtype=wire_dtype(spec.dtype).newbyteorder("<"))
    return spec, memoryview(data.reshape(-1).view(np.uint8))


def _text(value: object, what: str) -> str:
    """Text from the other side, normalised once (:func:`opref.boundary.text`)."""
    try:
        return boundary.text(value, what, MAX_TEXT)
    except BoundaryError as exc:
        raise ProtocolError(str(exc)) from None


# --- the messages -------------------------------------------------------------------------


@dataclass(frozen=True)
class Hello:
    """The worker's first message: who the runtime is and whether it can run here."""

    name: str
    version: str
    available: bool
    reason: str
    details: Mapping[str, object] = field(default_factory=dict)

    def to_wire(self) -> dict:
        return {
            "kind": "hello",
            "name": self.name,
            "version": self.version,
            "available": self.available,
            "reason": self.reason,
            "details": dict(self.details),
        }

    @classmethod
    def from_wire(cls, obj: dict) -> Hello:
        if obj.get("kind") != "hello":
            raise ProtocolError(f"expected the worker's hello, got {obj.get('kind')!r:.50}")
        if not isinstance(obj.get("available"), bool) or not isinstance(obj.get("details"), dict):
            raise ProtocolError("hello: 'available' must be a boolean and 'details' an object")
        try:
            details = boundary.plain(obj["details"], "hello details")
        except BoundaryError as exc:
            raise ProtocolError(str(exc)) from None
        return cls(
            _text(obj.get("name"), "hello name"),
            _text(obj.get("version"), "hello version"),
            obj["available"],
            _text(obj.get("reason"), "hello reason"),
            details,
        )


@dataclass(frozen=True)
class Request:
    """Run one case: the verified model bytes and the named input arrays."""

    case: str
    dtype: str
    model: bytes
    inputs: tuple[tuple[str, np.ndarray], ...]

    def frames(self) -> list[bytes]:
        specs, blobs = [], [self.model]
        for name, array in self.inputs:
            spec, data = encode_array(array)
            specs.append({"name": name, "array": spec.to_wire()})
            blobs.append(data)
        header = {"kind": "run", "case": self.case, "dtype": self.dtype, "inputs": specs}
        return [json.dumps(header).encode(), *blobs]

    @classmethod
    def read(cls, channel: Channel) -> Request | None:
        """The next request (blocking; the worker's side), or None when asked to stop."""
        header = load_header(channel.recv(limit=MAX_HEADER_BYTES))
        if header.get("kind") == "stop":
            return None
        if header.get("kind") != "run" or not isinstance(header.get("inputs"), list):
            raise ProtocolError(f"expected a run request, got {header.get('kind')!r:.50}")
        model = bytes(channel.recv())  # runtimes take a model as bytes, not a bytearray
        inputs = []
        for item in header["inputs"]:
            spec = ArraySpec.from_wire(item.get("array") if isinstance(item, dict) else None)
            inputs.append(
                (_text(item.get("name"), "input name"), spec.decode(channel.recv(limit=spec.nbytes)))
            )
        return cls(
            _text(header.get("case"), "case"), _text(header.get("dtype"), "dtype"), model, tuple(inputs)
        )


STOP = json.dumps({"kind": "stop"}).encode()


@dataclass(frozen=True)
class Reply:
    """One case's answer: how the run ended, the output, and where the node ran."""

    case: str
    status: Status
    message: str = ""
    placement: str = ""
    unit_roundoff: float | None = None
    output: np.ndarray | None = None

    def frames(self) -> list[bytes]:
        spec, data = (None, None) if self.output is None else encode_array(self.output)
        header = {
            "kind": "reply",
            "case": self.case,
            "status": str(self.status),
            "message": boundary.text(self.message, "message", MAX_TEXT),  # cut with its mark here
            "placement": boundary.text(self.placement, "placement", MAX_TEXT),
            "unit_roundoff": self.unit_roundoff,
            "output": None if spec is None else spec.to_wire(),
        }
        return [json.dumps(header).encode()] + ([] if data is None else [data])


@dataclass(frozen=True)
class ReplyHeader:
    """A reply's header, validated, before its output bytes are read."""

    case: str
    status: Status
    message: str
    placement: str
    unit_roundoff: float | None
    output: ArraySpec | None

    @classmethod
    def from_wire(cls, obj: dict, case: str) -> ReplyHeader:
        if obj.get("kind") != "reply":
            raise ProtocolError(f"expected a reply, got {obj.get('kind')!r:.50}")
        if obj.get("case") != case:
            raise ProtocolError(f"reply for case {obj.get('case')!r:.100}, expected {case!r}")
        try:
            status = Status(obj.get("status"))
        except ValueError:
            raise ProtocolError(f"unknown status {obj.get('status')!r:.50}") from None
        u = obj.get("unit_roundoff")
        if u is not None and not (isinstance(u, float) and 0 < u < 1):
            raise ProtocolError(f"unit_roundoff {u!r:.50} is not a number in (0, 1)")
        output = None if obj.get("output") is None else ArraySpec.from_wire(obj["output"])
        if status is Status.OK and output is None:
            raise ProtocolError("status ok without an output")
        return cls(
            case,
            status,
            _text(obj.get("message"), "message"),
            _text(obj.get("placement"), "placement"),
            u,
            output,
        )


def load_header(data: bytes) -> dict:
    """A header frame as a JSON object, bounded in size and depth before it is decoded."""
    try:
        obj = boundary.load_json(data, "header", max_bytes=MAX_HEADER_BYTES, max_depth=MAX_DEPTH)
    except BoundaryError as exc:
        raise ProtocolError(str(exc)) from None
    if not isinstance(obj, dict):
        raise ProtocolError("header is not a JSON object")
    return obj


def plain(value: object) -> object:
    """``value`` as plain JSON values (anything else becomes its repr)."""
    return json.loads(json.dumps(value, default=repr))


# --- the pipe -----------------------------------------------------------------------------


class Channel:
    """Frames over two pipe file descriptors (one to read, one to write).

    ``recv``/``send`` with a ``deadline`` (a ``time.monotonic()`` value) never wait past it,
    and ``recv`` reads no frame longer than ``limit``; without a deadline they block (the
    worker's side). ``alive`` (optional) is asked while waiting: once it says False, the other
    side is gone even if its pipe is still held open (by a child it forked).
    """

    def __init__(self, read_fd: int, write_fd: int):
        self.read_fd, self.write_fd = read_fd, write_fd

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _wait(self, fd: int, event: int, deadline: float | None, alive) -> None:
        poller = select.poll()
        poller.register(fd, event | select.POLLHUP | select.POLLERR)
        while True:
            if deadline is None:
                timeout = None if alive is None else 100
            else:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Deadline()
                timeout = max(1, min(int(left * 1000) + 1, 100 if alive else 2**31 - 1))
            if poller.poll(timeout):
                return
            if alive is not None and not alive():
                # Gone, though the pipe is open: one last look for what it wrote before dying.
                if poller.poll(0):
                    return
                raise Closed()

    def _read_exact(self, n: int, deadline, alive) -> bytearray:
        buf = bytearray(n)  # filled in place: a large frame is held once
        view, got = memoryview(buf), 0
        while got < n:
            if deadline is not None or alive is not None:
                self._wait(self.read_fd, select.POLLIN, deadline, alive)
            count = os.readv(self.read_fd, [view[got : got + _CHUNK]])
            if not count:
                raise Closed()
            got += count
        return buf

    def recv(self, deadline: float | None = None, limit: int | None = None, alive=None) -> bytearray:
        (n,) = _LENGTH.unpack(self._read_exact(_LENGTH.size, deadline, alive))
        if limit is not None and n > limit:
            raise ProtocolError(f"a frame of {n} bytes, over the {limit}-byte limit")
        return self._read_exact(n, deadline, alive)

    def send(self, frames: Sequence[bytes | memoryview], deadline: float | None = None, alive=None) -> None:
        for frame in frames:
            size = memoryview(frame).nbytes
            if size < _CHUNK:
                parts = [memoryview(_LENGTH.pack(size) + bytes(frame))]
            else:
                parts = [memoryview(_LENGTH.pack(size)), memoryview(frame).cast("B")]
            for part in parts:
                while part:
                    if deadline is not None or alive is not None:
                        self._wait(self.write_fd, select.POLLOUT, deadline, alive)
                    try:
                        written = os.write(self.write_fd, part[:_CHUNK])
                    except BlockingIOError:
                        continue
                    except BrokenPipeError:
                        raise Closed() from None
                    part = part[written:]
