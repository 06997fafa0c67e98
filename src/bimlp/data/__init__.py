"""Data sets for training and evaluation.

``build_datasets(cfg, model_cfg)`` turns a :class:`~bimlp.data.config.DataConfig` into train and
evaluation data sets: the built-in digits (offline, shipped in this package), MNIST-format idx
folders, or ImageNet-style image folders (through torchvision / timm transforms, with the eval
resize and center crop taken from the model's default configuration).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch.utils.data import Dataset

from .arrays import ArrayImageDataset, dataset_stats, load_digits_split, load_idx_split, read_idx
from .batches import DeviceBatchLoader
from .config import DataConfig
from .folder import (
    DataError,
    ImageFolderDataset,
    SkippedSample,
    UndecodableImageWarning,
    scan_image_folder,
    split_folders,
)
from .loading import (
    Batch,
    GlobalBatchSampler,
    SeededDataset,
    ShardedEvalSampler,
    collate_skipping,
)
from .subset import dataset_labels, stratified_indices, stratified_subset

__all__ = [
    "DATASETS",
    "Batch",
    "DataBundle",
    "DataConfig",
    "DataError",
    "DeviceBatchLoader",
    "GlobalBatchSampler",
    "ImageFolderDataset",
    "SeededDataset",
    "ShardedEvalSampler",
    "SkippedSample",
    "UndecodableImageWarning",
    "build_datasets",
    "collate_skipping",
    "dataset_labels",
    "eval_transform",
    "folder_train_transform",
    "read_idx",
    "scan_image_folder",
    "stratified_indices",
    "stratified_subset",
]

DATASETS = ("digits", "idx", "folder")
_DEFAULT_MODEL_CFG = {
    "input_size": (3, 224, 224), "crop_pct": 0.875, "interpolation": "bilinear",
    "mean": IMAGENET_DEFAULT_MEAN, "std": IMAGENET_DEFAULT_STD,
}


@dataclass
class DataBundle:
    """Train and evaluation sets plus what the model and the eval command need to know."""

    train: Dataset
    val: Dataset
    num_classes: int
    in_chans: int
    # input_size, crop_pct, interpolation, mean, std of the evaluation pipeline
    eval_cfg: dict[str, Any] = field(default_factory=dict)
    description: str = ""


def folder_train_transform(size: int, scale, hflip: float, interpolation: str, mean, std):
    """RandomResizedCrop + horizontal flip + normalisation (torchvision)."""
    from torchvision import transforms as T

    steps = [T.RandomResizedCrop(size, scale=tuple(scale), interpolation=_interp(interpolation))]
    if hflip > 0:
        steps.append(T.RandomHorizontalFlip(hflip))
    steps += [T.ToTensor(), T.Normalize(list(mean), list(std))]
    return T.Compose(steps)


def eval_transform(eval_cfg: Mapping[str, Any]):
    """Resize to ``size / crop_pct`` + center crop + normalisation, as timm builds it."""
    from timm.data import create_transform

    return create_transform(
        input_size=tuple(eval_cfg["input_size"]), is_training=False,
        crop_pct=eval_cfg["crop_pct"], interpolation=eval_cfg["interpolation"],
        mean=tuple(eval_cfg["mean"]), std=tuple(eval_cfg["std"]),
    )


def _interp(name: str):
    from torchvision.transforms import InterpolationMode

    return InterpolationMode(name)


def build_datasets(
    cfg: DataConfig, model_cfg: Mapping[str, Any] | None = None, with_train: bool = True
) -> DataBundle:
    """The data sets a recipe asks for.

    Args:
        cfg: the ``data`` section of a recipe.
        model_cfg: the model's default (pretrained) config: ``input_size``, ``crop_pct``,
            ``interpolation``, ``mean``, ``std``; used by image folders where ``cfg`` leaves
            them unset.
        with_train: build the training split too (the eval command does not need it).
    """
    if cfg.dataset not in DATASETS:
        raise DataError(f"data.dataset must be one of {DATASETS}, got {cfg.dataset!r}")
    if cfg.dataset == "folder":
        bundle = _folder(cfg, {**_DEFAULT_MODEL_CFG, **dict(model_cfg or {})}, with_train)
    else:
        bundle = _arrays(cfg)
    for name, limit in (("train", cfg.train_limit), ("val", cfg.val_limit)):
        if limit is not None:  # seeded and class-stratified, not the first N (sorted sets)
            setattr(bundle, name, stratified_subset(getattr(bundle, name), limit,
                                                    cfg.subset_seed))
    return bundle


def _arrays(cfg: DataConfig) -> DataBundle:
    if cfg.dataset == "digits":
        (xt, yt), (xv, yv) = load_digits_split(cfg.image_size or 32, cfg.holdout)
        where = "built-in digits (UCI optdigits, 8x8 scans upscaled)"
    else:
        if not cfg.root:
            raise DataError("data.dataset=idx needs data.root: a folder with the four idx files")
        (xt, yt), (xv, yv) = load_idx_split(cfg.root, "train"), load_idx_split(cfg.root, "test")
        where = f"idx files in {cfg.root}"
    size = cfg.image_size or int(xt.shape[-1])
    stats = dataset_stats(xt)
    mean, std = list(cfg.mean or stats[0]), list(cfg.std or stats[1])
    hflip = 0.0 if cfg.hflip is None else cfg.hflip
    train = ArrayImageDataset(xt, yt, mean, std, size, cfg.augment, cfg.pad, hflip)
    val = ArrayImageDataset(xv, yv, mean, std, size)
    num_classes = int(max(yt.max(), yv.max())) + 1
    eval_cfg = {"input_size": [int(xt.shape[1]), size, size], "crop_pct": 1.0,
                "interpolation": "bilinear", "mean": mean, "std": std}
    desc = f"{where}: {len(train)} train / {len(val)} test images, {num_classes} classes, {size}px"
    return DataBundle(train, val, num_classes, int(xt.shape[1]), eval_cfg, desc)


def _folder(cfg: DataConfig, model_cfg: Mapping[str, Any], with_train: bool) -> DataBundle:
    if not cfg.root:
        raise DataError("data.dataset=folder needs data.root: a folder holding train/ and val/")
    train_dir, val_dir = split_folders(cfg.root)
    size = cfg.image_size or int(model_cfg["input_size"][-1])
    eval_cfg = {
        "input_size": [3, size, size],
        "crop_pct": cfg.crop_pct or model_cfg["crop_pct"],
        "interpolation": cfg.interpolation or model_cfg["interpolation"],
        "mean": list(cfg.mean or model_cfg["mean"]),
        "std": list(cfg.std or model_cfg["std"]),
    }
    classes = sorted(p.name for p in Path(train_dir).iterdir() if p.is_dir())
    if with_train:
        hflip = 0.5 if cfg.hflip is None else cfg.hflip
        if cfg.augment:
            tf = folder_train_transform(size, cfg.crop_scale, hflip, eval_cfg["interpolation"],
                                        eval_cfg["mean"], eval_cfg["std"])
        else:
            tf = eval_transform(eval_cfg)
        train = ImageFolderDataset(train_dir, tf)
        classes = train.classes
    val = ImageFolderDataset(val_dir, eval_transform(eval_cfg), classes=classes)
    if not with_train:
        train = val
    desc = (f"image folder {cfg.root}: {len(train)} train / {len(val)} val images, "
            f"{len(classes)} classes, {size}px")
    return DataBundle(train, val, len(classes), 3, eval_cfg, desc)
