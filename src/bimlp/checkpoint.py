"""Reading and writing weights. Checkpoints are untrusted input: nothing here unpickles
arbitrary objects. Our own files are safetensors with the model configuration in the metadata.

Formats recognised by :func:`read_checkpoint` (by content, not by file name):

* safetensors (ours: ``bimlp convert``, ``bimlp train`` exports) -- metadata ``bimlp_config``;
* MindSpore ``.ckpt`` (the official BiMLP release), converted tag by tag;
* PyTorch pickles (``.pth``, ``.pth.tar``: released Wave-MLP files), loaded with
  ``weights_only=True`` and a short allow-list.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = [
    "CheckpointError",
    "read_checkpoint",
    "load_state_dict_strict",
    "save_weights",
    "read_weights",
    "sniff_format",
    "write_safetensors",
]

FORMAT_KEY = "bimlp_format"
CONFIG_KEY = "bimlp_config"
FAMILY_KEY = "bimlp_family"


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
    if head[:2] == b"PK" or head[:1] == b"\x80":
        return "torch"
    header_len = int.from_bytes(head[:8], "little")
    if head[8:9] == b"{" and 0 < header_len < p.stat().st_size:
        return "safetensors"
    if head[:1] == b"\x0a":  # protobuf field 1, length-delimited: Checkpoint.value
        return "mindspore"
    raise CheckpointError(
        f"{p}: not a recognised checkpoint (expected safetensors, a PyTorch file or a MindSpore "
        f".ckpt; first bytes {head[:8].hex()})"
    )


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


def write_safetensors(tensors: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str]) -> Path:
    """Write atomically: a temporary file beside ``path``, then a rename, so an interrupted
    write never leaves a half-written file under the final name."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    tmp.replace(path)
    return path


def read_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], str | None]:
    """(state dict, stored config, family) of one of our safetensors files."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: unreadable safetensors file ({e})") from e
    try:
        config = json.loads(meta.get(CONFIG_KEY, "{}"))
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: metadata {CONFIG_KEY!r} is not valid JSON ({e})") from e
    return state, config, meta.get(FAMILY_KEY)


# Config fields a checkpoint decides: the architecture, whether its weights are binary (a step-1
# checkpoint holds real-valued weights) and the numerical mode it was made for. Keyword arguments
# of ``create_model`` still override them (e.g. ``mode="paper"`` on official weights).
ARCH_FIELDS = (
    "depths", "dims", "mlp_ratios", "num_classes", "in_chans", "norm", "uni_shortcut",
    "multi_branch", "downsample", "downsample_norm", "binary_weights", "mode", "stem_stride",
    "stem_dim", "strides",
)


def read_checkpoint(
    path: str | Path, family: str | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read any supported checkpoint: (state dict in our names, architecture config).

    Args:
        path: the file.
        family: the model family it is meant for (``bimlp`` or ``wavemlp``); used to infer the
            architecture from foreign files that carry no configuration.
    """
    kind = sniff_format(path)
    if kind == "safetensors":
        state, config, stored_family = read_weights(path)
        if family and stored_family and stored_family != family:
            raise CheckpointError(
                f"{path}: holds a {stored_family!r} model, not a {family!r} one"
            )
        return state, {k: v for k, v in config.items() if k in ARCH_FIELDS}
    if kind == "mindspore":
        from .convert.official import read_official

        if family not in (None, "bimlp"):
            raise CheckpointError(f"{path}: a MindSpore BiMLP checkpoint, not a {family!r} model")
        state, config = read_official(path)
        return state, {**{k: v for k, v in config.items() if k in ARCH_FIELDS}, "mode": "official"}
    from .convert.torch_pickle import read_torch_checkpoint

    state = read_torch_checkpoint(path)
    if family == "wavemlp":
        from .models.wavemlp import infer_wavemlp_config

        return state, infer_wavemlp_config(state, source=str(path))
    return state, {}


def load_state_dict_strict(
    model: nn.Module, state: Mapping[str, torch.Tensor], source: str = "checkpoint"
) -> None:
    """``load_state_dict(strict=True)`` with an error that names every missing, unexpected or
    mis-shaped key (and the file), raised before anything is copied into the model."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state))
        if tuple(state[k].shape) != tuple(own[k].shape)
    ]
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("shape", mismatched)):
        if items:
            shown = ", ".join(items[:12]) + (f", ... ({len(items)} in all)" if len(items) > 12 else "")
            problems.append(f"{label}: {shown}")
    if problems:
        raise CheckpointError(f"{source}: tensors do not fit the model -- " + "; ".join(problems))
    model.load_state_dict(state, strict=True)
