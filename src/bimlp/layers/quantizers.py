"""Quantizers: the functions that turn real values into 1-bit (or ternary) ones.

Each quantizer is a ``torch.autograd.Function`` (forward = the quantization, backward = a named
gradient estimator) wrapped by a small ``nn.Module`` that carries ``precision`` (bits per value:
1 binary, 2 ternary, 32 full precision) and is registered under a string name, so layers pick
their quantizers by name and the profiler reads ``precision`` instead of checking layer types.

Two numerical modes exist (see ``docs/MODEL.md``, "Numerical modes"):

* ``paper``: activations ``sign(x)`` with sign(0) = +1 and the ApproxSign gradient of ReActNet;
  weights ``sign(W) * mean|W|`` with one scale per output channel, straight-through gradient
  zeroed where ``|W| > 1``.
* ``official``: what the released MindSpore code computes -- ternary activations
  ``round(clip(x, -1, 1))`` and weight scales averaged over the input-channel axis only.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

__all__ = [
    "ApproxSign",
    "ScaledSign",
    "TernaryRound",
    "ChannelMeanSign",
    "Quantizer",
    "QUANTIZERS",
    "get_quantizer",
    "register_quantizer",
    "sign_plus",
]


def sign_plus(x: torch.Tensor) -> torch.Tensor:
    """sign with sign(0) = +1, so every value is exactly +1 or -1.

    ``sign(sign(x) + 0.5)`` rather than ``torch.where(x >= 0, 1, -1)``: the same values (also for
    -0.0 and subnormals), in three in-place passes that are about 7x faster on CPU than ``where``
    with a boolean mask — this is the float baseline's activation sign, so it must not be slow.
    """
    return torch.sign(x).add_(0.5).sign_()


class _ApproxSignFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        return sign_plus(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        # Piecewise-polynomial derivative of the ApproxSign curve: 2 - 2|x| on [-1, 1], 0 outside.
        factor = (2.0 - 2.0 * x.abs()).clamp_(min=0.0)
        return grad * factor


class _ScaledSignFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(w)
        # One magnitude per output channel: mean over (in/groups, kh, kw); the scale is a constant.
        scale = w.abs().mean(dim=tuple(range(1, w.dim())), keepdim=True)
        return sign_plus(w) * scale

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (w,) = ctx.saved_tensors
        return grad * (w.abs() <= 1.0).to(grad.dtype)


class _ApproxSignLeanFn(_ApproxSignFn):
    """The same forward; the same backward values, computed in place on one buffer (the fast
    path's: fewer fresh full-size buffers)."""

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        # 2 + (-2|x|) == 2 - 2|x| exactly, so this equals _ApproxSignFn's factor bit for bit
        return x.abs().mul_(-2.0).add_(2.0).clamp_(min=0.0).mul_(grad)


class _TernaryRoundFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        return torch.round(x.clamp(-1.0, 1.0))  # torch.round rounds half to even

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1.0).to(grad.dtype)


class _TernaryRoundLeanFn(_TernaryRoundFn):
    """The same forward; the same backward values without a boolean mask (the fast path's)."""

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        # sign(1 - |x|) is 1, 0, -1 for |x| <, =, > 1; + 1 and clamped to 1: 1, 1, 0
        return x.abs().neg_().add_(1.0).sign_().add_(1.0).clamp_(max=1.0).mul_(grad)


class _ChannelMeanSignFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        # The release averages over dim 1 only: one scale per (output channel, kernel tap).
        return torch.sign(w) * w.abs().mean(dim=1, keepdim=True)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return grad


class Quantizer(nn.Module):
    """Base class: a module that applies one quantization function and says its precision."""

    precision: int = 32
    name: str = "identity"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def precision_for(self, shape: torch.Size | tuple[int, ...]) -> int:
        """Bits per value this quantizer really produces for a weight of ``shape``."""
        return self.precision

    def extra_repr(self) -> str:
        return f"precision={self.precision}"


class ApproxSign(Quantizer):
    """Binary activation of ReActNet / Bi-Real Net (``paper`` mode), registry name ``approx_sign``.

    Forward: ``q = +1 if x >= 0 else -1`` (sign with sign(0) = +1, so values are exactly ±1).
    Backward: ``dq/dx = 2 - 2|x|`` for ``|x| <= 1`` and 0 outside (the ApproxSign estimator).
    Reference: Liu et al., "Bi-Real Net", ECCV 2018; Liu et al., "ReActNet", ECCV 2020.
    """

    precision = 1
    name = "approx_sign"
    fused: bool = False  # the fast path's lean node (same values and gradient)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (_ApproxSignLeanFn if self.fused else _ApproxSignFn).apply(x)


class ScaledSign(Quantizer):
    """Binary weights with one scale per output channel (``paper`` mode), name ``scaled_sign``.

    Forward: ``q = sign(W) * mean(|W|)``, the mean over (in/groups, kh, kw) of each output
    channel, sign(0) = +1, the scale treated as a constant.
    Backward: straight-through, ``dq/dW = 1`` where ``|W| <= 1`` and 0 elsewhere.
    Reference: Rastegari et al., "XNOR-Net", ECCV 2016; ReActNet, ECCV 2020.
    """

    precision = 1
    name = "scaled_sign"

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return _ScaledSignFn.apply(w)


class TernaryRound(Quantizer):
    """Activation quantizer of the released BiMLP code (``official`` mode), name ``ternary_round``.

    Forward: ``q = round(clip(x, -1, 1))``, round half to even, so ``q`` is in {-1, 0, +1}
    (2 bits; the profiler therefore counts its MACs as FLOPs, not BOPs).
    Backward: the release defines none (it is evaluation code); we use the clipped
    straight-through estimator, ``dq/dx = 1`` for ``|x| <= 1`` and 0 outside.
    """

    precision = 2
    name = "ternary_round"
    fused: bool = False  # the fast path's lean node (same values and gradient)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (_TernaryRoundLeanFn if self.fused else _TernaryRoundFn).apply(x)


class ChannelMeanSign(Quantizer):
    """Weight quantizer of the released BiMLP code (``official`` mode), name ``channel_mean_sign``.

    Forward: ``q = sign(W) * mean(|W|, dim=1)``: the mean runs over the input-channel axis
    only, so there is one scale per output channel *and* kernel tap, and sign(0) = 0. For a
    depthwise kernel (in/groups = 1) this returns ``W`` itself: such weights stay real-valued.
    Backward: identity, ``dq/dW = 1`` (the release's straight-through estimator).
    """

    precision = 1
    name = "channel_mean_sign"

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return _ChannelMeanSignFn.apply(w)

    def precision_for(self, shape: torch.Size | tuple[int, ...]) -> int:
        # mean over a size-1 axis is |W| itself: sign(W) * |W| = W, full precision.
        return 32 if len(shape) > 1 and shape[1] == 1 else 1


QUANTIZERS: dict[str, Callable[[], Quantizer]] = {}


def register_quantizer(cls: type[Quantizer]) -> type[Quantizer]:
    """Class decorator-compatible registration under ``cls.name``."""
    QUANTIZERS[cls.name] = cls
    return cls


for _cls in (Quantizer, ApproxSign, ScaledSign, TernaryRound, ChannelMeanSign):
    register_quantizer(_cls)


def get_quantizer(name: str | None) -> Quantizer:
    """Build a quantizer from its registry name (``None`` or ``"identity"``: full precision)."""
    key = name or "identity"
    if key not in QUANTIZERS:
        raise ValueError(f"unknown quantizer {name!r}; known: {sorted(QUANTIZERS)}")
    return QUANTIZERS[key]()
