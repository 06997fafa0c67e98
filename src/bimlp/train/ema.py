"""Exponential moving average of a model's weights (optional, ``run.ema_decay``)."""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["ModelEma"]


class ModelEma:
    """``ema = decay * ema + (1 - decay) * weights`` after every optimizer step.

    Floating-point buffers (BatchNorm statistics) are averaged too; integer ones
    (``num_batches_tracked``) are copied. The copy lives on the model's device, in eval mode.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"run.ema_decay must lie in (0, 1), got {decay}")
        self.decay = decay
        self.module = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        current = model.state_dict()
        for name, ema in self.module.state_dict().items():
            value = current[name].detach()
            if ema.is_floating_point():
                ema.lerp_(value.to(ema.dtype), 1.0 - self.decay)
            else:
                ema.copy_(value)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.module.load_state_dict(state, strict=True)
