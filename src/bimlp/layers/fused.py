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
slower than arithmetic on the same tensor). The activation quantizers' lean backwards live
beside their reference ones in :mod:`bimlp.layers.quantizers`.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .norm import BatchNorm2d as _OneValueBatchNorm

__all__ = ["rprelu", "step_mask", "unit_tail", "cpu_kernels", "cpu_kernels_error"]

log = logging.getLogger("bimlp.fused")

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


# --- the unit's tail R(BN(y) + s) in C++ (CPU) ------------------------------------------------
_SOURCE = Path(__file__).with_name("csrc") / "unit_tail.cpp"
_ext: Any = None
_ext_error: str | None = None
_ext_lock = threading.Lock()


def _cpu_level() -> str:
    """The x86-64 micro-architecture level this CPU runs (``v4`` with AVX-512, ``v3`` with
    AVX2/FMA), for the compiler flags: the build is cached per level, so a cache never holds
    code for instructions this CPU lacks."""
    try:
        flags = set()
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        return "generic"
    if {"avx512f", "avx512bw", "avx512dq", "avx512vl"} <= flags:
        return "v4"
    if {"avx2", "fma", "bmi2"} <= flags:
        return "v3"
    return "generic"


def cpu_kernels() -> Any:
    """The compiled C++ kernels of the fast path, built on first use with torch's extension
    builder (g++ and ninja; cached under ``~/.cache/torch_extensions``), or None where they
    cannot be built -- then :func:`cpu_kernels_error` says why, and the fast path runs its
    PyTorch-op kernels instead (said once in the log, never silently)."""
    global _ext, _ext_error
    if _ext is not None or _ext_error is not None:
        return _ext
    with _ext_lock:
        if _ext is None and _ext_error is None:
            level = _cpu_level()
            flags = ["-O3"] + ([f"-march=x86-64-{level}"] if level != "generic" else [])
            try:
                from torch.utils import cpp_extension  # JIT builder (not a weight reader)

                _ext = cpp_extension.load(name=f"bimlp_unit_tail_{level}", sources=[str(_SOURCE)],
                            extra_cflags=flags, verbose=False)
            except Exception as e:  # noqa: BLE001 - no compiler, no ninja, a build error
                _ext_error = f"{type(e).__name__}: {str(e).strip()[:500]}"
                log.warning("bimlp fast path: the C++ kernels could not be built (%s); the "
                            "PyTorch-op kernels run instead (same values, slower)", _ext_error)
    return _ext


def cpu_kernels_error() -> str | None:
    """Why :func:`cpu_kernels` is None (after it was called), else None."""
    return _ext_error


class _UnitTailFn(torch.autograd.Function):
    """``RPReLU(BN(y) + s)`` with BatchNorm2d's training / evaluation semantics."""

    @staticmethod
    def forward(ctx, y, s, gamma, beta, b1, a, b2, running_mean, running_var,  # type: ignore[override]
                batch_stats, momentum, eps):
        ext = cpu_kernels()
        out, mean, invstd, scale, shift = ext.tail_forward(
            y, s, gamma, beta, running_mean, running_var, batch_stats, momentum, eps, b1, a, b2)
        ctx.save_for_backward(y, s, scale, shift, a, mean, invstd, gamma)
        ctx.batch_stats = batch_stats
        return out

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        y, s, scale, shift, a, mean, invstd, gamma = ctx.saved_tensors
        gy, gs, sums = cpu_kernels().tail_backward(grad, y, s, scale, shift, a, mean, invstd,
                                                   gamma, ctx.batch_stats)
        sum_g, sum_g_neg, sum_gt, sum_gt_yc = sums.to(y.dtype)
        grad_gamma = sum_gt_yc * invstd.to(y.dtype)
        return (gy, gs if s is not None else None, grad_gamma, sum_gt, sum_gt, sum_g_neg, sum_g,
                None, None, None, None, None)


def _kernel_applies(y: torch.Tensor, bn: nn.Module, act: nn.Module) -> bool:
    """The C++ tail computes this call: a fused RPReLU after a BatchNorm2d on CPU float tensors
    of one dtype, outside torch.compile (which fuses the modules itself and cannot trace into
    the C++ call), and not torch's own BatchNorm2d in training on one value per channel (which
    raises, unlike :class:`~bimlp.layers.BatchNorm2d`)."""
    if not getattr(act, "fused", False) or torch.compiler.is_compiling():
        return False
    if not (isinstance(bn, nn.BatchNorm2d) and bn.affine and bn.track_running_stats):
        return False
    one_value = y.numel() == y.shape[1]
    return (y.device.type == "cpu" and y.dim() == 4 and y.dtype in (torch.float32, torch.float64)
            and bn.weight.dtype == act.act.weight.dtype == y.dtype
            and y.shape[1] == bn.num_features == act.act.weight.numel()
            and not (bn.training and one_value and not isinstance(bn, _OneValueBatchNorm))
            and cpu_kernels() is not None)


def unit_tail(y: torch.Tensor, s: torch.Tensor | None, bn: nn.Module, act: nn.Module
              ) -> torch.Tensor:
    """The tail of BiMLP's binary unit, ``act(bn(y) + s)`` (``act(bn(y))`` without ``s``).

    The reference modules run unless ``act`` is a fused RPReLU (a model's fast path): then, for a
    BatchNorm2d on the CPU, two passes of C++ forward and two backward compute the same function
    -- BatchNorm2d's batch statistics and running-statistic update in training (its running
    statistics for a one-value-per-channel batch or in evaluation), the shortcut, the RPReLU.

    Args:
        y: (B, C, H, W), the binary conv's output.
        s: the shortcut, y's shape, or None.
        bn: the unit's BatchNorm2d (any other norm runs as a module).
        act: the unit's RPReLU.
    """
    if not _kernel_applies(y, bn, act):
        z = bn(y)
        return act(z if s is None else z + s)
    cl = torch.channels_last
    # one value per channel (bimlp.layers.BatchNorm2d): running statistics, as in evaluation
    batch_stats = bn.training and y.numel() != y.shape[1]
    momentum = 0.0
    if batch_stats:
        bn.num_batches_tracked.add_(1)
        momentum = (1.0 / float(bn.num_batches_tracked) if bn.momentum is None
                    else float(bn.momentum))
    return _UnitTailFn.apply(
        y.contiguous(memory_format=cl), None if s is None else s.contiguous(memory_format=cl),
        bn.weight, bn.bias, act.move1.bias.view(-1), act.act.weight, act.move2.bias.view(-1),
        bn.running_mean, bn.running_var, batch_stats, momentum, float(bn.eps))
