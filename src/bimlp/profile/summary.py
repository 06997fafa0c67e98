"""``profile(model)``: run one forward pass with hooks and add up what every layer costs.

Rows are the modules that own parameters or do multiply-accumulates (convolutions, linear
layers), named as in ``model.named_modules()`` and in that order. Counts are per sample (the
forward pass uses batch 1) and cover the MACs of conv / linear layers only -- elementwise
ops, norms, pooling and functional calls such as ``F.conv2d`` inside a ``forward`` are not
MACs of any layer and are not counted (the convention of ``BIMLP.md`` §10).

Stages come from module names: a top-level child that is an ``nn.ModuleList``,
``nn.Sequential`` or ``nn.ModuleDict`` is split into its children (``network.0``,
``network.1``, ...), every other top-level child is a stage of its own (``patch_embed``,
``norm``, ``head``), and parameters of the root module form the stage ``(root)``.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .counting import (
    FULL_PRECISION,
    ceil_bytes,
    count_macs,
    first_tensor,
    input_precision,
    is_binary_weight,
    is_mac_layer,
    ops,
    parameter_bits,
    quantizer_precision,
    weight_precision,
)

__all__ = ["LayerProfile", "ProfileResult", "StageProfile", "profile", "stage_of"]

ROOT_STAGE = "(root)"
_CONTAINERS = (nn.ModuleList, nn.Sequential, nn.ModuleDict)


@dataclass
class LayerProfile:
    """What one module costs. Precisions are bits per value (1 binary, 2 ternary, 32 float);
    ``weight_precision`` is None for modules without weights, ``input_precision`` None for
    modules that do no MACs."""

    name: str
    kind: str  # class name
    stage: str
    detail: str = ""  # e.g. "64->64 1x7 g64" for a conv
    weight_precision: int | None = None
    input_precision: int | None = None
    params: int = 0  # parameters owned by this module (not its children)
    binary_params: int = 0  # of which 1-bit weights
    memory_bits: int = 0  # 1 bit per binary weight, 32 per other parameter
    macs: int = 0
    bops: int = 0  # MACs with both operands 1-bit
    flops: int = 0  # all other MACs
    output_shape: tuple[int, ...] | None = None  # last call's output, batch 1 included
    calls: int = 0  # forward calls during profiling

    @property
    def ops(self) -> float:
        return ops(self.flops, self.bops)

    @property
    def computes(self) -> bool:
        """Whether this module is a MAC layer (a conv, a linear layer, ...)."""
        return self.input_precision is not None

    def to_dict(self) -> dict[str, Any]:
        return _row_dict(self)


def _row_dict(row: Any) -> dict[str, Any]:
    """JSON-ready dict of a layer or stage row: its fields, the shape as a list, and ``ops``."""
    d = dataclasses.asdict(row)
    d["output_shape"] = list(row.output_shape) if row.output_shape is not None else None
    d["ops"] = row.ops
    return d


@dataclass
class StageProfile:
    """The rows of one stage, added up."""

    name: str
    contents: str  # e.g. "PoolDownsample" or "2 x BiMLPBlock"
    layers: int = 0
    params: int = 0
    binary_params: int = 0
    memory_bits: int = 0
    macs: int = 0
    bops: int = 0
    flops: int = 0
    output_shape: tuple[int, ...] | None = None

    @property
    def ops(self) -> float:
        return ops(self.flops, self.bops)

    def to_dict(self) -> dict[str, Any]:
        return _row_dict(self)


@dataclass
class ProfileResult:
    """Per-layer rows, per-stage sums and totals of one model at one input size."""

    name: str
    input_size: tuple[int, ...]
    layers: list[LayerProfile]
    stages: list[StageProfile]
    buffers: int = 0  # floating-point buffer values (BN running statistics); not parameters
    notes: list[str] = field(default_factory=list)

    def _sum(self, attr: str) -> int:
        return sum(getattr(row, attr) for row in self.layers)

    @property
    def params(self) -> int:
        return self._sum("params")

    @property
    def binary_params(self) -> int:
        return self._sum("binary_params")

    @property
    def fp_params(self) -> int:
        return self.params - self.binary_params

    @property
    def memory_bits(self) -> int:
        return self._sum("memory_bits")

    @property
    def macs(self) -> int:
        return self._sum("macs")

    @property
    def bops(self) -> int:
        return self._sum("bops")

    @property
    def flops(self) -> int:
        return self._sum("flops")

    @property
    def ops(self) -> float:
        """``FLOPs + BOPs / 64``."""
        return ops(self.flops, self.bops)

    @property
    def size_bytes_fp32(self) -> int:
        """Every parameter as float32."""
        return self.params * FULL_PRECISION // 8

    @property
    def size_bytes_packed(self) -> int:
        """1-bit weights packed 8 per byte, every other parameter float32."""
        return ceil_bytes(self.memory_bits)

    @property
    def compression(self) -> float:
        return self.size_bytes_fp32 / self.size_bytes_packed if self.size_bytes_packed else 1.0

    def precision_breakdown(self) -> dict[tuple[int, int], tuple[int, int]]:
        """``(weight bits, input bits) -> (MAC layers, MACs)`` over the layers that ran."""
        out: dict[tuple[int, int], tuple[int, int]] = {}
        for row in self.layers:
            if row.computes and row.macs:
                key = (
                    row.weight_precision or FULL_PRECISION,
                    row.input_precision or FULL_PRECISION,
                )
                n, macs = out.get(key, (0, 0))
                out[key] = (n + 1, macs + row.macs)
        return out

    def to_dict(self) -> dict[str, Any]:
        """Totals (integers except ``ops`` and ``compression``), stages, layers and notes."""
        return {
            "model": self.name,
            "input_size": list(self.input_size),
            "params": self.params,
            "binary_params": self.binary_params,
            "fp_params": self.fp_params,
            "buffers": self.buffers,
            "macs": self.macs,
            "bops": self.bops,
            "flops": self.flops,
            "ops": self.ops,
            "memory_bits": self.memory_bits,
            "size_bytes_fp32": self.size_bytes_fp32,
            "size_bytes_packed": self.size_bytes_packed,
            "compression": self.compression,
            "notes": list(self.notes),
            "stages": [s.to_dict() for s in self.stages],
            "layers": [row.to_dict() for row in self.layers],
        }

    def format(self, all_layers: bool = False) -> str:
        """The readable report (layer table, stage table, totals, notes); see ``report.py``."""
        from .report import format_report

        return format_report(self, all_layers=all_layers)

    def __str__(self) -> str:
        return self.format()


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
