"""The trained model: building it from the recipe's ``model`` section, and what its weights
file carries besides tensors."""

from __future__ import annotations

from typing import Any

from torch import nn

from .config import ConfigError, ModelConfig

__all__ = ["build_student", "model_default_cfg", "weights_metadata"]


def model_default_cfg(name: str) -> dict[str, Any]:
    """The registered default config (input size, crop, mean/std...) of a model name."""
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name)
    return cfg.to_dict() if cfg is not None else {}


def build_student(cfg: ModelConfig, num_classes: int, in_chans: int) -> nn.Module:
    """The student: a registered model (bimlp_s, ...) or a timm name, classes from the data."""
    from ..models import create_model, is_model

    kwargs = cfg.model_kwargs()
    kwargs.setdefault("num_classes", num_classes)
    kwargs.setdefault("in_chans", in_chans)
    if is_model(cfg.name):
        return create_model(cfg.name, **kwargs)
    import timm

    try:
        return timm.create_model(cfg.name, pretrained=False, **kwargs)
    except RuntimeError as e:
        raise ConfigError(f"model.name: {e}") from e


def weights_metadata(
    model: nn.Module, cfg: ModelConfig, eval_cfg: dict[str, Any]
) -> dict[str, Any]:
    """What ``model.safetensors`` carries besides tensors: the model family's config (so
    ``bimlp.create_model(name, checkpoint=...)`` restores the architecture), the name and
    arguments the model was built with, and the evaluation pipeline of its data."""
    config = model.config.to_dict() if hasattr(model, "config") else {}
    return {**config, "model_name": cfg.name, "model_args": cfg.model_kwargs(),
            "eval_cfg": eval_cfg}
