"""Optimizer and learning-rate schedule of the ReActNet recipe.

Adam (L2 weight decay added to the gradient, as ReActNet's ``torch.optim.Adam`` does), weight
decay only on the weights of convolutions and linear layers -- binary convs included, biases,
norms, learnable biases and PReLU slopes excluded -- and a learning rate stepped every optimizer
step, decaying linearly to 0; ``optim.lr_mult`` puts chosen parameters at a multiple of it. The
rate is given at a reference global batch (256) and scaled linearly to the real one.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable, Mapping

import torch
from torch import nn

from .config import ConfigError, OptimConfig

__all__ = ["param_groups", "scaled_lr", "build_optimizer", "lr_factor", "build_scheduler"]

_DECAYED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def param_groups(model: nn.Module, weight_decay: float,
                 lr_mult: Mapping[str, float] | None = None) -> list[dict]:
    """Conv/linear ``weight`` tensors (decayed) and every other parameter, as two groups.

    ``lr_mult`` maps glob patterns over parameter names (``network.*.proj.weight``) to factors
    of the learning rate: the parameters a pattern matches go to groups of their own that carry
    ``lr_mult``, after the two base groups, which always come first (empty or not), so that
    group 0 holds the base rate and a run without multipliers keeps its two groups. A pattern
    that matches nothing, or a parameter matched by two patterns, is a :class:`ConfigError`.
    """
    lr_mult = dict(lr_mult or {})
    groups: dict[tuple[bool, float], list[nn.Parameter]] = {(True, 1.0): [], (False, 1.0): []}
    used: set[str] = set()
    for module_name, module in model.named_modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            full = f"{module_name}.{name}" if module_name else name
            hits = [pat for pat in lr_mult if fnmatch.fnmatchcase(full, pat)]
            if len(hits) > 1:
                raise ConfigError(f"optim.lr_mult: parameter {full!r} matches several patterns "
                                  f"({', '.join(map(repr, hits))})")
            used.update(hits)
            decay = name == "weight" and isinstance(module, _DECAYED)
            groups.setdefault((decay, lr_mult[hits[0]] if hits else 1.0), []).append(p)
    unused = [pat for pat in lr_mult if pat not in used]
    if unused:
        raise ConfigError(f"optim.lr_mult: no trainable parameter of the model matches "
                          f"{', '.join(map(repr, unused))}")
    return [{"params": params, "weight_decay": weight_decay if decay else 0.0,
             **({"lr_mult": mult} if mult != 1.0 else {})}
            for (decay, mult), params in groups.items()]


def scaled_lr(cfg: OptimConfig, global_batch: int) -> float:
    """``lr x global_batch / lr_ref_batch`` (linear scaling rule), or ``lr`` if no reference."""
    return cfg.lr * global_batch / cfg.lr_ref_batch if cfg.lr_ref_batch else cfg.lr


def build_optimizer(
    model: nn.Module, cfg: OptimConfig, global_batch: int, fused: bool = False
) -> torch.optim.Optimizer:
    """Adam or AdamW over :func:`param_groups`. ``fused``: torch's one-kernel-per-tensor
    implementation (the same update up to float rounding) instead of its per-parameter loop of
    small operations, which costs thousands of kernel calls a step on the CPU."""
    groups = param_groups(model, cfg.weight_decay, cfg.lr_mult)
    lr, betas = scaled_lr(cfg, global_batch), tuple(cfg.betas)
    for g in groups:
        if "lr_mult" in g:
            g["lr"] = lr * g["lr_mult"]
    kind = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}.get(cfg.optimizer)
    if kind is not None:
        return kind(groups, lr=lr, betas=betas, fused=fused or None)
    raise ConfigError(f"optim.optimizer must be adam or adamw, got {cfg.optimizer!r}")


def lr_factor(schedule: str, total_steps: int, warmup_steps: int = 0) -> Callable[[int], float]:
    """Multiplier of the base rate at optimizer step ``s`` (0-based)."""
    if schedule not in ("linear", "cosine", "constant"):
        raise ConfigError(f"optim.schedule must be linear, cosine or constant, got {schedule!r}")

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        t = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
        t = min(max(t, 0.0), 1.0)
        if schedule == "linear":
            return 1.0 - t
        if schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * t))
        return 1.0

    return factor


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: OptimConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step ``LambdaLR`` (its state dict holds only numbers)."""
    total = cfg.epochs * steps_per_epoch
    warmup = int(round(cfg.warmup_epochs * steps_per_epoch))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(cfg.schedule, total, warmup))
