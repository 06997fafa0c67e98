"""The fast training path's kernels: the same values and gradients as the plain modules, in
fewer memory passes, fewer fresh buffers and fewer autograd nodes.

Each function here is a ``torch.autograd.Function`` with a hand-written backward that replaces a
chain of small modules (or one slow ATen backward) on the training path of the binary networks.
They are used only where a model's fast path is switched on (``model.set_fast_path()``); the
plain modules stay the reference implementation, and ``tests/layers/test_fused.py`` checks that
both give the same outputs and the same gradient for every input, in float64.

Why these, by measurement on the CPU (2 cores, batch 128, BiMLP-XS at 32 px): ``aten::prelu``'s
backward was the largest single cost of a training step (about 18 %), and every fresh
full-size buffer costs page faults here, so the backward passes below work in place on one
buffer where they can and avoid boolean masks (``x > 0`` and ``torch.where`` were several times
slower than arithmetic on the same tensor).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["rprelu", "approx_sign", "ternary_round", "step_mask"]

_CHANNEL_DIMS = (0, 2, 3)  # the broadcast dimensions of a per-channel (1, C, 1, 1) parameter


def step_mask(t: torch.Tensor) -> torch.Tensor:
    """``1.0`` where ``t > 0``, else ``0.0`` (also for 0 and -0), as a float tensor, in two
    passes over one fresh buffer."""
    return torch.sign(t).clamp_(min=0.0)


class _RPReLUFn(torch.autograd.Function):
    """``PReLU(x + b1; a) + b2`` with per-channel ``b1``, ``a``, ``b2`` (ReActNet's RPReLU)."""

    @staticmethod
    def forward(ctx, x, b1, a, b2):  # type: ignore[override]
        t = x + b1
        ctx.save_for_backward(t, a)
        return F.prelu(t, a).add_(b2)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        t, a = ctx.saved_tensors
        a4 = a.view(1, -1, 1, 1)
        # dPReLU/dt = 1 for t > 0 and a otherwise (t = 0 included, as aten's prelu); the slope's
        # gradient sums grad * min(t, 0)
        grad_a = (grad * t.clamp(max=0.0)).sum(_CHANNEL_DIMS)
        grad_t = step_mask(t).mul_(1.0 - a4).add_(a4).mul_(grad)
        return (grad_t, grad_t.sum(_CHANNEL_DIMS, keepdim=True), grad_a,
                grad.sum(_CHANNEL_DIMS, keepdim=True))


def rprelu(x: torch.Tensor, b1: torch.Tensor, a: torch.Tensor, b2: torch.Tensor) -> torch.Tensor:
    """RPReLU in one autograd node: ``PReLU(x + b1; a) + b2``.

    Args:
        x: (B, C, H, W) input, any memory format.
        b1, b2: (1, C, 1, 1) shifts before and after the PReLU.
        a: (C,) PReLU slopes.
    """
    return _RPReLUFn.apply(x, b1, a, b2)


class _ApproxSignFn(torch.autograd.Function):
    """``sign(x)`` with sign(0) = +1; backward ``grad * max(0, 2 - 2|x|)``, the values of
    :class:`~bimlp.layers.quantizers.ApproxSign` bit for bit, computed in place on one buffer."""

    @staticmethod
    def forward(ctx, x):  # type: ignore[override]
        ctx.save_for_backward(x)
        return torch.sign(x).add_(0.5).sign_()

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        # 2 + (-2|x|) == 2 - 2|x| exactly, so this equals the reference's factor bit for bit
        return x.abs().mul_(-2.0).add_(2.0).clamp_(min=0.0).mul_(grad)


def approx_sign(x: torch.Tensor) -> torch.Tensor:
    """The ``paper`` activation quantizer (sign, ApproxSign gradient) in one lean node."""
    return _ApproxSignFn.apply(x)


class _TernaryRoundFn(torch.autograd.Function):
    """``round(clip(x, -1, 1))``; backward ``grad`` where ``|x| <= 1``, else 0 (the values of
    :class:`~bimlp.layers.quantizers.TernaryRound`), without a boolean mask."""

    @staticmethod
    def forward(ctx, x):  # type: ignore[override]
        ctx.save_for_backward(x)
        return torch.round(x.clamp(-1.0, 1.0))

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        # sign(1 - |x|) is 1, 0, -1 for |x| <, =, > 1; + 1 and clamped to 1: 1, 1, 0
        return x.abs().neg_().add_(1.0).sign_().add_(1.0).clamp_(max=1.0).mul_(grad)


def ternary_round(x: torch.Tensor) -> torch.Tensor:
    """The ``official`` activation quantizer (clipped straight-through gradient), lean."""
    return _TernaryRoundFn.apply(x)
