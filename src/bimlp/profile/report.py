"""What a profile is and how it reads: the rows and totals of :class:`ProfileResult`, a text
report and a chart of where the OPs go. (The tracer that fills them is :mod:`.trace`.)"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .counting import FULL_PRECISION, ceil_bytes, ops

__all__ = [
    "LayerProfile", "ProfileResult", "ROOT_STAGE", "StageProfile", "format_report", "plot_ops",
    "si",
]

ROOT_STAGE = "(root)"  # the stage of the root module's own parameters


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
        """The readable report (layer table, stage table, totals, notes)."""
        return format_report(self, all_layers=all_layers)

    def __str__(self) -> str:
        return self.format()


_PREFIXES = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K"))


def si(value: float) -> str:
    """``2241835008 -> '2.24G'``; small values as plain integers."""
    for scale, prefix in _PREFIXES:
        if abs(value) >= scale:
            return f"{value / scale:.2f}{prefix}"
    return f"{value:.0f}" if value == int(value) else f"{value:.2f}"


def _shape(shape: tuple[int, ...] | None) -> str:
    if shape is None:
        return "-"
    dims = shape[1:] if len(shape) > 1 and shape[0] == 1 else shape  # drop the batch of 1
    return "x".join(str(d) for d in dims)


def _bits(value: int | None) -> str:
    return "-" if value is None else str(value)


def _table(headers: list[str], rows: list[list[str]], left: int = 1) -> list[str]:
    """Columns padded to width; the first ``left`` columns left-aligned, the rest right."""
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < left else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    rule = "-" * len(line(headers))
    return [line(headers), rule, *(line(r) for r in rows), rule]


def _layer_table(result: ProfileResult, all_layers: bool) -> list[str]:
    shown: list[LayerProfile] = [r for r in result.layers if all_layers or r.computes]
    rows = [
        [
            r.name,
            r.kind,
            r.detail,
            _bits(r.weight_precision),
            _bits(r.input_precision),
            f"{r.params:,}",
            f"{r.memory_bits:,}",
            si(r.bops),
            si(r.flops),
            _shape(r.output_shape),
        ]
        for r in shown
    ]
    headers = [
        "layer",
        "kind",
        "shape",
        "W bits",
        "A bits",
        "params",
        "memory bits",
        "BOPs",
        "FLOPs",
        "output",
    ]
    lines = _table(headers, rows, left=3)
    hidden = [] if all_layers else [r for r in result.layers if not r.computes]
    if hidden:
        lines.append(
            f"(+ {len(hidden)} modules without MACs -- norms, biases, activations -- holding "
            f"{sum(r.params for r in hidden):,} parameters; --all-layers lists them)"
        )
    return lines


def _stage_table(result: ProfileResult) -> list[str]:
    total_ops = result.ops or 1.0
    rows = [
        [
            s.name,
            s.contents,
            f"{s.params:,}",
            f"{s.binary_params:,}",
            si(s.bops),
            si(s.flops),
            si(s.ops),
            f"{100 * s.ops / total_ops:.1f} %",
            _shape(s.output_shape),
        ]
        for s in result.stages
    ]
    headers = ["stage", "contents", "params", "binary", "BOPs", "FLOPs", "OPs", "of OPs", "output"]
    return _table(headers, rows, left=2)


def _totals(result: ProfileResult) -> list[str]:
    params = result.params or 1
    return [
        f"parameters  {result.params:,}: binary {result.binary_params:,} "
        f"({100 * result.binary_params / params:.1f} %), full precision {result.fp_params:,}"
        f"  (+ {result.buffers:,} buffer values, e.g. BN statistics, not counted)",
        f"MACs        {result.macs:,} = BOPs {result.bops:,} + FLOPs {result.flops:,}",
        f"BOPs        {result.bops:.3e}  (multiply-accumulates with both operands 1-bit)",
        f"FLOPs       {result.flops:.3e}  (all other multiply-accumulates)",
        f"OPs         {result.ops:.3e}  (FLOPs + BOPs / 64)",
        f"memory      {result.memory_bits:,} bits (1 per binary weight, 32 per other parameter)",
        f"size        {result.size_bytes_fp32 / 1e6:.2f} MB in fp32 -> "
        f"{result.size_bytes_packed / 1e6:.2f} MB with 1-bit weights packed "
        f"(compression {result.compression:.2f}x)",
    ]


def format_report(result: ProfileResult, all_layers: bool = False) -> str:
    """Layer table (MAC layers only unless ``all_layers``), stage table, totals and notes."""
    size = "x".join(str(d) for d in result.input_size)
    lines = [
        f"{result.name} at input {size} (per sample; MACs of conv and linear layers)",
        "",
        *_layer_table(result, all_layers),
        "",
        "stages",
        *_stage_table(result),
        "",
        *_totals(result),
    ]
    if result.notes:
        lines += ["", "notes", *(f"- {n}" for n in result.notes)]
    return "\n".join(lines)


def _stage_split(result: ProfileResult) -> list[tuple[float, float, float]]:
    """Per stage, in millions: float x float FLOPs, FLOPs with a low-bit operand (e.g. ternary
    activations against binary weights), and BOPs / 64."""
    split = {s.name: [0.0, 0.0, s.bops / 64 / 1e6] for s in result.stages}
    for row in result.layers:
        full = (row.weight_precision, row.input_precision) == (FULL_PRECISION, FULL_PRECISION)
        split[row.stage][0 if full else 1] += row.flops / 1e6
    return [tuple(split[s.name]) for s in result.stages]


def plot_ops(result: ProfileResult, path: str | Path) -> Path:
    """Horizontal stacked bars per stage: its OPs split into full-precision FLOPs, FLOPs with a
    low-bit operand (shown only when there are any) and BOPs / 64."""
    # A bare Figure renders PNG with Agg and touches no pyplot or global backend state.
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(
            "drawing the OPs chart needs matplotlib: pip install 'bimlp[plot]'") from None

    stages = result.stages
    parts = _stage_split(result)
    series = [
        ("FLOPs: full-precision MACs", "#d62728"),
        ("FLOPs: MACs with a low-bit operand, e.g. ternary activations", "#ff9f40"),
        ("BOPs / 64: 1-bit x 1-bit MACs", "#1f77b4"),
    ]
    fig = Figure(figsize=(9, 1.2 + 0.45 * len(stages)), layout="constrained")
    ax = fig.subplots()
    y = list(range(len(stages)))
    left = [0.0] * len(stages)
    for k, (label, color) in enumerate(series):
        values = [p[k] for p in parts]
        if k == 1 and not any(values):
            continue  # no low-bit FLOPs: keep the legend to what is drawn
        ax.barh(y, values, left=left, color=color, label=label)
        left = [a + b for a, b in zip(left, values, strict=True)]
    total = result.ops or 1.0
    for i, s in enumerate(stages):
        ax.text(left[i], i, f"  {si(s.ops)} ({100 * s.ops / total:.1f} %)", va="center", fontsize=8)
    ax.set_yticks(y, [f"{s.name}\n{s.contents}" for s in stages], fontsize=8)
    ax.invert_yaxis()  # first stage on top
    ax.set_xlabel("OPs per image (millions) = FLOPs + BOPs / 64")
    ax.set_xlim(0, (max(left) if left else 0) * 1.3 or 1.0)
    size = "x".join(str(d) for d in result.input_size[-2:])
    ax.set_title(
        f"{result.name} at {size}: {result.ops:.3e} OPs = {result.flops:.3e} FLOPs "
        f"+ {result.bops:.3e} BOPs / 64",
        fontsize=10,
    )
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    from ..files import atomic_write

    fmt = Path(path).suffix.lstrip(".").lower() or "png"
    return atomic_write(path, lambda f: fig.savefig(f, format=fmt, dpi=120))
