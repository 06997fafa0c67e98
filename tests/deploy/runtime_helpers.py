"""Helpers of the runtime tests: artifacts from conditioned models, re-signed edited artifacts."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import numpy as np
import pytest

import bimlp_runtime


def load_error(path) -> str:
    """The message of the ArtifactError that loading ``path`` raises (it must name the file)."""
    with pytest.raises(bimlp_runtime.ArtifactError) as e:
        bimlp_runtime.load(path)
    assert str(path) in str(e.value)  # every artifact error names the file
    return str(e.value)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def read_raw(path: Path) -> tuple[dict, bytes]:
    """(safetensors header dict, data bytes) of a file, without any checking."""
    raw = Path(path).read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def write_raw(path: Path, st_header: dict, data: bytes) -> Path:
    text = json.dumps(st_header).encode()
    Path(path).write_bytes(struct.pack("<Q", len(text)) + text + data)
    return Path(path)


_TORCH_DTYPES = {"U8": "torch.uint8", "F32": "torch.float32"}


def resign(st_header: dict, data: bytes) -> dict:
    """The header with ``sha256`` recomputed over its (possibly edited) model header and tensors,
    exactly as the exporter computes it: what a forger who knows the format would write."""
    meta = st_header["__metadata__"]
    h = hashlib.sha256(meta["header"].encode())
    for name in sorted(k for k in st_header if k != "__metadata__"):
        t = st_header[name]
        b0, b1 = t["data_offsets"]
        shape = tuple(t["shape"])
        h.update(f"\0{name}\0{_TORCH_DTYPES[t['dtype']]}\0{shape}\0".encode())
        h.update(data[b0:b1])
    meta["sha256"] = h.hexdigest()
    return st_header


def edit_config(src: Path, dst: Path, **changes) -> Path:
    """A copy of artifact ``src`` whose configuration has ``changes``, re-signed."""
    st, data = read_raw(src)
    header = json.loads(st["__metadata__"]["header"])
    header["config"].update(changes)
    st["__metadata__"]["header"] = json.dumps(header)
    return write_raw(dst, resign(st, data), data)


def signs(x: np.ndarray) -> np.ndarray:
    return np.where(x < 0, -1.0, 1.0)


def edit_header(src: Path, dst: Path, drop: tuple[str, ...] = (), **changes) -> Path:
    """A copy of artifact ``src`` whose model header has ``changes`` (and lacks ``drop``), re-signed."""
    st, data = read_raw(src)
    header = json.loads(st["__metadata__"]["header"])
    header.update(changes)
    for key in drop:
        header.pop(key, None)
    st["__metadata__"]["header"] = json.dumps(header)
    return write_raw(dst, resign(st, data), data)


def set_version(src: Path, dst: Path, version: str) -> Path:
    """A copy of artifact ``src`` that claims format ``version`` (metadata only, re-signed)."""
    st, data = read_raw(src)
    st["__metadata__"]["bimlp_format_version"] = version
    return write_raw(dst, resign(st, data), data)
