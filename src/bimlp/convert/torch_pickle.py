"""PyTorch checkpoint files (``.pth``, ``.pth.tar``) as untrusted input.

A pickle can name any importable callable and have the unpickler call it, so loading one the usual
way runs whatever its author wanted. Here every file goes through ``torch.load(weights_only=True)``:
PyTorch's restricted unpickler, which rebuilds tensors, containers and plain Python values only,
widened by :data:`SAFE_GLOBALS` -- the few harmless classes that released training checkpoints
(timm's ``train.py`` layout: ``state_dict``, ``state_dict_ema``, ``optimizer``, ``args``) need.
A file that asks for anything else is refused before that object is built.
"""

from __future__ import annotations

import argparse
import contextlib
import pickle
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import CheckpointError

__all__ = ["SAFE_GLOBALS", "STATE_DICT_KEYS", "read_torch_checkpoint"]

# Classes a training checkpoint may contain beyond tensors and builtins. argparse.Namespace is a
# plain attribute bag (no __setstate__, no __reduce__ logic); timm saves the script's arguments
# as one.
SAFE_GLOBALS: tuple[type, ...] = (argparse.Namespace,)

# Where a checkpoint dict keeps the weights, in order of preference. The EMA copy
# (``state_dict_ema``) is deliberately not a fallback: it is a different set of weights.
STATE_DICT_KEYS = ("state_dict", "model")

_DDP_PREFIX = "module."


@contextlib.contextmanager
def _allow_listed() -> Iterator[None]:
    """The restricted unpickler with :data:`SAFE_GLOBALS` allowed (scoped, not process-wide)."""
    safe_globals = getattr(torch.serialization, "safe_globals", None)
    if safe_globals is None:  # torch < 2.5: plain weights_only (bare state dicts still load)
        yield
        return
    with safe_globals(list(SAFE_GLOBALS)):
        yield


def _load(path: Path) -> Any:
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
    except (RuntimeError, EOFError, OSError, ValueError, TypeError, AttributeError) as e:
        raise CheckpointError(
            f"{path}: not a readable PyTorch checkpoint, truncated or corrupt ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else 'no detail'})"
        ) from e


def _pick_state_dict(obj: Any, path: Path) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise CheckpointError(
            f"{path}: holds a {type(obj).__name__}, not a state dict or a checkpoint dict"
        )
    for key in STATE_DICT_KEYS:
        if key in obj:
            state = obj[key]
            if not isinstance(state, dict):
                raise CheckpointError(f"{path}: {key!r} is a {type(state).__name__}, not a dict")
            return state
    if obj and not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(
            f"{path}: neither a state dict (all values tensors) nor a checkpoint dict with one of "
            f"{list(STATE_DICT_KEYS)}; top-level keys: {sorted(map(str, obj))[:12]}"
        )
    return obj


def read_torch_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The weights of a PyTorch checkpoint file, loaded without running code from it.

    Accepts a training checkpoint dict (its ``state_dict``, else ``model``; other entries such as
    optimizer state, ``state_dict_ema`` or an ``argparse.Namespace`` are read and ignored) or a
    bare state dict. A ``module.`` prefix (DataParallel / DDP) is stripped.

    Raises:
        CheckpointError: naming the file, when it is truncated or not a PyTorch file, when its
            unpickling would need anything outside the allow-list (refused, never executed), or
            when the weights are empty or hold non-tensor values.
    """
    path = Path(path)
    state = _pick_state_dict(_load(path), path)
    if not state:
        raise CheckpointError(f"{path}: the state dict is empty")
    bad = sorted(
        str(k) for k, v in state.items()
        if not isinstance(k, str) or not isinstance(v, torch.Tensor)
    )
    if bad:
        shown = ", ".join(bad[:12]) + (f", ... ({len(bad)} in all)" if len(bad) > 12 else "")
        raise CheckpointError(f"{path}: state dict entries that are not named tensors: {shown}")
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        name = key[len(_DDP_PREFIX):] if key.startswith(_DDP_PREFIX) else key
        if name in out:
            raise CheckpointError(
                f"{path}: {key!r} and {name!r} are the same weight once 'module.' is stripped"
            )
        out[name] = value
    return out
