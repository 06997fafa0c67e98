"""Official BiMLP checkpoints (MindSpore ``.ckpt``) -> a state dict and a configuration.

A pure reader: it never builds a model (:func:`bimlp.load_official` does, through the builder).
The release's module names are ours, so what changes is MindSpore's parameter vocabulary:
BatchNorm/GroupNorm ``gamma``/``beta``/``moving_mean``/``moving_variance`` ->
``weight``/``bias``/``running_mean``/``running_var``; the PReLU slope ``act.w`` (1, C, 1, 1) ->
``act.weight`` (C,). What the model tree itself needs beyond that (BatchNorm's
``num_batches_tracked``, absent in MindSpore) is the BiMLP family's ``checkpoint_filter_fn``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint import CheckpointError, check_rank
from .mindspore import read_mindspore_ckpt

__all__ = ["official_to_state_dict", "infer_official_config", "read_official"]

_RENAMES = (
    (".moving_mean", ".running_mean"),
    (".moving_variance", ".running_var"),
    (".gamma", ".weight"),
    (".beta", ".bias"),
)


def official_to_state_dict(tensors: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Rename official tags to our parameter names (shapes are checked at load time)."""
    state: dict[str, torch.Tensor] = {}
    for tag, arr in tensors.items():
        name = tag
        for old, new in _RENAMES:
            if name.endswith(old):
                name = name[: -len(old)] + new
                break
        t = torch.from_numpy(np.ascontiguousarray(arr))
        if name.endswith(".act.w"):  # PReLU slope (1, C, 1, 1) -> nn.PReLU.weight (C,)
            name, t = name[:-2] + ".weight", t.reshape(-1)
        state[name] = t
    return state


def _require(tensors: dict[str, np.ndarray], tag: str, source: str, ndim: int) -> np.ndarray:
    if tag not in tensors:
        raise CheckpointError(f"{source}: tag {tag!r} missing, cannot infer the BiMLP configuration")
    return check_rank(tensors[tag], tag, ndim, source)


def infer_official_config(tensors: dict[str, np.ndarray], source: str = "checkpoint") -> dict[str, Any]:
    """Depths, dims, mlp ratios, classes, input channels and outer norm kind from tags and shapes."""
    blocks: dict[int, set[int]] = {}
    for tag in tensors:
        m = re.match(r"network\.(\d+)\.(\d+)\.norm1\.", tag)
        if m:
            blocks.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
    if not blocks:
        raise CheckpointError(
            f"{source}: no 'network.<i>.<j>.norm1.*' tags: not a BiMLP checkpoint "
            f"(first tags: {', '.join(list(tensors)[:5])})"
        )
    stage_ids = sorted(blocks)
    if stage_ids != list(range(0, 2 * len(stage_ids), 2)):
        raise CheckpointError(f"{source}: stages at network indices {stage_ids}, expected 0, 2, 4, ...")
    depths, dims, ratios = [], [], []
    for i in stage_ids:
        js = sorted(blocks[i])
        if js != list(range(len(js))):
            raise CheckpointError(f"{source}: stage network.{i} has blocks {js}, expected 0..{len(js) - 1}")
        depths.append(len(js))
        dim = int(_require(tensors, f"network.{i}.0.norm1.gamma", source, 1).shape[0])
        fc1 = f"network.{i}.0.mlp.fc1.weight"
        hidden = int(_require(tensors, fc1, source, 4).shape[0])
        if hidden % dim and dim % hidden:  # the Uni-shortcut of the channel MLP needs this
            raise CheckpointError(
                f"{source}: tag {fc1!r} has {hidden} rows for {dim} channels: a BiMLP's MLP "
                f"width is a multiple or a divisor of its channel count"
            )
        dims.append(dim)
        ratios.append(hidden / dim)
    head = _require(tensors, "head.weight", source, 2)
    stem = _require(tensors, "patch_embed.proj.weight", source, 4)
    return {
        "depths": depths,
        "dims": dims,
        "mlp_ratios": ratios,
        "num_classes": int(head.shape[0]),
        "in_chans": int(stem.shape[1]),
        "norm": "batch" if "patch_embed.norm.moving_mean" in tensors else "group",
    }


def read_official(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state dict in PyTorch's vocabulary, inferred configuration with ``mode="official"``)
    of an official ``.ckpt``."""
    tensors = read_mindspore_ckpt(path)
    config = infer_official_config(tensors, source=str(path))
    return official_to_state_dict(tensors), {**config, "mode": "official"}
