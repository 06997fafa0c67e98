"""The ``.bimlp`` artifact: a packed model in one versioned, checksummed safetensors file.

Layout: a safetensors file whose tensors are the packed model's buffers (``*.bits`` uint8 packed
signs, bit order in :mod:`bimlp.deploy.pack`; everything else float32, already folded: BatchNorm
into scales/biases and convs, learnable biases into thresholds and epilogue biases) and whose
metadata holds

* ``bimlp_format`` = ``bimlp-packed``, ``bimlp_format_version`` = ``1``;
* ``header``: JSON with the model configuration, bit-order description, per-tensor shapes and
  counts (binary weights, full-precision values), and where the weights came from;
* ``sha256``: the digest of the header text and every tensor (name, dtype, shape, bytes, in
  sorted name order), so a truncated or edited file is refused instead of producing garbage.

Files are untrusted input: they are parsed with safetensors and JSON only (no pickle).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checkpoint import CheckpointError, write_safetensors
from .engine import PackedBiMLP, _PackedBinary

__all__ = ["ArtifactError", "export", "load", "FORMAT", "VERSION", "size_report"]

FORMAT = "bimlp-packed"
VERSION = 1
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


def size_report(packed: PackedBiMLP) -> dict[str, int]:
    """Binary weight count, full-precision value count and the theoretical minimum in bytes
    (binary weights / 8 + 4 bytes per full-precision value)."""
    binary = sum(m.weight_numel for m in packed.modules() if isinstance(m, _PackedBinary))
    fp = sum(t.numel() for k, t in packed.state_dict().items() if not k.endswith(".bits"))
    return {"binary_weights": binary, "float_values": fp, "theoretical_bytes": binary // 8 + 4 * fp}


def export(model: nn.Module, path: str | Path, source: dict[str, Any] | None = None) -> Path:
    """Write ``model`` (a paper-mode BiMLP, or an already packed one) as a ``.bimlp`` file.

    Raises:
        ValueError: the model cannot be packed (official mode, real-valued weights).
    """
    from .pack import pack_model

    packed = model if isinstance(model, PackedBiMLP) else pack_model(model, backend="torch")
    tensors = {k: v.detach().contiguous().cpu() for k, v in packed.state_dict().items()}
    header = json.dumps({
        "format": FORMAT,
        "version": VERSION,
        "config": packed.config,
        "bit_order": BIT_ORDER,
        "sizes": size_report(packed),
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
    return write_safetensors(tensors, path, meta)


def read_artifact(path: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(header, tensors) of a verified ``.bimlp`` file; :class:`ArtifactError` otherwise."""
    from safetensors import SafetensorError
    from safetensors.torch import load as st_load

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
    if meta.get("bimlp_format_version") != str(VERSION):
        raise ArtifactError(
            f"{p}: artifact version {meta.get('bimlp_format_version')!r}, this bimlp reads version {VERSION}"
        )
    try:
        tensors = st_load(data)
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise ArtifactError(f"{p}: corrupt or truncated tensor data ({e})") from e
    header_text = meta.get("header", "")
    if _digest(header_text, tensors) != meta.get("sha256"):
        raise ArtifactError(f"{p}: checksum mismatch: the file was modified or damaged after export")
    try:
        header = json.loads(header_text)
    except json.JSONDecodeError as e:
        raise ArtifactError(f"{p}: header is not valid JSON ({e})") from e
    return header, tensors


def load(path: str | Path, backend: str = "auto") -> PackedBiMLP:
    """Load a ``.bimlp`` artifact into a ready-to-run :class:`PackedBiMLP`.

    Args:
        path: the file written by :func:`export` / ``bimlp export``.
        backend: ``auto`` (native kernels when they build, else PyTorch with a warning),
            ``native`` or ``torch``.

    Raises:
        ArtifactError: missing, truncated, tampered, foreign or incompatible file.
    """
    from ..checkpoint import load_state_dict_strict

    header, tensors = read_artifact(path)
    try:
        packed = PackedBiMLP(header["config"], backend=backend)
    except (KeyError, TypeError, ValueError) as e:
        raise ArtifactError(f"{path}: configuration in the header is unusable ({e})") from e
    try:
        load_state_dict_strict(packed, tensors, source=str(path))
    except CheckpointError as e:
        raise ArtifactError(str(e)) from e
    return packed.prepare()
