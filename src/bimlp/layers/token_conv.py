"""The token-mixing convolutions of Wave-MLP and BiMLP on the fast training path.

Both networks mix tokens with grouped convolutions of one output channel per group, ``p`` input
channels per group (2: a channel's cos and sin halves) and 7 taps along one axis (1 x 7 along the
rows, 7 x 1 along the columns), stride 1, zero padding 3. oneDNN runs these slowly on the CPU
(batch 128, one thread: a 2x2 map of 256 input channels took 10 ms forward, a 16x16 map of 64
channels 4.4 ms forward and 10 ms backward), so on the fast path they run as C++ loops over
channels-last lines (``csrc/token_conv.cpp``: 2-6x faster on the study's shapes, see its
header), eager or compiled (as the ``bimlp::token_conv_*`` custom ops). The plain convolution
stays the reference; ``tests/layers/test_token_conv.py`` checks both agree in value and gradient.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from . import fused as _fused  # its extension holds these kernels
from .fused import token_conv_axis

__all__ = ["TokenConv2d", "token_conv", "token_conv_axis"]


def _kernel_applies(x: torch.Tensor, weight: torch.Tensor) -> bool:
    return (x.device.type == "cpu" and x.dim() == 4 and x.dtype in (torch.float32, torch.float64)
            and weight.dtype == x.dtype and _fused.cpu_kernels() is not None)


@torch.library.custom_op("bimlp::token_conv_forward", mutates_args=())
def _forward_op(x: torch.Tensor, w: torch.Tensor, axis: int) -> torch.Tensor:
    return _fused.cpu_kernels().token_conv_forward(x, w, axis)


@_forward_op.register_fake
def _(x, w, axis):
    n, _, h, width = x.shape
    return x.new_empty((n, w.shape[0], h, width)).contiguous(memory_format=torch.channels_last)


@torch.library.custom_op("bimlp::token_conv_backward", mutates_args=())
def _backward_op(gy: torch.Tensor, x: torch.Tensor, w: torch.Tensor, axis: int, need_x: bool,
                 need_w: bool) -> tuple[torch.Tensor, torch.Tensor]:
    gx, gw = _fused.cpu_kernels().token_conv_backward(gy, x, w, axis, need_x, need_w)
    # custom ops return tensors: an empty one stands for a gradient that was not asked for
    return (gx if gx is not None else x.new_empty(0), gw if gw is not None else w.new_empty(0))


@_backward_op.register_fake
def _(gy, x, w, axis, need_x, need_w):
    gx = torch.empty_like(x, memory_format=torch.channels_last) if need_x else x.new_empty(0)
    # the kernel writes a contiguous weight gradient, whatever the weight's own strides (a
    # channels-last model's weights are channels-last)
    return gx, (w.new_empty(w.shape) if need_w else w.new_empty(0))


def _ops() -> Any:
    """The kernels as the autograd function calls them: the custom ops under torch.compile,
    the extension itself in eager mode (no dispatcher in between)."""
    return torch.ops.bimlp if torch.compiler.is_compiling() else _fused.cpu_kernels()


class _TokenConvFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, axis):  # type: ignore[override]
        ctx.save_for_backward(x, w)
        ctx.axis = axis
        return _ops().token_conv_forward(x, w, axis)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        x, w = ctx.saved_tensors
        need_x, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        gx, gw = _ops().token_conv_backward(grad.contiguous(memory_format=torch.channels_last),
                                            x, w, ctx.axis, need_x, need_w)
        return (gx if need_x else None), (gw if need_w else None), None


def token_conv(x: torch.Tensor, weight: torch.Tensor, axis: int) -> torch.Tensor:
    """``conv2d(x, weight, groups=weight.shape[0])`` of a token-mixing weight (C_out, p, 1, T)
    (axis 1) or (C_out, p, T, 1) (axis 0) with zero padding ``T // 2``, by the C++ kernels:
    a channels-last result. x: (B, C_out * p, H, W) on the CPU, float32 or float64."""
    return _TokenConvFn.apply(x.contiguous(memory_format=torch.channels_last), weight, axis)


class TokenConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` (same parameters, names and checkpoints) whose token-mixing form runs the
    C++ kernels when ``fused`` is on (a model's fast path, see ``set_fast_path``) and the module
    computes one (see :func:`token_conv_axis`); otherwise the plain convolution."""

    fused = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused and self.padding_mode == "zeros" and _kernel_applies(x, self.weight):
            axis = token_conv_axis(self.weight.shape, self.stride, self.padding, self.dilation,
                                   self.groups, x.shape[1])
            if axis is not None:
                y = token_conv(x, self.weight, axis)
                return y if self.bias is None else y + self.bias.view(1, -1, 1, 1)
        return super().forward(x)
