"""The model registry: entry points (registered with timm too) and the families they belong to.

Every model exists only through a registered entry point (a few lines calling the family's
builder). ``import bimlp`` registers them all with timm, so ``timm.create_model("bimlp_s")``
works. A family registers, with its entry points, what the builder (:mod:`._builder`) needs to
read checkpoints for it: its configuration class (the one list of architecture fields), how to
infer that configuration from a state dict that carries none, and how to remap a checkpoint's
keys onto the model (timm's ``checkpoint_filter_fn``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from timm.models import build_model_with_cfg, resolve_pretrained_cfg
from timm.models import register_model as _timm_register_model
from torch import nn

from ..convert import open_checkpoint
from ._base import ArchConfig

__all__ = [
    "Family", "build_variant", "config_fields", "family_of", "get_entrypoint", "is_model",
    "list_families", "list_models", "register_family", "register_model",
]

_ENTRYPOINTS: dict[str, Callable[..., nn.Module]] = {}
_FAMILIES: dict[str, Family] = {}
_MODEL_FAMILY: dict[str, str] = {}

StateDict = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Family:
    """A model family and its checkpoint hooks.

    Attributes:
        name: ``bimlp``, ``wavemlp``; stored in our checkpoints.
        config_cls: the family's configuration dataclass.
        variants: entry-point name -> the configuration fields it sets.
        infer_config: ``(state, source) -> architecture fields`` for files that store none
            (works on shapes only: it may be given ``meta`` tensors).
        checkpoint_filter_fn: ``(state, model) -> state`` remapping a checkpoint onto the
            model's names and shapes (``model`` may live on the ``meta`` device).
    """

    name: str
    config_cls: type[ArchConfig]
    variants: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    infer_config: Callable[[Mapping[str, torch.Tensor], str], dict[str, Any]] | None = None
    checkpoint_filter_fn: Callable[[StateDict, nn.Module], StateDict] | None = None


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register ``fn`` under its function name, with us and with timm."""
    _ENTRYPOINTS[fn.__name__] = fn
    return _timm_register_model(fn)


def register_family(family: Family) -> Family:
    """Register a family; its ``variants`` must already be registered entry points."""
    for name in family.variants:
        if name not in _ENTRYPOINTS:
            raise ValueError(f"family {family.name!r}: {name!r} is not a registered model")
        _MODEL_FAMILY[name] = family.name
    _FAMILIES[family.name] = family
    return family


def family_of(name_or_model: str | nn.Module) -> Family | None:
    """The family of a model name, a family name, or a built model (``None``: not ours)."""
    if isinstance(name_or_model, nn.Module):
        return _FAMILIES.get(getattr(name_or_model, "family", ""))
    if name_or_model in _FAMILIES:
        return _FAMILIES[name_or_model]
    return _FAMILIES.get(_MODEL_FAMILY.get(name_or_model, ""))


def list_families() -> list[Family]:
    """Every registered family, in registration order."""
    return list(_FAMILIES.values())


def config_fields(family: str) -> tuple[str, ...]:
    """The architecture fields of a family, from its configuration dataclass (what checkpoint
    metadata, packed artifacts and training configs carry)."""
    found = family_of(family)
    if found is None:
        raise ValueError(f"unknown model family {family!r}; registered: {', '.join(_FAMILIES)}")
    return found.config_cls.arch_fields()


def build_variant(
    model_cls: type[nn.Module],
    variant: str,
    defaults: dict[str, Any],
    pretrained: bool,
    no_weights_hint: str,
    **kwargs: Any,
) -> nn.Module:
    """What every entry point does: the variant's defaults, then the caller's keywords, built by
    timm's ``build_model_with_cfg`` (which attaches the default config).

    No weights are hosted: ``pretrained=True`` needs a local file, timm's ``--pretrained-path``
    route (``pretrained_cfg_overlay=dict(file=PATH)``), else it is an error that says where
    weights come from. The file is read by :func:`bimlp.convert.open_checkpoint` (any format
    ``checkpoint=`` takes), remapped by the family's ``checkpoint_filter_fn`` and loaded by timm,
    which drops the classifier when ``num_classes`` differs from the file's (fine-tuning)."""
    filter_fn = None
    if pretrained:
        kwargs = _with_local_weights(variant, no_weights_hint, kwargs)
        family = family_of(variant)
        filter_fn = family.checkpoint_filter_fn if family is not None else None
    # features_only=True: timm's FeatureGetterNet over forward_intermediates, every stage by
    # default (out_indices=... picks some)
    features = {"feature_cls": "getter", "out_indices": None}
    model = build_model_with_cfg(model_cls, variant, pretrained=pretrained, feature_cfg=features,
                                 pretrained_filter_fn=filter_fn, **{**defaults, **kwargs})
    for part in (model, getattr(model, "model", None)):  # features_only wraps the model
        cfg = getattr(part, "pretrained_cfg", None)
        if isinstance(cfg, dict):
            cfg.pop("state_dict", None)  # the weights are loaded: the config keeps only the file
    return model


def _with_local_weights(variant: str, hint: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` whose pretrained config carries the weights of its ``file``, read here."""
    cfg = resolve_pretrained_cfg(variant, pretrained_cfg=kwargs.get("pretrained_cfg"),
                                 pretrained_cfg_overlay=kwargs.get("pretrained_cfg_overlay"))
    if not cfg.file:
        raise ValueError(f"no hosted {variant} weights; {hint}, or pass a local file as "
                         "pretrained_cfg_overlay=dict(file=PATH) (timm's --pretrained-path)")
    state = open_checkpoint(cfg.file).state_dict()
    overlay = {**(kwargs.get("pretrained_cfg_overlay") or {}), "state_dict": state}
    return {**kwargs, "pretrained_cfg_overlay": overlay}


def list_models() -> list[str]:
    """Names of every model this package registers, sorted."""
    return sorted(_ENTRYPOINTS)


def is_model(name: str) -> bool:
    return name in _ENTRYPOINTS


def get_entrypoint(name: str) -> Callable[..., nn.Module]:
    if name not in _ENTRYPOINTS:
        raise ValueError(f"unknown model {name!r}; registered: {', '.join(list_models())}")
    return _ENTRYPOINTS[name]
