"""Evaluation: scoring a model on a loader, and loading a saved model with its data pipeline.

:func:`evaluate` gives top-1 / top-5 over every image of a loader (the training loop's
validation and ``bimlp eval`` both use it). :func:`load_trained_model` rebuilds a model exactly as it was trained when the file says how
(our ``model.safetensors`` and ``last.pt`` carry the model's build arguments, including the
training step and numerical mode, and the evaluation pipeline of their data); other files --
converted official checkpoints, released Wave-MLP files, timm weights -- go through
:func:`bimlp.create_model` or timm with a strict load.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..data import DataConfig, DataError, ImageFolderDataset, eval_transform
from ..data.arrays import IDX_FILES
from .amp import autocast
from .config import ModelConfig
from .distributed import DistEnv, all_reduce_sum
from .metrics import topk_correct
from .skips import SkipLog
from .student import build_student

__all__ = [
    "evaluate", "load_trained_model", "eval_dataset", "eval_loader", "detect_dataset", "model_classes",
    "data_classes", "check_class_count",
]

_CFG_KEYS = ("input_size", "crop_pct", "interpolation", "mean", "std")


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device,
    env: DistEnv | None = None,
    amp_dtype: torch.dtype | None = None,
    skips: SkipLog | None = None,
    progress: bool = False,
) -> dict[str, float]:
    """Top-1 / top-5 (percent), mean cross-entropy, images scored and images/s.

    Every image of the loader is scored -- batches are never dropped -- and, across processes,
    each exactly once (:class:`~bimlp.data.ShardedEvalSampler`).
    """
    from tqdm.auto import tqdm

    was_training = model.training
    model.eval()
    loss_sum, top1, top5, count = 0.0, 0, 0, 0
    start = time.perf_counter()
    for batch in tqdm(loader, desc="eval", leave=False, disable=not progress, file=sys.stderr):
        if skips is not None:
            skips.note(batch.skipped)
        if batch.images is None:
            continue
        x = batch.images.to(device, non_blocking=True)
        y = batch.labels.to(device, non_blocking=True)
        with autocast(device, amp_dtype):
            logits = model(x)
        logits = logits.float()
        loss_sum += float(nn.functional.cross_entropy(logits, y, reduction="sum"))
        c1, c5 = topk_correct(logits, y)
        top1, top5, count = top1 + c1, top5 + c5, count + len(y)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - start
    if env is not None and env.distributed:
        loss_sum, top1, top5, count, elapsed = all_reduce_sum(
            [loss_sum, top1, top5, count, elapsed], env
        )
        elapsed /= env.world
    model.train(was_training)
    n = max(count, 1)
    return {
        "top1": 100.0 * top1 / n, "top5": 100.0 * top5 / n, "loss": loss_sum / n,
        "images": int(count), "img_s": count / max(elapsed, 1e-9),
    }


def _build(name: str, args: Mapping[str, Any]) -> nn.Module:
    cfg = ModelConfig(name=name, extra=dict(args))
    return build_student(cfg, int(args.get("num_classes", 1000)), int(args.get("in_chans", 3)))


def load_trained_model(
    name: str, checkpoint: str | Path, **overrides: Any
) -> tuple[nn.Module, dict[str, Any] | None]:
    """(model in eval mode, stored evaluation pipeline or ``None``).

    Args:
        name: the model name (checked against the name stored in our files).
        checkpoint: ``model.safetensors`` / ``last.pt`` from ``bimlp train``, a converted or
            official checkpoint, or a weights file of a timm model.
        **overrides: build arguments that win over stored ones (e.g. ``mode="official"``).
    """
    from ..convert import open_checkpoint
    from ..models import create_model, is_model, load_checkpoint

    ck = open_checkpoint(checkpoint)
    stored_name, args = ck.config.get("model_name"), ck.config.get("model_args")
    eval_cfg = ck.config.get("eval_cfg")
    if stored_name is not None and stored_name != name:
        raise ValueError(f"{ck.path} holds a {stored_name!r} model, not {name!r}")
    if isinstance(args, dict):  # written by bimlp train: rebuild it exactly
        model = load_checkpoint(_build(name, {**args, **overrides}), ck)
    elif is_model(name):
        model = create_model(name, checkpoint=ck, **overrides)
    else:
        model = load_checkpoint(_build(name, overrides), ck)
    return model.eval(), eval_cfg if isinstance(eval_cfg, dict) else None


def detect_dataset(root: str | Path) -> str:
    """``idx`` (the four MNIST files) or ``folder`` (an image folder) for a data path."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such data folder")
    names = {p.name.removesuffix(".gz") for p in root.iterdir()}
    if all(f in names for f in IDX_FILES["test"]):
        return "idx"
    return "folder"


