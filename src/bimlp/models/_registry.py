"""The model registry: our names, registered with timm too, and the one builder.

Every model exists only through a registered entry point (a few lines calling the family's
builder). ``import bimlp`` registers them all with timm, so ``timm.create_model("bimlp_s")``
works; :func:`create_model` adds our extras (numerical mode, checkpoint files).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from timm.models import build_model_with_cfg
from timm.models import register_model as _timm_register_model
from torch import nn

__all__ = ["create_model", "list_models", "register_model", "is_model"]

_ENTRYPOINTS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register ``fn`` under its function name, with us and with timm."""
    _ENTRYPOINTS[fn.__name__] = fn
    return _timm_register_model(fn)


def build_variant(
    model_cls: type[nn.Module],
    variant: str,
    defaults: dict[str, Any],
    pretrained: bool,
    no_weights_hint: str,
    **kwargs: Any,
) -> nn.Module:
    """What every entry point does: the variant's defaults, then the caller's keywords, built by
    timm's ``build_model_with_cfg`` (which attaches the default config). No weights are hosted,
    so ``pretrained=True`` is an error that says where weights come from instead."""
    if pretrained:
        raise ValueError(f"no hosted {variant} weights; {no_weights_hint}")
    return build_model_with_cfg(model_cls, variant, pretrained=False, **{**defaults, **kwargs})


def list_models() -> list[str]:
    """Names of every model this package registers, sorted."""
    return sorted(_ENTRYPOINTS)


def is_model(name: str) -> bool:
    return name in _ENTRYPOINTS


def create_model(
    name: str,
    *,
    checkpoint: str | Path | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a registered model, optionally loading a checkpoint strictly.

    Args:
        name: a name from :func:`list_models` (e.g. ``bimlp_s``, ``wavemlp_t``).
        checkpoint: weights to load: our safetensors files (``bimlp convert``, training
            output), official MindSpore ``.ckpt`` files, or released Wave-MLP ``.pth.tar``
            files. Architecture fields stored with the checkpoint (depths, dims, classes, ...)
            override the named model's defaults; ``kwargs`` override both.
        **kwargs: configuration fields of the model family, e.g. ``mode="official"``,
            ``num_classes=10``, ``binary_weights=False``, ``uni_shortcut=False``.

    Raises:
        ValueError: unknown name.
        bimlp.checkpoint.CheckpointError: the checkpoint cannot be read or does not fit.
    """
    if name not in _ENTRYPOINTS:
        raise ValueError(f"unknown model {name!r}; registered: {', '.join(list_models())}")
    if checkpoint is None:
        return _ENTRYPOINTS[name](**kwargs)
    from ..checkpoint import load_state_dict_strict, read_checkpoint

    state, arch = read_checkpoint(checkpoint, family=getattr(_ENTRYPOINTS[name], "family", None))
    model = _ENTRYPOINTS[name](**{**arch, **kwargs})
    load_state_dict_strict(model, state, source=str(checkpoint))
    return model
