"""Training and evaluation: the two-step recipe (``docs/MODEL.md``, "Training recipe") with
distillation.

    from bimlp.train import load_config, train
    cfg = load_config("configs/bimlp_s_step1.yaml", ["data.root=/data/imagenet"])
    result = train(cfg)                       # under torchrun: every process calls it
    result.final["val_top1"], result.weights  # last epoch's metrics, model.safetensors

Modules: ``config`` (typed recipe), ``recipes`` (the built-in digits recipe), ``engine`` (the
loop), ``student`` (building the trained model, the metadata its weights carry), ``distill``
(loss, teachers), ``optim`` (Adam, schedule), ``state`` (checkpoints), ``distributed``
(torchrun), ``amp`` (autocast), ``skips`` (undecodable images), ``metrics`` (CSV, TensorBoard,
curves), ``evaluation`` (scoring a loader, loading saved models for ``bimlp eval``). The data
configuration lives with the data (:class:`bimlp.data.DataConfig`); the CLI in
``bimlp.commands``.
"""

from __future__ import annotations

from typing import Any

from .config import (
    ConfigError,
    DataConfig,
    DistillConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    TrainConfig,
    load_config,
)

__all__ = [
    "ConfigError",
    "DataConfig",
    "DistillConfig",
    "ModelConfig",
    "OptimConfig",
    "RunConfig",
    "TrainConfig",
    "TrainResult",
    "builtin_recipes",
    "evaluate",
    "load_config",
    "load_trained_model",
    "train",
]

_LAZY = {
    "train": "bimlp.train.engine", "TrainResult": "bimlp.train.engine",
    "evaluate": "bimlp.train.evaluation", "load_trained_model": "bimlp.train.evaluation",
    "builtin_recipes": "bimlp.train.recipes",
}


def __getattr__(name: str) -> Any:  # the loop pulls in torch.distributed etc.: load on use
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
