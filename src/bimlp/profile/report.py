"""Reading a :class:`ProfileResult`: a text report and a chart of where the OPs go."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .counting import FULL_PRECISION

if TYPE_CHECKING:
    from .summary import LayerProfile, ProfileResult

__all__ = ["format_report", "plot_ops", "si"]

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
