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

``binary_unit`` makes a whole binary unit ``R(BN(BiConv(x + b)) + S)`` one node: the shift and
the activation quantizer were five element-wise passes forward and six backward (shift, sign,
the estimator's chain, the shift's gradient sum, adding the shortcut's gradient), now one
C++ pass each (``csrc/unit_head.cpp``), and the tail reads the Uni-shortcut (identity, group
mean, tile) straight from the unit's input instead of a materialised tensor.

Under ``torch.compile`` the C++ kernels are ``torch.library`` custom ops (``bimlp::head_forward``,
``head_backward``, ``tail_forward``, ``tail_backward``) with fake implementations: dynamo
traces the autograd functions, forward and backward, into the model's one graph, where each
kernel is an opaque call (the convolution and its backward stay aten calls between them), so
the compiler traces one node per unit instead of its small modules. ``tail_forward`` declares the
running statistics it updates and ``head_backward`` the gradient buffer it writes into (no op
returns an alias of an input); the batch counter is advanced outside the ops, traceably (a
``momentum=None`` BatchNorm2d in training runs its modules under compile). In eager mode the same
autograd functions call the extension directly, without the dispatcher.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .norm import BatchNorm2d as _OneValueBatchNorm
from .quantizers import ApproxSign, TernaryRound

__all__ = ["binary_unit", "rprelu", "step_mask", "unit_tail", "cpu_kernels",
           "cpu_kernels_error"]

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
_CSRC = Path(__file__).with_name("csrc")
_SOURCES = [_CSRC / name for name in ("module.cpp", "unit_head.cpp", "unit_tail.cpp",
                                      "token_conv.cpp")]
_ext: Any = None
_ext_error: str | None = None
_ext_lock = threading.Lock()


_LEVEL_FLAGS = {"v4": {"avx512f", "avx512bw", "avx512dq", "avx512vl"},
                "v3": {"avx2", "fma", "bmi2"}, "generic": set()}


def _cpu_flags() -> set[str] | None:
    """The CPU's feature flags from /proc/cpuinfo (empty where it lists none), or None where
    that file cannot be read."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        return None
    return set()


def _cpu_level() -> str:
    """The x86-64 micro-architecture level the kernels are built for: ``v4`` with AVX-512,
    ``v3`` with AVX2/FMA, else ``generic``; the build is cached per level, so a cache never
    holds code for instructions this CPU lacks. ``BIMLP_CPU_LEVEL`` picks a lower level (to
    measure what an AVX2 machine runs, or to share one build between machines); a level this
    CPU cannot run, or an unknown name, is an error."""
    flags = _cpu_flags()
    best = "generic" if flags is None else next(
        level for level, need in _LEVEL_FLAGS.items() if need <= flags)
    want = os.environ.get("BIMLP_CPU_LEVEL", "").strip()
    if not want:
        return best
    if want not in _LEVEL_FLAGS:
        raise ValueError(f"BIMLP_CPU_LEVEL={want} is not a level; use one of "
                         f"{', '.join(_LEVEL_FLAGS)}")
    if flags is not None and not _LEVEL_FLAGS[want] <= flags:
        missing = sorted(_LEVEL_FLAGS[want] - flags)
        raise ValueError(f"BIMLP_CPU_LEVEL={want}: this CPU lacks {', '.join(missing)}")
    return want


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
            # -fno-trapping-math: without it GCC will not vectorize RPReLU's
            # `t > 0 ? t : a * t` for AVX2 (it may not compute a * t on lanes the select drops,
            # in case that raised a floating-point exception; AVX2 has no masked multiply), so
            # the tail loops ran one float at a time there. Exception flags are never read: the
            # results are the same bits.
            flags = ["-O3", "-fno-trapping-math"] + (
                [f"-march=x86-64-{level}"] if level != "generic" else [])
            # -fopenmp: at::parallel_for splits the rows over torch's threads (the extension
            # binds to the libgomp that torch has loaded); without it every kernel runs on one
            # thread. A compiler without OpenMP gets the one-thread build.
            errors = []
            for omp in (["-fopenmp"], []):
                try:
                    from torch.utils import cpp_extension  # JIT builder (not a weight reader)

                    _ext = cpp_extension.load(
                        name=f"bimlp_unit_{level}{'_omp' if omp else ''}",
                        sources=[str(p) for p in _SOURCES], extra_cflags=flags + omp,
                        extra_ldflags=omp, verbose=False)
                    break
                except Exception as e:  # noqa: BLE001 - no compiler, no ninja, a build error
                    errors.append(f"{type(e).__name__}: {str(e).strip()[:500]}")
            if _ext is None:
                _ext_error = errors[-1]
                log.warning("bimlp fast path: the C++ kernels could not be built (%s); the "
                            "PyTorch-op kernels run instead (same values, slower)", _ext_error)
    return _ext


def cpu_kernels_error() -> str | None:
    """Why :func:`cpu_kernels` is None (after it was called), else None."""
    return _ext_error


@torch.compiler.assume_constant_result
def _have_kernels() -> bool:
    """Whether the C++ kernels are there: for torch.compile a constant of the trace (the build
    runs at trace time, outside the graph)."""
    return cpu_kernels() is not None


# --- the C++ kernels as torch.library custom ops: what torch.compile calls ------------------------
# Opaque to the compiler, each with a fake implementation (its results' shapes, strides and
# dtypes) for tracing. Their signatures are the extension's, so that the autograd functions
# below call either: the ops under torch.compile, the extension directly in eager mode (no
# dispatcher in between). No result aliases an input; what a kernel writes in place is declared.
@torch.library.custom_op("bimlp::head_forward", mutates_args=())
def _head_forward(x: torch.Tensor, b: torch.Tensor, quantizer: int) -> torch.Tensor:
    return cpu_kernels().head_forward(x, b, quantizer)


@_head_forward.register_fake
def _(x, b, quantizer):
    return torch.empty_like(x, memory_format=torch.channels_last)


@torch.library.custom_op("bimlp::head_backward", mutates_args=("gx",))
def _head_backward(gq: torch.Tensor, x: torch.Tensor, b: torch.Tensor, quantizer: int,
                   gx: torch.Tensor, accumulate: bool, gs_in_bias: bool) -> torch.Tensor:
    return cpu_kernels().head_backward(gq, x, b, quantizer, gx, accumulate, gs_in_bias)


@_head_backward.register_fake
def _(gq, x, b, quantizer, gx, accumulate, gs_in_bias):
    return x.new_empty(x.shape[1])


@torch.library.custom_op("bimlp::tail_forward", mutates_args=("running_mean", "running_var"))
def _tail_forward(y: torch.Tensor, s: torch.Tensor | None, s_bias: torch.Tensor | None,
                  s_map: int, s_factor: int, gamma: torch.Tensor, beta: torch.Tensor,
                  running_mean: torch.Tensor, running_var: torch.Tensor, training: bool,
                  momentum: float, eps: float, b1: torch.Tensor, a: torch.Tensor,
                  b2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                             torch.Tensor, torch.Tensor]:
    return tuple(cpu_kernels().tail_forward(y, s, s_bias, s_map, s_factor, gamma, beta,
                                            running_mean, running_var, training, momentum, eps,
                                            b1, a, b2))


@_tail_forward.register_fake
def _(y, s, s_bias, s_map, s_factor, gamma, beta, running_mean, running_var, training,
      momentum, eps, b1, a, b2):
    c = y.shape[1]
    stats = [y.new_empty(c, dtype=torch.float64) for _ in range(2)]
    return (torch.empty_like(y, memory_format=torch.channels_last), *stats, y.new_empty(c),
            y.new_empty(c))


@torch.library.custom_op("bimlp::tail_backward", mutates_args=())
def _tail_backward(g: torch.Tensor, y: torch.Tensor, s: torch.Tensor | None,
                   s_bias: torch.Tensor | None, s_map: int, s_factor: int, scale: torch.Tensor,
                   shift: torch.Tensor, a: torch.Tensor, mean: torch.Tensor,
                   invstd: torch.Tensor, gamma: torch.Tensor, training: bool
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                              torch.Tensor, torch.Tensor, torch.Tensor]:
    return tuple(cpu_kernels().tail_backward(g, y, s, s_bias, s_map, s_factor, scale, shift, a,
                                             mean, invstd, gamma, training))


@_tail_backward.register_fake
def _(g, y, s, s_bias, s_map, s_factor, scale, shift, a, mean, invstd, gamma, training):
    cl = torch.channels_last
    gs = y.new_empty(0) if s is None else torch.empty_like(s, memory_format=cl)
    grads = [y.new_empty(y.shape[1]) for _ in range(5)]  # gamma, beta, b1, a, b2
    return (torch.empty_like(y, memory_format=cl), gs, *grads)


def _kernels() -> Any:
    """The C++ kernels as the autograd functions call them: the ``bimlp::`` custom ops under
    torch.compile, the extension itself in eager mode."""
    return torch.ops.bimlp if torch.compiler.is_compiling() else cpu_kernels()


class _UnitTailFn(torch.autograd.Function):
    """``RPReLU(BN(y) + s)`` with BatchNorm2d's training / evaluation semantics."""

    @staticmethod
    def forward(ctx, y, s, gamma, beta, b1, a, b2, running_mean, running_var,  # type: ignore[override]
                batch_stats, momentum, eps):
        out, mean, invstd, scale, shift = _kernels().tail_forward(
            y, s, None, _SAME, 1, gamma, beta, running_mean, running_var, batch_stats, momentum,
            eps, b1, a, b2)
        ctx.save_for_backward(y, s, scale, shift, a, mean, invstd, gamma)
        ctx.batch_stats = batch_stats
        return out

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        y, s, scale, shift, a, mean, invstd, gamma = ctx.saved_tensors
        gy, gs, *grads = _kernels().tail_backward(grad, y, s, None, _SAME, 1, scale, shift, a,
                                                  mean, invstd, gamma, ctx.batch_stats)
        return (gy, gs if s is not None else None, *grads, None, None, None, None, None)


def _tail_applies(dtype: torch.dtype, device: torch.device, channels: int, rows: int,
                  bn: nn.Module, act: nn.Module) -> bool:
    """The C++ tail computes ``act(bn(y) + s)`` for a ``y`` of this dtype, device, channel
    count and rows per channel: a fused RPReLU after a BatchNorm2d on CPU float tensors of one
    dtype (under torch.compile too, as the ``bimlp::`` custom ops, unless a training BatchNorm2d's
    momentum is None), and not torch's own BatchNorm2d in training on one value per channel
    (which raises, unlike :class:`~bimlp.layers.BatchNorm2d`)."""
    if not getattr(act, "fused", False):
        return False
    if not (isinstance(bn, nn.BatchNorm2d) and bn.affine and bn.track_running_stats):
        return False
    if torch.compiler.is_compiling() and bn.training and bn.momentum is None:
        return False  # momentum 1 / num_batches_tracked: a tensor read, a graph break
    return (device.type == "cpu" and dtype in (torch.float32, torch.float64)
            and bn.weight.dtype == act.act.weight.dtype == dtype
            and channels == bn.num_features == act.act.weight.numel()
            and not (bn.training and rows == 1 and not isinstance(bn, _OneValueBatchNorm))
            and _have_kernels())


def _kernel_applies(y: torch.Tensor, bn: nn.Module, act: nn.Module) -> bool:
    return y.dim() == 4 and _tail_applies(y.dtype, y.device, y.shape[1],
                                          y.numel() // max(y.shape[1], 1), bn, act)


def _batch_norm_step(bn: nn.Module, rows: int) -> tuple[bool, float]:
    """(batch statistics?, momentum) of a BatchNorm2d call on ``rows`` values per channel, with
    its batch counter advanced as the module would: one value per channel
    (bimlp.layers.BatchNorm2d) uses the running statistics, as in evaluation."""
    batch_stats = bn.training and rows != 1
    momentum = 0.0
    if batch_stats:
        bn.num_batches_tracked.add_(1)
        momentum = (1.0 / float(bn.num_batches_tracked) if bn.momentum is None
                    else float(bn.momentum))
    return batch_stats, momentum


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
    batch_stats, momentum = _batch_norm_step(bn, y.numel() // y.shape[1])
    return _UnitTailFn.apply(
        y.contiguous(memory_format=cl), None if s is None else s.contiguous(memory_format=cl),
        bn.weight, bn.bias, act.move1.bias.view(-1), act.act.weight, act.move2.bias.view(-1),
        bn.running_mean, bn.running_var, batch_stats, momentum, float(bn.eps))


# --- the whole binary unit R(BN(BiConv(x + b)) + S) in one node (CPU) ----------------------------
# the C++ head's activation quantizers (csrc/unit_head.cpp) and the tail's shortcut maps
_HEAD_QUANTIZERS = {ApproxSign: 0, TernaryRound: 1}
_SAME, _MEAN, _TILE = 0, 1, 2
_SHORTCUT_MAPS = {"identity": _SAME, "mean": _MEAN, "tile": _TILE}


def token_conv_axis(weight_shape: tuple[int, ...] | torch.Size, stride, padding, dilation,
                    groups: int, in_channels: int) -> int | None:
    """The axis of a token-mixing convolution (1: 1 x T along W, 0: T x 1 along H) that the C++
    kernels of :mod:`bimlp.layers.token_conv` compute, or None: one output channel per group, an odd number of taps along one axis,
    stride 1, no dilation, zero padding of half the taps on that axis only."""
    if (len(weight_shape) != 4 or groups != weight_shape[0]
            or groups * weight_shape[1] != in_channels):
        return None
    kh, kw = weight_shape[2], weight_shape[3]
    if tuple(stride) != (1, 1) or tuple(dilation) != (1, 1) or not isinstance(padding, tuple):
        return None
    if kh == 1 and kw % 2 == 1 and tuple(padding) == (0, kw // 2):
        return 1
    if kw == 1 and kh % 2 == 1 and tuple(padding) == (kh // 2, 0):
        return 0
    return None



class _BinaryUnitFn(torch.autograd.Function):
    """``RPReLU(BN(conv(Q(x + b), wq)) + s)``: the head Q(x + b) and the tail in C++, the
    convolution by torch's kernels. ``spec`` says where the shortcut comes from: ``s`` (a tensor
    computed elsewhere, with its own gradient) or x's channels mapped by ``(map, factor)``, read
    after the shift (``shifted``) or before; the head's backward adds the latter's gradient to
    x's in the same pass."""

    @staticmethod
    def forward(ctx, x, b, wq, gamma, beta, b1, a, b2, s,  # type: ignore[override]
                spec, conv_args, running_mean, running_var, batch_stats, momentum, eps):
        quantizer, from_input, shifted, s_map, factor = spec
        ext = _kernels()
        q = ext.head_forward(x, b, quantizer)
        axis = token_conv_axis(wq.shape, *conv_args, q.shape[1])  # token mixing: C++ as well
        if axis is None:
            y = torch.convolution(q, wq, None, *conv_args[:3], False, (0, 0), conv_args[3])
            y = y.contiguous(memory_format=torch.channels_last)
        else:
            y = ext.token_conv_forward(q, wq, axis)
        src, s_bias = (x, b if shifted else None) if from_input else (s, None)
        out, mean, invstd, scale, shift = ext.tail_forward(
            y, src, s_bias, s_map, factor, gamma, beta, running_mean, running_var, batch_stats,
            momentum, eps, b1, a, b2)
        ctx.save_for_backward(x, b, wq, q, y, s, scale, shift, a, mean, invstd, gamma)
        ctx.spec, ctx.conv_args, ctx.batch_stats, ctx.axis = spec, conv_args, batch_stats, axis
        return out

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        x, b, wq, q, y, s, scale, shift, a, mean, invstd, gamma = ctx.saved_tensors
        quantizer, from_input, shifted, s_map, factor = ctx.spec
        ext = _kernels()
        src, s_bias = (x, b if shifted else None) if from_input else (s, None)
        gy, gsrc, *grads = ext.tail_backward(grad, y, src, s_bias, s_map, factor, scale, shift,
                                             a, mean, invstd, gamma, ctx.batch_stats)
        stride, padding, dilation, groups = ctx.conv_args
        if ctx.axis is None:
            gq, gwq, _ = torch.ops.aten.convolution_backward(
                gy, q, wq, None, stride, padding, dilation, False, [0, 0], groups,
                [True, ctx.needs_input_grad[2], False])
        else:
            gq, gwq = ext.token_conv_backward(gy, q, wq, ctx.axis, True, ctx.needs_input_grad[2])
            gwq = gwq if ctx.needs_input_grad[2] else None
        # x's gradient is written into the shortcut's (the tail's fresh gsrc), or a new buffer
        gx = gsrc if from_input else torch.empty_like(x, memory_format=torch.channels_last)
        gb = ext.head_backward(gq, x, b, quantizer, gx, from_input, from_input and shifted)
        return (gx, gb, gwq, *grads,
                None if from_input or s is None else gsrc,
                None, None, None, None, None, None, None)


def _conv_rows(x: torch.Tensor, conv: nn.Conv2d) -> int:
    """Values per output channel of ``conv(x)``: batch x output height x output width."""
    rows = x.shape[0]
    for i in (0, 1):
        span = conv.dilation[i] * (conv.kernel_size[i] - 1) + 1
        rows *= (x.shape[2 + i] + 2 * conv.padding[i] - span) // conv.stride[i] + 1
    return rows


def _unit_applies(x: torch.Tensor, move: nn.Module, conv: nn.Module, bn: nn.Module,
                  act: nn.Module) -> bool:
    """The one-node unit computes this call: the C++ tail applies, the conv is a binary conv
    with numeric zero padding whose activation quantizer has a C++ head and runs fused, on a
    (B, C, H, W) input of the parameters' dtype."""
    quantizer = getattr(conv, "input_quantizer", None)
    if not (type(quantizer) in _HEAD_QUANTIZERS and getattr(quantizer, "fused", False)
            and hasattr(conv, "quantized_weight") and isinstance(conv.padding, tuple)
            and conv.padding_mode == "zeros" and conv.bias is None and x.dim() == 4
            and x.shape[1] == conv.in_channels and x.dtype == move.bias.dtype
            == conv.weight.dtype):
        return False
    return _tail_applies(x.dtype, x.device, conv.out_channels, _conv_rows(x, conv), bn, act)


def binary_unit(x: torch.Tensor, move: nn.Module, conv: nn.Module, bn: nn.Module,
                act: nn.Module, shortcut: nn.Module | str | None = None, shifted: bool = True,
                s: torch.Tensor | None = None) -> torch.Tensor:
    """BiMLP's binary unit ``act(bn(conv(u)) + S)`` on the shifted input ``u = move(x)``.

    The reference modules run unless the unit's RPReLU and activation quantizer are fused (a
    model's fast path): then, on the CPU, it is one autograd node -- the shift and the
    quantizer in one C++ pass, torch's convolution, the C++ tail reading the shortcut straight
    from ``x`` -- whose backward adds the shortcut's gradient to ``x``'s in the head's one pass.

    Args:
        x: (B, C_in, H, W), the unit's input.
        move: the LearnableBias before the conv (``u = x + move.bias``).
        conv: the unit's BinaryConv2d.
        bn, act: the unit's BatchNorm2d and RPReLU.
        shortcut: ``"identity"`` or a :class:`~bimlp.layers.UniShortcut` of ``u`` (``shifted``)
            or of ``x`` (not ``shifted``); None for none.
        shifted: whether ``shortcut`` reads ``u`` rather than ``x``.
        s: instead of ``shortcut``, a shortcut computed elsewhere (the output's shape).
    """
    if s is not None and shortcut is not None:
        raise ValueError("binary_unit takes a shortcut module or a shortcut tensor, not both")
    if not _unit_applies(x, move, conv, bn, act):
        u = move(x)
        if shortcut is not None:
            src = u if shifted else x
            s = src if shortcut == "identity" else shortcut(src)
        return unit_tail(conv(u), s, bn, act)
    kind, factor = ("identity", 1) if shortcut in (None, "identity") else (shortcut.kind,
                                                                           shortcut.factor)
    spec = (_HEAD_QUANTIZERS[type(conv.input_quantizer)], shortcut is not None, shifted,
            _SHORTCUT_MAPS[kind], factor)
    batch_stats, momentum = _batch_norm_step(bn, _conv_rows(x, conv))
    cl = torch.channels_last
    return _BinaryUnitFn.apply(
        x.contiguous(memory_format=cl), move.bias.view(-1), conv.quantized_weight(), bn.weight,
        bn.bias, act.move1.bias.view(-1), act.act.weight, act.move2.bias.view(-1),
        None if s is None else s.contiguous(memory_format=cl), spec,
        (conv.stride, conv.padding, conv.dilation, conv.groups), bn.running_mean,
        bn.running_var, batch_stats, momentum, float(bn.eps))
