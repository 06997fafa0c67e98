"""Reader for MindSpore ``.ckpt`` files, without MindSpore.

A checkpoint is one Protocol Buffers message (``docs/FORMATS.md``, "Official BiMLP checkpoints")::

    message Checkpoint  { repeated Value value = 1; }
    message Value       { string tag = 1; TensorProto tensor = 2; }
    message TensorProto { repeated int64 dims = 1; string tensor_type = 2; bytes tensor_content = 3; }

The schema is three messages of scalar fields, so we decode the wire format directly instead of
generating protobuf classes: every length is checked against the bytes that remain, so a
truncated or foreign file fails with an error that names the file, the tag and the offset.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..checkpoint import CheckpointError

__all__ = ["read_mindspore_ckpt", "DTYPES"]

DTYPES: dict[str, np.dtype] = {
    "Float32": np.dtype("<f4"),
    "Float16": np.dtype("<f2"),
    "Float64": np.dtype("<f8"),
    "Int32": np.dtype("<i4"),
    "Int64": np.dtype("<i8"),
    "Int8": np.dtype("<i1"),
    "UInt8": np.dtype("<u1"),
    "Bool": np.dtype("?"),
}

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


class _Truncated(Exception):
    pass


def _varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= end:
            raise _Truncated(pos)
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError(f"varint longer than 10 bytes at offset {pos}")


def _fields(buf: memoryview, pos: int, end: int):
    """Yield (field number, wire type, value, offset) over buf[pos:end]."""
    while pos < end:
        start = pos
        key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ValueError(f"field number 0 at offset {start}")
        if wire == _VARINT:
            value, pos = _varint(buf, pos, end)
        elif wire == _LEN:
            n, pos = _varint(buf, pos, end)
            if pos + n > end:
                raise _Truncated(start)
            value, pos = (pos, pos + n), pos + n
        elif wire in (_I64, _I32):
            n = 8 if wire == _I64 else 4
            if pos + n > end:
                raise _Truncated(start)
            value, pos = (pos, pos + n), pos + n
        else:
            raise ValueError(f"wire type {wire} (field {number}) at offset {start}")
        yield number, wire, value, start


def _tensor(buf: memoryview, span: tuple[int, int], tag: str) -> np.ndarray:
    dims: list[int] = []
    dtype_name = None
    content = None
    for number, wire, value, _ in _fields(buf, *span):
        if number == 1 and wire == _VARINT:
            dims.append(value)
        elif number == 1 and wire == _LEN:  # packed repeated int64
            pos, end = value
            while pos < end:
                d, pos = _varint(buf, pos, end)
                dims.append(d)
        elif number == 2 and wire == _LEN:
            dtype_name = bytes(buf[value[0]:value[1]]).decode("utf-8", "replace")
        elif number == 3 and wire == _LEN:
            content = value
    if dtype_name is None or content is None:
        raise ValueError(f"tag {tag!r}: tensor without tensor_type or tensor_content")
    if dtype_name not in DTYPES:
        raise ValueError(f"tag {tag!r}: unsupported tensor_type {dtype_name!r}")
    dtype = DTYPES[dtype_name]
    count = int(np.prod(dims)) if dims else 1
    nbytes = content[1] - content[0]
    if nbytes != count * dtype.itemsize:
        raise ValueError(
            f"tag {tag!r}: dims {dims} of {dtype_name} need {count * dtype.itemsize} bytes, "
            f"tensor_content has {nbytes}"
        )
    arr = np.frombuffer(buf[content[0]:content[1]], dtype=dtype).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def _partial_tag(buf: memoryview, start: int) -> str:
    """Best-effort tag of an entry cut short at the end of the file."""
    try:
        _, pos = _varint(buf, start, len(buf))  # key of Checkpoint.value
        _, pos = _varint(buf, pos, len(buf))  # its declared length (past the end)
        key, pos = _varint(buf, pos, len(buf))
        if key == (1 << 3 | _LEN):
            n, pos = _varint(buf, pos, len(buf))
            if pos + n <= len(buf):
                return bytes(buf[pos:pos + n]).decode("utf-8", "replace")
    except (_Truncated, ValueError):
        pass
    return "<unknown>"


def read_mindspore_ckpt(path: str | Path) -> dict[str, np.ndarray]:
    """All tensors of a MindSpore checkpoint, in file order, keyed by tag.

    Raises:
        CheckpointError: missing, empty, truncated or non-MindSpore file; duplicate tags;
            a tensor whose byte count does not match its dims. The message names the file and,
            where one is known, the tag.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read checkpoint ({e.strerror or e})") from e
    if not data:
        raise CheckpointError(f"{path}: empty file, not a MindSpore checkpoint")
    buf = memoryview(data)
    out: dict[str, np.ndarray] = {}
    last_tag = None
    entry_start = 0
    try:
        for number, wire, value, offset in _fields(buf, 0, len(buf)):
            entry_start = offset
            if number != 1 or wire != _LEN:
                raise ValueError(f"unexpected field {number} (wire type {wire}) at offset {offset}")
            tag, span = None, None
            for n2, w2, v2, _ in _fields(buf, *value):
                if n2 == 1 and w2 == _LEN:
                    tag = bytes(buf[v2[0]:v2[1]]).decode("utf-8")
                elif n2 == 2 and w2 == _LEN:
                    span = v2
            if tag is None or span is None:
                raise ValueError(f"entry at offset {offset} has no tag or no tensor")
            if tag in out:
                raise ValueError(f"tag {tag!r} appears twice")
            out[tag] = _tensor(buf, span, tag)
            last_tag, entry_start = tag, value[1]  # the next entry starts where this one ends
    except _Truncated:
        where = f"tag {_partial_tag(buf, entry_start)!r}"
        after = f", after complete tag {last_tag!r}" if last_tag else ""
        raise CheckpointError(
            f"{path}: truncated MindSpore checkpoint: the file ({len(data)} bytes) ends inside "
            f"{where}, whose entry starts at byte {entry_start}{after}"
        ) from None
    except (ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: not a valid MindSpore checkpoint: {e}") from None
    if not out:
        raise CheckpointError(f"{path}: no tensors found, not a MindSpore checkpoint")
    return out