def eval_dataset(
    data: str | Path | None,
    dataset: str,
    model: nn.Module,
    eval_cfg: Mapping[str, Any] | None,
    split: str = "val",
) -> tuple[Dataset, str]:
    """The evaluation set and a description.

    ``folder``: ``DATA/<split>/`` if it exists, else ``DATA`` itself, one sub-folder per class
    (sorted names = class indices, as in training); the transform is the stored evaluation
    pipeline, else the model's default config (resize ``size / crop_pct``, center crop).
    ``idx`` / ``digits``: the test split, normalised as in training when that is stored.
    """
    if dataset == "auto":
        if data is None:
            raise DataError("--data is required (or --dataset digits)")
        dataset = detect_dataset(data)
    if dataset in ("idx", "digits"):
        from ..data import build_datasets

        cfg = DataConfig(dataset=dataset, root=None if data is None else str(data), train_limit=1)
        if eval_cfg:
            cfg.image_size = int(eval_cfg["input_size"][-1])
            cfg.mean, cfg.std = list(eval_cfg["mean"]), list(eval_cfg["std"])
        bundle = build_datasets(cfg)
        return bundle.val, bundle.description.split(":")[0] + f": {len(bundle.val)} test images"
    if dataset != "folder":
        raise DataError(f"--dataset must be auto, folder, idx or digits, got {dataset!r}")
    if data is None:
        raise DataError("--data is required for an image folder")
    root = Path(data) / split if (Path(data) / split).is_dir() else Path(data)
    cfg = dict(eval_cfg or {})
    if not cfg:
        pretrained = dict(getattr(model, "pretrained_cfg", None) or {})
        cfg = {k: pretrained[k] for k in _CFG_KEYS if k in pretrained}
    ds = ImageFolderDataset(root, eval_transform(cfg))
    desc = (f"{root}: {len(ds)} images, {len(ds.classes)} classes, "
            f"{cfg['input_size'][-1]}px crop_pct {cfg['crop_pct']} {cfg['interpolation']}")
    return ds, desc


def eval_loader(ds: Dataset, batch_size: int, workers: int, pin: bool = False) -> DataLoader:
    """Every image, in order, the last partial batch included."""
    from ..data import collate_skipping

    return DataLoader(ds, batch_size=batch_size, shuffle=False, drop_last=False,
                      num_workers=workers, collate_fn=collate_skipping, pin_memory=pin)


def model_classes(model: nn.Module) -> int | None:
    """How many classes the model scores: ``num_classes`` (timm's attribute) or the output
    width of its last linear layer."""
    n = getattr(model, "num_classes", None)
    if isinstance(n, int) and n > 0:
        return n
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return linears[-1].out_features if linears else None


def data_classes(ds: Dataset) -> tuple[int, list[str] | None]:
    """(class count, class names if known) of an evaluation set."""
    inner = getattr(ds, "dataset", ds)  # a Subset
    names = getattr(inner, "classes", None)
    if names is not None:
        return len(names), list(names)
    labels = getattr(inner, "labels", None)
    if labels is not None and len(labels):
        return int(labels.max()) + 1, None
    raise DataError("cannot tell how many classes the evaluation data has")


def check_class_count(model: nn.Module, ds: Dataset, allow_mismatch: bool = False) -> str | None:
    """Refuse to score a model on data with another number of classes (a 10-class checkpoint
    on a 2-class folder scores 0 % and means nothing). With ``allow_mismatch`` and fewer data
    classes than model outputs, label ``k`` is scored against output ``k``; the returned line
    says so. More data classes than outputs can never be scored.

    Raises:
        DataError: naming both counts (and the folder's classes).
    """
    n_model = model_classes(model)
    n_data, names = data_classes(ds)
    if n_model is None or n_model == n_data:
        return None
    shown = f" ({', '.join(names[:8])}{', ...' if len(names) > 8 else ''})" if names else ""
    if n_data > n_model:
        raise DataError(f"the data has {n_data} classes{shown} but the model scores only "
                        f"{n_model}: labels {n_model}..{n_data - 1} have no output")
    if not allow_mismatch:
        raise DataError(
            f"the model scores {n_model} classes but the data has {n_data}{shown}; pass "
            f"--allow-class-mismatch to score data label k against model output k"
        )
    return (f"class mismatch allowed: the data's {n_data} classes{shown} are scored as the "
            f"model's outputs 0..{n_data - 1} of {n_model}")
