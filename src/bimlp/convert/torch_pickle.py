"""PyTorch checkpoint files (``.pth``, ``.pth.tar``, our ``last.pt``) -> a state dict.

The file itself is opened by :func:`bimlp.checkpoint.torch_load` (PyTorch's restricted
unpickler plus a short allow-list; a file that would run code is refused, never executed). This
module is the one policy for *which* weights of such a file are meant:

* a training checkpoint dict: its ``state_dict``, else ``model`` (timm's ``train.py`` layout and
  ours). Optimizer state, the ``args`` Namespace and the rest are read and ignored;
* the EMA copy (``state_dict_ema``, ``model_ema``, our ``ema``) only when asked for
  (``use_ema=True``); it is a different set of weights, never a silent fallback;
* a bare state dict (every value a tensor);
* a ``module.`` prefix (DataParallel / DDP) is stripped from every key that has one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..checkpoint import CheckpointError, torch_load

__all__ = ["EMA_KEYS", "STATE_DICT_KEYS", "read_torch_checkpoint", "strip_ddp_prefix"]

# Where a checkpoint dict keeps the weights, in order of preference.
STATE_DICT_KEYS = ("state_dict", "model")
EMA_KEYS = ("state_dict_ema", "model_ema", "ema")

_DDP_PREFIX = "module."
_TRAIN_FORMAT = "bimlp-train-v1"  # our last.pt (bimlp.train.state), which stores its config


def strip_ddp_prefix(state: dict[str, Any], source: str | Path) -> dict[str, Any]:
    """``module.x`` -> ``x`` for every key that has the prefix; a clash is an error."""
    out: dict[str, Any] = {}
    for key, value in state.items():
        name = key[len(_DDP_PREFIX):] if key.startswith(_DDP_PREFIX) else key
        if name in out:
            raise CheckpointError(
                f"{source}: {key!r} and {name!r} are the same weight once 'module.' is stripped"
            )
        out[name] = value
    return out


def _pick_state_dict(obj: Any, path: Path, use_ema: bool) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise CheckpointError(
            f"{path}: holds a {type(obj).__name__}, not a state dict or a checkpoint dict"
        )
    keys = EMA_KEYS if use_ema else STATE_DICT_KEYS
    for key in keys:
        if key in obj and obj[key] is not None:
            state = obj[key]
            if not isinstance(state, dict):
                raise CheckpointError(f"{path}: {key!r} is a {type(state).__name__}, not a dict")
            return state
    if use_ema:
        raise CheckpointError(
            f"{path}: EMA weights were asked for, but the file has none of {list(EMA_KEYS)}"
        )
    if obj and not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(
            f"{path}: neither a state dict (all values tensors) nor a checkpoint dict with one of "
            f"{list(STATE_DICT_KEYS)}; top-level keys: {sorted(map(str, obj))[:12]}"
        )
    return obj


def _stored_model_config(obj: Any) -> dict[str, Any]:
    """What our own training checkpoints say about their model, in the layout of the metadata
    of ``model.safetensors``: the build arguments (fields that were set, and ``extra``), also as
    ``model_args``, with ``model_name`` and ``eval_cfg``. ``{}`` for other files."""
    if not (isinstance(obj, dict) and obj.get("format") == _TRAIN_FORMAT):
        return {}
    config = obj.get("config")
    model = config.get("model") if isinstance(config, dict) else None
    if not isinstance(model, dict):
        return {}
    extra = model.get("extra") if isinstance(model.get("extra"), dict) else {}
    skip = ("name", "extra", "init_from", "sync_bn")
    args = {**{k: v for k, v in model.items() if v is not None and k not in skip}, **extra}
    return {**args, "model_name": model.get("name"), "model_args": args,
            "eval_cfg": obj.get("eval_cfg")}


def read_torch_checkpoint(
    path: str | Path, use_ema: bool = False, with_config: bool = False
) -> dict[str, torch.Tensor] | tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The weights of a PyTorch checkpoint file, loaded without running code from it.

    Args:
        path: the file.
        use_ema: read the EMA copy instead of the weights (an error when there is none).
        with_config: also return the model fields a ``bimlp train`` checkpoint stores
            (``{}`` for other files).

    Raises:
        CheckpointError: naming the file, when it is truncated or not a PyTorch file, when its
            unpickling would need anything outside the allow-list (refused, never executed), or
            when the weights are empty or hold non-tensor values.
    """
    path = Path(path)
    obj = torch_load(path)
    state = _pick_state_dict(obj, path, use_ema)
    if not state:
        raise CheckpointError(f"{path}: the state dict is empty")
    bad = sorted(
        str(k) for k, v in state.items()
        if not isinstance(k, str) or not isinstance(v, torch.Tensor)
    )
    if bad:
        shown = ", ".join(bad[:12]) + (f", ... ({len(bad)} in all)" if len(bad) > 12 else "")
        raise CheckpointError(f"{path}: state dict entries that are not named tensors: {shown}")
    state = strip_ddp_prefix(state, path)
    return (state, _stored_model_config(obj)) if with_config else state
