"""Training and evaluation: the two-step recipe (spec §11) with distillation.

    from bimlp.train import load_config, train
    cfg = load_config("configs/bimlp_s_step1.yaml", ["data.root=/data/imagenet"])
    result = train(cfg)                       # under torchrun: every process calls it
    result.final["val_top1"], result.weights  # last epoch's metrics, model.safetensors

Modules: ``config`` (typed recipe), ``recipes`` (the built-in digits recipe), ``engine`` (the
loop), ``distill`` (loss, teachers), ``optim`` (Adam, schedule), ``state`` (checkpoints),
``distributed`` (torchrun), ``metrics`` (CSV, TensorBoard, curves), ``evaluation`` (loading saved
models for ``bimlp eval``). The CLI lives in ``bimlp.commands``.
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
    "train": "engine", "evaluate": "engine", "TrainResult": "engine",
    "builtin_recipes": "recipes", "load_trained_model": "evaluation",
}


def __getattr__(name: str) -> Any:  # the loop pulls in torch.distributed etc.: load on use
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
