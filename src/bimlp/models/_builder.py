"""The one builder: a registered name (and optionally a checkpoint) -> a model.

Loading a checkpoint is always the same path, whatever the format or the caller:

1. :func:`bimlp.convert.open_checkpoint` reads the file (our safetensors: the header only) with
   the one policy for EMA weights (only when asked for) and DDP ``module.`` prefixes;
2. the architecture comes from the file's stored configuration, else the reader's, else the
   family's ``infer_config``; caller keywords override it. The file's own claims are validated
   first (types, choices, sane bounds), so a malicious configuration is an error naming the
   file, not thousands of blocks;
3. the block layout the configuration describes is compared with the file's key names (one
   pass over the names), then the model is built on the ``meta`` device and every key and shape
   of the file (through the family's ``checkpoint_filter_fn``) is compared with it -- nothing is
   allocated before the file is known to fit;
4. only then is the real model built and every tensor loaded strictly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checkpoint import CheckpointError, check_fits, load_state_dict_strict, shapes_of
from ..convert import CheckpointFile, open_checkpoint
from ._registry import Family, family_of, get_entrypoint

__all__ = ["create_model", "load_checkpoint", "model_from_checkpoint", "variant_for"]


def create_model(
    name: str,
    *,
    checkpoint: str | Path | CheckpointFile | None = None,
    use_ema: bool = False,
    **kwargs: Any,
) -> nn.Module:
    """Build a registered model, optionally loading a checkpoint strictly.

    Args:
        name: a name from :func:`bimlp.list_models` (e.g. ``bimlp_s``, ``wavemlp_t``).
        checkpoint: weights to load: our safetensors files (``bimlp convert``, training
            output), official MindSpore ``.ckpt`` files, released Wave-MLP ``.pth.tar`` files
            or our ``last.pt``. Architecture fields stored with the checkpoint (depths, dims,
            classes, ...) override the named model's defaults; ``kwargs`` override both.
        use_ema: load the EMA copy of a training checkpoint instead of its weights.
        **kwargs: configuration fields of the model family, e.g. ``mode="official"``,
            ``num_classes=10``, ``binary_weights=False``, ``uni_shortcut=False``.

    Raises:
        ValueError: unknown name or invalid keywords.
        bimlp.checkpoint.CheckpointError: the checkpoint cannot be read or does not fit.
    """
    entry = get_entrypoint(name)
    if checkpoint is None:
        return entry(**kwargs)
    ck = _open(checkpoint, use_ema)
    family = family_of(name)
    arch = _checkpoint_arch(ck, family) if family is not None else {}
    return _build_checked(name, family, ck, {**arch, **kwargs})


def model_from_checkpoint(
    path: str | Path, family: str | None = None, use_ema: bool = False, **kwargs: Any
) -> nn.Module:
    """The model a checkpoint describes, as the registered variant it matches (e.g. an
    official BiMLP-M file builds ``bimlp_m``), loaded strictly, in eval mode.

    Args:
        path: the file.
        family: the family it must hold (``bimlp``, ``wavemlp``); needed for files that do not
            name one (PyTorch pickles).
        use_ema: the EMA copy of a training checkpoint instead of its weights.
        **kwargs: configuration fields over the stored ones (e.g. ``mode="paper"``).
    """
    ck = open_checkpoint(path, use_ema=use_ema)
    found = family_of(family or ck.family or "")
    if found is None:
        raise CheckpointError(
            f"{path}: the file does not say which model family it holds; pass family= "
            "(bimlp or wavemlp) or use bimlp.create_model(name, checkpoint=...)"
        )
    arch = _checkpoint_arch(ck, found)
    name = variant_for(found.name, {**arch, **kwargs})
    return _build_checked(name, found, ck, {**arch, **kwargs}).eval()


def variant_for(family: str, config: dict[str, Any]) -> str:
    """The registered variant whose defining fields ``config`` has (``bimlp_m`` for depths
    2-3-10-3 with GroupNorm), else the family's first variant (then configured by ``config``)."""
    found = family_of(family)
    if found is None or not found.variants:
        raise ValueError(f"unknown model family {family!r}")
    resolved = found.config_cls(**config).to_dict()
    for name, defaults in found.variants.items():
        own = found.config_cls(**defaults).to_dict()
        if all(own[k] == resolved[k] for k in defaults):
            return name
    return next(iter(found.variants))


def load_checkpoint(
    model: nn.Module, path: str | Path | CheckpointFile, use_ema: bool = False,
    source: str | None = None,
) -> nn.Module:
    """Load a checkpoint strictly into an existing model (timm's ``load_checkpoint``): keys and
    shapes are compared first, before the tensors of a safetensors file are read; the model's
    family remaps the keys when it registered a ``checkpoint_filter_fn``."""
    ck = _open(path, use_ema)
    source = source or str(ck.path)
    filter_fn = _filter(family_of(model))
    check_fits(shapes_of(model.state_dict()), shapes_of(filter_fn(ck.meta_state_dict(), model)),
               source)
    load_state_dict_strict(model, filter_fn(ck.state_dict(), model), source=source)
    return model


# --- internals -----------------------------------------------------------------------------
def _open(path: str | Path | CheckpointFile, use_ema: bool) -> CheckpointFile:
    if isinstance(path, CheckpointFile):
        return path
    return open_checkpoint(path, use_ema=use_ema)


def _filter(family: Family | None):
    if family is None or family.checkpoint_filter_fn is None:
        return lambda state, model: state
    return family.checkpoint_filter_fn


def _checkpoint_arch(ck: CheckpointFile, family: Family) -> dict[str, Any]:
    """Architecture fields the file decides, validated on their own (a bad claim names the
    file, and nothing has been built yet)."""
    if ck.family and ck.family != family.name:
        raise CheckpointError(f"{ck.path}: holds a {ck.family!r} model, not a {family.name!r} one")
    fields = family.config_cls.arch_fields()
    arch = {k: v for k, v in ck.config.items() if k in fields}
    if not arch and family.infer_config is not None:
        arch = family.infer_config(ck.meta_state_dict(), str(ck.path))
    try:
        family.config_cls(**arch)
    except (TypeError, ValueError) as e:
        raise CheckpointError(
            f"{ck.path}: its configuration does not describe a {family.name} model ({e})"
        ) from None
    return arch


def _build_checked(
    name: str, family: Family | None, ck: CheckpointFile, kwargs: dict[str, Any]
) -> nn.Module:
    entry = get_entrypoint(name)
    source = str(ck.path)
    filter_fn = _filter(family)
    if family is not None:
        cfg = family.config_cls(**{**family.variants.get(name, {}), **kwargs})
        cfg.check_layout(ck.shapes, source)
    with torch.device("meta"):
        skeleton = entry(**kwargs)
    check_fits(shapes_of(skeleton.state_dict()),
               shapes_of(filter_fn(ck.meta_state_dict(), skeleton)), source)
    del skeleton
    model = entry(**kwargs)
    load_state_dict_strict(model, filter_fn(ck.state_dict(), model), source=source)
    return model
