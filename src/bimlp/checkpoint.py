"""Checkpoint I/O, the bottom of the package: errors, safetensors, the restricted unpickler,
format sniffing, strict state-dict loading. It imports nothing else of bimlp.

Checkpoints are untrusted input. This is the only module that opens weight files (``torch.load``,
``safetensors``); everything above reads through it:

* :mod:`bimlp.convert` turns a file into a state dict + stored configuration (never a model);
* :mod:`bimlp.models._builder` infers the architecture, checks every key and shape against the
  model the configuration describes (built on the ``meta`` device, so nothing is allocated
  before the check), then builds and loads strictly.

Formats (recognised by content, not by file name): safetensors (ours, configuration in the
metadata; see ``docs/FORMATS.md``), PyTorch files (zip or legacy pickle; released Wave-MLP
files, our ``last.pt``) and MindSpore ``.ckpt`` (the official BiMLP release).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import pickle
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = [
    "CheckpointError",
    "check_rank",
    "SAFE_GLOBALS",
    "check_fits",
    "load_safetensors_bytes",
    "load_state_dict_strict",
    "read_safetensors",
    "read_weights",
    "safetensors_header",
    "save_weights",
    "sniff_format",
    "torch_load",
    "write_safetensors",
]

FORMAT_KEY = "bimlp_format"
CONFIG_KEY = "bimlp_config"
FAMILY_KEY = "bimlp_family"

# A safetensors header larger than this is refused before it is parsed (ours are a few hundred
# kB: one short JSON entry per tensor).
MAX_HEADER_BYTES = 64 * 2**20

# Classes a training checkpoint may contain beyond tensors and builtins. argparse.Namespace is a
# plain attribute bag (no __setstate__, no __reduce__ logic); timm saves the script's arguments
# as one.
SAFE_GLOBALS: tuple[type, ...] = (argparse.Namespace,)

Shape = tuple[int, ...]


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, or whose tensors do not fit the model."""


def sniff_format(path: str | Path) -> str:
    """``safetensors``, ``torch`` (zip or legacy pickle) or ``mindspore``, from the first bytes."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: no such checkpoint file")
    with p.open("rb") as f:
        head = f.read(16)
    if len(head) < 8:
        raise CheckpointError(f"{p}: file is {len(head)} bytes, too short to be a checkpoint")
    # safetensors first: its 8-byte header length may well start with 0x80, a pickle's opcode
    header_len = int.from_bytes(head[:8], "little")
    if head[8:9] == b"{" and 0 < header_len < p.stat().st_size:
        return "safetensors"
    if head[:2] == b"PK" or head[:1] == b"\x80":
        return "torch"
    if head[:1] == b"\x0a":  # protobuf field 1, length-delimited: Checkpoint.value
        return "mindspore"
    raise CheckpointError(
        f"{p}: not a recognised checkpoint (expected safetensors, a PyTorch file or a MindSpore "
        f".ckpt; first bytes {head[:8].hex()})"
    )


# --- safetensors -------------------------------------------------------------------------------
def safetensors_header(path: str | Path) -> tuple[dict[str, str], dict[str, tuple[str, Shape]]]:
    """(metadata, ``{name: (dtype, shape)}``) of a safetensors file, reading only its header:
    no tensor is allocated, whatever the file claims."""
    p = Path(path)
    try:
        with p.open("rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise CheckpointError(f"{p}: {len(head)} bytes, too short to be a safetensors file")
            n = int.from_bytes(head, "little")
            size = p.stat().st_size
            if n > MAX_HEADER_BYTES or 8 + n > size:
                raise CheckpointError(
                    f"{p}: safetensors header of {n} bytes in a file of {size} bytes "
                    f"(truncated, or larger than the {MAX_HEADER_BYTES} bytes accepted)"
                )
            raw = f.read(n)
    except OSError as e:
        raise CheckpointError(f"{p}: cannot read checkpoint ({e.strerror or e})") from e
    try:
        header = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise CheckpointError(f"{p}: safetensors header is not valid JSON ({e})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{p}: safetensors header is a {type(header).__name__}, not a map")
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in meta.items()
    ):
        raise CheckpointError(f"{p}: safetensors __metadata__ is not a map of strings")
    shapes: dict[str, tuple[str, Shape]] = {}
    for name, entry in header.items():
        shape = entry.get("shape") if isinstance(entry, dict) else None
        dtype = entry.get("dtype") if isinstance(entry, dict) else None
        if not (isinstance(dtype, str) and isinstance(shape, list)
                and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)):
            raise CheckpointError(f"{p}: safetensors entry {name!r} has no valid dtype and shape")
        shapes[name] = (dtype, tuple(shape))
    return meta, shapes


def read_safetensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of a safetensors file."""
    from safetensors import SafetensorError, safe_open

    safetensors_header(path)  # bounded, validated header first
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: unreadable safetensors file ({e})") from e
    return state, meta


def load_safetensors_bytes(data: bytes, source: str = "data") -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file already in memory (the ``.bimlp`` artifact reader)."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        return load(data)
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{source}: corrupt or truncated tensor data ({e})") from e


