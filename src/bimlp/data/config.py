"""The ``data`` section of a training recipe: where images come from and how they are augmented.

It lives with the data sets (:func:`bimlp.data.build_datasets` reads it); the recipe
(:class:`bimlp.train.config.TrainConfig`) holds one and checks its values.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["DataConfig"]


@dataclass
class DataConfig:
    """Where images come from and how they are augmented."""

    dataset: str = "digits"  # digits (built in, offline) | folder (ImageNet layout) | idx (MNIST)
    root: str | None = None  # folder: has train/ and val/; idx: has the four idx files
    image_size: int | None = None  # training crop; None: the dataset's (folder: model cfg's)
    batch_size: int = 64  # per process and micro-batch; global = this x processes x accum
    eval_batch_size: int | None = None  # None: 2 x batch_size
    workers: int = 0  # DataLoader worker processes (0 = load in the training process)
    # samples: a DataLoader over per-sample transforms (every data set); batches: digits / idx
    # only, the images held on the training device and whole batches shifted, flipped and
    # normalized there (DeviceBatchLoader): the same augmentation, another random stream
    loader: str = "samples"
    augment: bool = True  # folder: RandomResizedCrop + flip; digits/idx: random shifts
    crop_scale: list[float] = field(default_factory=lambda: [0.08, 1.0])  # RandomResizedCrop
    hflip: float | None = None  # flip probability; None: 0.5 for folder, 0 for digits/idx
    pad: int = 2  # digits/idx: random shift of up to this many pixels
    mean: list[float] | None = None  # None: the dataset's (folder: the model's default cfg)
    std: list[float] | None = None
    interpolation: str | None = None  # eval resize; None: model default cfg
    crop_pct: float | None = None  # eval center crop fraction; None: model default cfg
    holdout: float = 0.2  # digits: fraction held out as the test split (fixed, stratified)
    # use only N training / held-out images: a seeded, class-stratified subset (each class keeps
    # its share), not the first N, which on data stored sorted by class drops whole classes
    train_limit: int | None = None
    val_limit: int | None = None
    subset_seed: int = 0  # the draw of those subsets
