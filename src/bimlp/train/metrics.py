"""Per-epoch metrics: accuracy counting, a CSV file, TensorBoard (if installed), PNG curves."""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..files import atomic_write, atomic_write_text

__all__ = ["topk_correct", "write_csv", "plot_curves", "TensorBoardLogger"]


def topk_correct(
    logits: torch.Tensor, labels: torch.Tensor, ks: Sequence[int] = (1, 5)
) -> list[int]:
    """How many rows have their label among the top-k logits, for each k (k capped at classes)."""
    kmax = min(max(ks), logits.shape[-1])
    top = logits.topk(kmax, dim=-1).indices  # (B, kmax)
    hit = top.eq(labels[:, None])
    return [int(hit[:, : min(k, kmax)].any(dim=1).sum()) for k in ks]


def write_csv(history: list[dict[str, Any]], path: str | Path) -> Path:
    """All epochs so far, one row each (rewritten whole, so a resumed run has no duplicates)."""
    path = Path(path)
    columns: list[str] = []
    for row in history:
        columns += [k for k in row if k not in columns]
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=columns)
    writer.writeheader()
    for row in history:
        writer.writerow({k: _fmt(v) for k, v in row.items()})
    return atomic_write_text(path, text.getvalue())


def _fmt(v: Any) -> Any:
    return f"{v:.6g}" if isinstance(v, float) else v


def plot_curves(history: list[dict[str, Any]], path: str | Path) -> Path | None:
    """Loss and accuracy per epoch as a PNG (matplotlib's Agg canvas; no global backend).

    matplotlib is optional (``pip install "bimlp[plot]"``): without it no chart is drawn, the
    log says so, and ``metrics.csv`` holds the same numbers.
    """
    if not history:
        return None
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        logging.getLogger(__name__).info(
            "no %s: matplotlib is not installed (pip install 'bimlp[plot]')", Path(path).name)
        return None

    epochs = [row["epoch"] for row in history]
    fig = Figure(figsize=(10, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax_loss, ax_acc = fig.subplots(1, 2)
    for key, label in (("train_loss", "train"), ("val_loss", "test (CE)")):
        if all(key in r for r in history):
            ax_loss.plot(epochs, [r[key] for r in history], marker="o", label=label)
    for key, label in (("train_top1", "train top-1"), ("val_top1", "test top-1"),
                       ("val_top5", "test top-5"), ("ema_top1", "EMA test top-1")):
        if all(key in r for r in history):
            ax_acc.plot(epochs, [r[key] for r in history], marker="o", label=label)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return atomic_write(path, lambda f: fig.savefig(f, format="png"))


class TensorBoardLogger:
    """Scalars to TensorBoard when ``tensorboard`` is installed; otherwise does nothing."""

    def __init__(self, log_dir: str | Path, enabled: bool = True) -> None:
        self.writer = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional
                return
            self.writer = SummaryWriter(str(log_dir))

    def log(self, row: dict[str, Any]) -> None:
        if self.writer is None:
            return
        for k, v in row.items():
            if k != "epoch" and isinstance(v, (int, float)):
                self.writer.add_scalar(k, v, row["epoch"])
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