def write_safetensors(tensors: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str]) -> Path:
    """Write atomically (:func:`bimlp.files.atomic_write_path`: unique temporary file, fsync,
    rename, folder fsync), so an interrupted write never leaves a half-written file under the
    final name nor a temporary file behind."""
    from safetensors.torch import save_file

    from .files import atomic_write_path

    return atomic_write_path(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def save_weights(
    model_or_state: nn.Module | Mapping[str, torch.Tensor],
    path: str | Path,
    config: Mapping[str, Any] | None = None,
    family: str | None = None,
) -> Path:
    """Write a state dict as safetensors with the configuration in the metadata."""
    if isinstance(model_or_state, nn.Module):
        model = model_or_state
        state = model.state_dict()
        if config is None and hasattr(model, "config"):
            config = model.config.to_dict()
        family = family or getattr(model, "family", None)
    else:
        state = dict(model_or_state)
    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    meta = {FORMAT_KEY: "weights-v1", CONFIG_KEY: json.dumps(dict(config or {}))}
    if family:
        meta[FAMILY_KEY] = family
    return write_safetensors(tensors, path, meta)


def stored_config(meta: Mapping[str, str], path: str | Path) -> tuple[dict[str, Any], str | None]:
    """(configuration, family) kept in the metadata of one of our safetensors files."""
    try:
        config = json.loads(meta.get(CONFIG_KEY, "{}"))
    except (json.JSONDecodeError, RecursionError) as e:
        raise CheckpointError(f"{path}: metadata {CONFIG_KEY!r} is not valid JSON ({e})") from None
    if not isinstance(config, dict):
        raise CheckpointError(
            f"{path}: metadata {CONFIG_KEY!r} is a {type(config).__name__}, not a map of fields"
        )
    return config, meta.get(FAMILY_KEY)


def read_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], str | None]:
    """(state dict, stored config, family) of one of our safetensors files."""
    state, meta = read_safetensors(path)
    config, family = stored_config(meta, path)
    return state, config, family


# --- PyTorch files -----------------------------------------------------------------------------
@contextlib.contextmanager
def _allow_listed() -> Iterator[None]:
    """The restricted unpickler with :data:`SAFE_GLOBALS` allowed (scoped, not process-wide)."""
    with torch.serialization.safe_globals(list(SAFE_GLOBALS)):
        yield


def torch_load(path: str | Path) -> Any:
    """A PyTorch file through ``torch.load(weights_only=True)``: tensors, containers, plain
    values and :data:`SAFE_GLOBALS`; a file that asks for anything else is refused before that
    object is built, never executed."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with _allow_listed():
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        reason = str(e)
        if "weights only" not in reason.lower():
            raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({reason})") from e
        found = re.search(r"GLOBAL\s+([\w.]+)", reason)
        wanted = found.group(1) if found else "a global outside the allow-list"
        raise CheckpointError(
            f"{path}: refused -- unpickling this file would import and call {wanted}, which is "
            f"not on the allow-list. A checkpoint is untrusted input; nothing from it was "
            f"executed. Allowed beyond tensors and plain values: "
            f"{', '.join(f'{t.__module__}.{t.__qualname__}' for t in SAFE_GLOBALS)}."
        ) from None
    except Exception as e:  # noqa: BLE001 -- untrusted input: whatever torch.load (or the
        # safetensors reader it hands .safetensors files to: SafetensorError) raises on a
        # corrupt file is this one error naming the file
        raise CheckpointError(
            f"{path}: not a readable PyTorch checkpoint, truncated or corrupt ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else 'no detail'})"
        ) from e


def check_rank(tensor: Any, tag: str, ndim: int, source: str | Path) -> Any:
    """``tensor`` if it has ``ndim`` axes, none of them empty; else a :class:`CheckpointError`
    naming the file, the tag and the shape (configuration inference reads sizes off axes)."""
    shape = tuple(getattr(tensor, "shape", ()))
    if len(shape) != ndim or 0 in shape:
        raise CheckpointError(
            f"{source}: tag {tag!r} has shape {shape}, expected a {ndim}-D tensor with no "
            "empty axis"
        )
    return tensor


# --- fitting a state dict to a model -----------------------------------------------------------
def _shown(items: list[str]) -> str:
    return ", ".join(items[:12]) + (f", ... ({len(items)} in all)" if len(items) > 12 else "")


def check_fits(
    expected: Mapping[str, Shape], found: Mapping[str, Shape], source: str = "checkpoint"
) -> None:
    """Raise a :class:`CheckpointError` naming ``source`` and every missing, unexpected or
    mis-shaped key, comparing names and shapes only (nothing is allocated or copied)."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    mismatched = [
        f"{k}: checkpoint {tuple(found[k])} vs model {tuple(expected[k])}"
        for k in sorted(set(expected) & set(found))
        if tuple(found[k]) != tuple(expected[k])
    ]
    problems = [
        f"{label}: {_shown(items)}"
        for label, items in (("missing", missing), ("unexpected", unexpected), ("shape", mismatched))
        if items
    ]
    if problems:
        raise CheckpointError(f"{source}: tensors do not fit the model -- " + "; ".join(problems))


def shapes_of(state: Mapping[str, torch.Tensor]) -> dict[str, Shape]:
    return {k: tuple(v.shape) for k, v in state.items()}


def load_state_dict_strict(
    model: nn.Module, state: Mapping[str, torch.Tensor], source: str = "checkpoint"
) -> None:
    """``load_state_dict(strict=True)`` with an error that names every missing, unexpected or
    mis-shaped key (and the file), raised before anything is copied into the model."""
    check_fits(shapes_of(model.state_dict()), shapes_of(state), source)
    model.load_state_dict(state, strict=True)
