"""The tracer: ``profile(model)`` runs one forward pass with hooks and adds up what every layer
costs, into a :class:`~bimlp.profile.report.ProfileResult`.

Rows are the modules that own parameters or do multiply-accumulates (convolutions, linear
layers), named as in ``model.named_modules()`` and in that order. Counts are per sample (the
forward pass uses batch 1) and cover the MACs of conv / linear layers only -- elementwise
ops, norms, pooling and functional calls such as ``F.conv2d`` inside a ``forward`` are not
MACs of any layer and are not counted (the convention of ``docs/MODEL.md``, "Complexity").

Stages come from module names: a top-level child that is an ``nn.ModuleList``,
``nn.Sequential`` or ``nn.ModuleDict`` is split into its children (``network.0``,
``network.1``, ...), every other top-level child is a stage of its own (``patch_embed``,
``norm``, ``head``), and parameters of the root module form the stage ``(root)``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .counting import (
    FULL_PRECISION,
    count_macs,
    first_tensor,
    input_precision,
    is_binary_weight,
    is_mac_layer,
    parameter_bits,
    quantizer_precision,
    weight_precision,
)
from .report import ROOT_STAGE, LayerProfile, ProfileResult, StageProfile

__all__ = ["profile", "stage_of"]

_CONTAINERS = (nn.ModuleList, nn.Sequential, nn.ModuleDict)


# tracing ---------------------------------------------------------------------------------------
@dataclass
class _Trace:
    calls: int = 0
    macs: int = 0
    output_shape: tuple[int, ...] | None = None


def _run_with_hooks(model: nn.Module, x: torch.Tensor) -> dict[nn.Module, _Trace]:
    """One forward pass in eval mode without gradients; every module's calls, MACs and last
    output shape. Training flags are restored afterwards, module by module."""
    traces: dict[nn.Module, _Trace] = {}

    def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        t = traces.setdefault(module, _Trace())
        t.calls += 1
        if is_mac_layer(module):
            t.macs += count_macs(module, inputs, output)
        out = first_tensor(output)
        t.output_shape = tuple(out.shape) if out is not None else None

    flags = {m: m.training for m in model.modules()}
    handles = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        model.eval()
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
        for m, training in flags.items():
            m.training = training
    return traces


def _example_input(model: nn.Module, input_size: tuple[int, ...]) -> torch.Tensor:
    ref = next((p for p in model.parameters() if p.is_floating_point()), None)
    device = ref.device if ref is not None else torch.device("cpu")
    dtype = ref.dtype if ref is not None else torch.float32
    # zeros, not noise: the counts depend on shapes only, and zeros keep the run deterministic
    return torch.zeros((1, *input_size), device=device, dtype=dtype)


# rows and stages -------------------------------------------------------------------------------
def stage_of(name: str, model: nn.Module) -> str:
    """The stage a module belongs to, from its name (see the module docstring)."""
    if not name:
        return ROOT_STAGE
    parts = name.split(".")
    top = getattr(model, parts[0], None)
    if isinstance(top, _CONTAINERS) and len(parts) > 1:
        return ".".join(parts[:2])
    return parts[0]


def _detail(module: nn.Module) -> str:
    """A short shape description: ``cin->cout kh x kw [/stride] [g groups]`` for convs."""
    if isinstance(module, nn.modules.conv._ConvNd):
        kernel = "x".join(str(k) for k in module.kernel_size)
        text = f"{module.in_channels}->{module.out_channels} {kernel}"
        stride = module.stride
        if any(s != 1 for s in stride):
            text += "/" + (str(stride[0]) if len(set(stride)) == 1 else "x".join(map(str, stride)))
        if module.groups > 1:
            text += f" g{module.groups}"
        return text
    if isinstance(module, nn.Linear):
        return f"{module.in_features}->{module.out_features}"
    return ""


def _contents(module: nn.Module | None) -> str:
    """``2 x BiMLPBlock`` for a container, the class name otherwise."""
    if module is None:
        return "parameters of the model itself"
    if isinstance(module, _CONTAINERS):
        counts = Counter(type(m).__name__ for m in module.children())
        return ", ".join(f"{n} x {kind}" for kind, n in counts.items()) or type(module).__name__
    return type(module).__name__


def _layer_rows(model: nn.Module, traces: dict[nn.Module, _Trace]) -> list[LayerProfile]:
    rows: list[LayerProfile] = []
    seen: set[int] = set()  # parameters shared between modules count once, at their first owner
    for name, module in model.named_modules():
        own = [(n, p) for n, p in module.named_parameters(recurse=False) if id(p) not in seen]
        seen.update(id(p) for _, p in own)
        computes = is_mac_layer(module)
        if not own and not computes:
            continue
        trace = traces.get(module, _Trace())
        has_weight = isinstance(getattr(module, "weight", None), torch.Tensor)
        wp = weight_precision(module) if computes or has_weight else None
        ip = input_precision(module) if computes else None
        bops = trace.macs if computes and wp == 1 and ip == 1 else 0
        rows.append(
            LayerProfile(
                name=name or ROOT_STAGE,
                kind=type(module).__name__,
                stage=stage_of(name, model),
                detail=_detail(module),
                weight_precision=wp,
                input_precision=ip,
                params=sum(p.numel() for _, p in own),
                binary_params=sum(p.numel() for n, p in own if is_binary_weight(n, module)),
                memory_bits=sum(parameter_bits(n, p, module) for n, p in own),
                macs=trace.macs,
                bops=bops,
                flops=trace.macs - bops,
                output_shape=trace.output_shape,
                calls=trace.calls,
            )
        )
    return rows


def _stages(model: nn.Module, rows: list[LayerProfile], traces: dict[nn.Module, _Trace]):
    stages: dict[str, StageProfile] = {}
    for row in rows:
        if row.stage not in stages:
            module = None if row.stage == ROOT_STAGE else model.get_submodule(row.stage)
            trace = traces.get(module, _Trace()) if module is not None else _Trace()
            stages[row.stage] = StageProfile(
                row.stage, _contents(module), output_shape=trace.output_shape
            )
        s = stages[row.stage]
        s.layers += 1
        for attr in ("params", "binary_params", "memory_bits", "macs", "bops", "flops"):
            setattr(s, attr, getattr(s, attr) + getattr(row, attr))
    return list(stages.values())


def _notes(model: nn.Module, rows: list[LayerProfile]) -> list[str]:
    """Say where counts follow a convention a reader might not expect."""
    notes: list[str] = []
    mixed: dict[tuple[int, int], list[int]] = {}
    for row in rows:
        if row.computes and row.macs and row.bops == 0:
            key = (row.weight_precision, row.input_precision)
            if key != (FULL_PRECISION, FULL_PRECISION):
                mixed.setdefault(key, []).append(row.macs)
    for (wp, ip), macs in sorted(mixed.items()):
        ternary = " (ternary activations)" if ip == 2 else ""
        notes.append(
            f"{sum(macs):,} MACs in {len(macs)} layers with {wp}-bit weights x {ip}-bit "
            f"inputs{ternary} are counted as FLOPs: a BOP needs both operands 1-bit."
        )
    by_name = {row.name: row for row in rows}
    real = [
        row
        for name, module in model.named_modules()
        if (row := by_name.get(name or ROOT_STAGE)) is not None
        and row.computes
        and row.weight_precision != 1
        and quantizer_precision(module, "weight") == 1
    ]
    if real:
        notes.append(
            f"{len(real)} layers have a binary weight quantizer that leaves their weight shape "
            f"real-valued (e.g. depthwise kernels in official mode): "
            f"{sum(r.params for r in real):,} weights stored and counted as 32-bit."
        )
    idle = [r for r in rows if r.calls == 0]
    if idle:
        notes.append(
            f"{len(idle)} modules with {sum(r.params for r in idle):,} parameters did not run in "
            f"the forward pass: their parameters are counted, they have no MACs."
        )
    repeated = [r for r in rows if r.calls > 1]
    if repeated:
        notes.append(
            f"{len(repeated)} modules ran more than once; their MACs add up over all calls."
        )
    return notes


def profile(
    model: nn.Module,
    input_size: tuple[int, ...] = (3, 224, 224),
    *,
    name: str | None = None,
) -> ProfileResult:
    """Parameters, memory bits, BOPs, FLOPs and OPs of every layer of ``model``.

    Args:
        model: any ``nn.Module``; precisions come from its layers' quantizers (see
            ``bimlp.profile.counting``), so binary and full-precision models alike work.
        input_size: one sample's shape without the batch dimension, e.g. (3, 224, 224).
        name: a label for reports; defaults to the model's class name.

    Returns:
        A :class:`ProfileResult`: ``layers`` (one row per module that owns parameters or does
        MACs), ``stages`` and totals (``params``, ``binary_params``, ``bops``, ``flops``,
        ``ops``, ``size_bytes_fp32``, ``size_bytes_packed``, ...). ``str(result)`` is a report.
    """
    input_size = tuple(int(s) for s in input_size)
    traces = _run_with_hooks(model, _example_input(model, input_size))
    rows = _layer_rows(model, traces)
    return ProfileResult(
        name=name or type(model).__name__,
        input_size=input_size,
        layers=rows,
        stages=_stages(model, rows, traces),
        buffers=sum(b.numel() for b in model.buffers() if b.is_floating_point()),
        notes=_notes(model, rows),
    )
