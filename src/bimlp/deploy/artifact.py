"""The ``.bimlp`` artifact: a packed model in one versioned, checksummed safetensors file.

Layout: a safetensors file whose tensors are the packed model's buffers (``*.bits`` uint8 packed
signs, bit order in :mod:`bimlp.deploy.pack`; everything else float32, already folded: BatchNorm
into scales/biases and convs, learnable biases into thresholds and epilogue biases) and whose
metadata holds

* ``bimlp_format`` = ``bimlp-packed``, ``bimlp_format_version`` = ``2``;
* ``header``: JSON with the model configuration, the ``numerics`` the weights were folded for
  (``paper``: activations sign(x); ``official``: round(clip(x, -1, 1)) and real-valued token-conv
  taps; it must equal the configuration's ``mode``), bit-order description, per-tensor shapes and
  counts (binary weights, full-precision values), and where the weights came from;
* ``sha256``: the digest of the header text and every tensor (name, dtype, shape, bytes, in
  sorted name order), so a truncated or edited file is refused instead of producing garbage.

Version history: 1 = paper-mode BiMLP with downsample ``bimlp`` (still read); 2 adds ``numerics``,
official mode, downsample ``wavemlp`` and ReActNet (configuration ``arch = "reactnet"``).

Files are untrusted input: the runtime (``bimlp_runtime``, C++) verifies and reads them; the
Python reader here (:func:`read_artifact`, for inspection and tests) uses safetensors and JSON
only (no pickle).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checkpoint import CheckpointError, load_safetensors_bytes, write_safetensors
from .layout import BiMLPLayout, ReActNetLayout
from .pack import pack_weights
from .runtime import PackedBiMLP

__all__ = ["ArtifactError", "export", "load", "pack_model", "to_bytes", "read_artifact", "read_header", "FORMAT",
           "VERSION", "size_report"]

FORMAT = "bimlp-packed"
VERSION = 2
READS = (1, 2)  # versions this bimlp (and the runtime) can read
BIT_ORDER = (
    "binary weight signs flattened in (out, in/groups, kh, kw) row-major order; stream bit i is "
    "bit i % 8 (LSB first) of byte i // 8; 1 = negative (-1), 0 = +1 (sign(0) = +1); the last "
    "byte is zero-padded; magnitudes are the per-output-channel scales folded into alpha"
)


class ArtifactError(CheckpointError):
    """A ``.bimlp`` file that is truncated, tampered with, of another version, or not ours."""


def _digest(header: str, tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    h.update(header.encode())
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        h.update(f"\0{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def size_report(packed: BiMLPLayout | PackedBiMLP) -> dict[str, int]:
    """Binary weight count, full-precision value count and the theoretical minimum in bytes
    (binary weights / 8 + 4 bytes per full-precision value)."""
    return _layout(packed).size_report()


def _layout(model: nn.Module) -> BiMLPLayout | ReActNetLayout:
    if isinstance(model, (BiMLPLayout, ReActNetLayout)):
        return model
    if isinstance(model, PackedBiMLP):
        if model.layout is None:
            raise ValueError("this PackedBiMLP was loaded from a file; export the original model instead")
        return model.layout
    return pack_weights(model)


def _serialize(layout: BiMLPLayout | ReActNetLayout, source: dict[str, Any] | None) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    tensors = layout.tensors()
    header = json.dumps({
        "format": FORMAT,
        "version": VERSION,
        "numerics": layout.config.get("mode", "paper"),
        "config": layout.config,
        "bit_order": BIT_ORDER,
        "sizes": layout.size_report(),
        "tensors": {k: {"dtype": str(v.dtype).removeprefix("torch."), "shape": list(v.shape)}
                    for k, v in sorted(tensors.items())},
        "source": dict(source or {}),
    }, sort_keys=True)
    meta = {
        "bimlp_format": FORMAT,
        "bimlp_format_version": str(VERSION),
        "header": header,
        "sha256": _digest(header, tensors),
    }
    return tensors, meta


def export(model: nn.Module, path: str | Path, source: dict[str, Any] | None = None) -> Path:
    """Write ``model`` (a paper- or official-mode BiMLP, its :func:`~bimlp.deploy.pack.pack_weights`
    layout or a :func:`~bimlp.deploy.pack_model` result) as a ``.bimlp`` file.

    Raises:
        ValueError: the model cannot be packed (real-valued weights, zero binary weights).
    """
    tensors, meta = _serialize(_layout(model), source)
    return write_safetensors(tensors, path, meta)


def to_bytes(model: nn.Module, source: dict[str, Any] | None = None) -> bytes:
    """The ``.bimlp`` file of ``model`` as bytes (what :func:`export` writes)."""
    from safetensors.torch import save

    tensors, meta = _serialize(_layout(model), source)
    return save(tensors, metadata=meta)


def read_artifact(path: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(header, tensors) of a verified ``.bimlp`` file; :class:`ArtifactError` otherwise."""
    p = Path(path)
    if not p.is_file():
        raise ArtifactError(f"{p}: no such file")
    data = p.read_bytes()
    if len(data) < 8:
        raise ArtifactError(f"{p}: {len(data)} bytes, too short to be a .bimlp artifact (truncated?)")
    header_len = int.from_bytes(data[:8], "little")
    if 8 + header_len > len(data):
        raise ArtifactError(f"{p}: header says {header_len} bytes but the file has {len(data)}: truncated")
    try:
        meta = json.loads(data[8:8 + header_len]).get("__metadata__") or {}
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as e:
        raise ArtifactError(f"{p}: not a safetensors file ({e})") from e
    if meta.get("bimlp_format") != FORMAT:
        raise ArtifactError(f"{p}: not a packed BiMLP artifact (format {meta.get('bimlp_format')!r})")
    if meta.get("bimlp_format_version") not in {str(v) for v in READS}:
        raise ArtifactError(
            f"{p}: artifact version {meta.get('bimlp_format_version')!r}, this bimlp reads versions "
            f"{', '.join(map(str, READS))}"
        )
    try:
        tensors = load_safetensors_bytes(data, source=str(p))
    except CheckpointError as e:
        raise ArtifactError(str(e)) from e
    header_text = meta.get("header", "")
    if _digest(header_text, tensors) != meta.get("sha256"):
        raise ArtifactError(f"{p}: checksum mismatch: the file was modified or damaged after export")
    try:
        header = json.loads(header_text)
    except json.JSONDecodeError as e:
        raise ArtifactError(f"{p}: header is not valid JSON ({e})") from e
    return header, tensors


def read_header(path: str | Path) -> dict[str, Any]:
    """The model header (JSON) of an artifact, unverified: for display only."""
    p = Path(path)
    with p.open("rb") as f:
        n = int.from_bytes(f.read(8), "little")
        if n > 64 << 20:
            raise ArtifactError(f"{p}: implausible header length {n}")
        meta = json.loads(f.read(n)).get("__metadata__") or {}
    return json.loads(meta.get("header", "{}"))


def load(path: str | Path, threads: int | None = None) -> PackedBiMLP:
    """Load a ``.bimlp`` artifact into the runtime: a :class:`PackedBiMLP` ready to run.

    Args:
        path: the file written by :func:`export` / ``bimlp export``.
        threads: threads per call (default: all cores).

    Raises:
        ArtifactError: missing, truncated, tampered, foreign or incompatible file (the runtime
            checks every tensor against the header's configuration before allocating).
    """
    import bimlp_runtime

    try:
        rt = bimlp_runtime.load(path, threads=threads)
    except bimlp_runtime.ArtifactError as e:
        raise ArtifactError(str(e)) from e
    return PackedBiMLP(rt, read_header(path).get("config", {}))


def pack_model(model: nn.Module, threads: int | None = None) -> PackedBiMLP:
    """``model`` (a BiMLP or ReActNet in eval mode, ``paper`` or ``official`` mode) packed and
    loaded into the runtime: a module whose forward runs the whole network natively.
    ``threads``: per call (default all).

    Raises:
        ValueError: real-valued-weight models, zero binary weights, unsupported layouts.
    """
    layout = pack_weights(model)
    return PackedBiMLP.from_bytes(to_bytes(layout), layout=layout, threads=threads)
