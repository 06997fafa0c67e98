"""Small in-memory image sets: the built-in digits and MNIST-format idx files.

* **digits** (built in, offline): the UCI optical handwritten digits as scikit-learn bundles
  them, 1,797 real 8x8 scans of 10 classes, shipped inside this package as ``digits.npz``
  (48 kB; source and license: ``DIGITS_LICENSE.md`` beside it). Upscaled once to
  ``image_size`` (32 by default) and split into a fixed, stratified train / test pair.
* **idx**: a folder with the four standard files of MNIST or Fashion-MNIST
  (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-...``; gzip or not).
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset
from torchvision import transforms as T

from .folder import DataError

__all__ = ["ArrayImageDataset", "load_digits_split", "read_idx", "load_idx_split", "IDX_FILES"]

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class ArrayImageDataset(Dataset):
    """Images held as one uint8 tensor ``(N, C, H, W)``; returns ``(normalized float, label)``.

    Training augmentation is a random shift (zero-pad by ``pad``, random crop back) and an
    optional horizontal flip; it draws from torch's global generator, which the training loader
    seeds per sample.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        mean: Sequence[float],
        std: Sequence[float],
        size: int | None = None,
        augment: bool = False,
        pad: int = 2,
        hflip: float = 0.0,
    ) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(
                f"images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}"
            )
        self.images, self.labels = images, labels.long()
        self.size = size or images.shape[-1]
        # kept for DeviceBatchLoader, which applies the same augmentation to whole batches
        self.mean, self.std = list(mean), list(std)
        self.pad, self.hflip = (pad if augment else 0), (hflip if augment else 0.0)
        # Resizing is deterministic, so it is done once here rather than per sample and epoch
        # (at 28 -> 32 px it was most of the loading time); the crop and flip stay per sample.
        self.resized = None
        if images.shape[-2:] != (self.size, self.size):
            self.resized = _resize_all(images, self.size)
        steps: list = []
        if augment and pad > 0:
            steps.append(T.RandomCrop(self.size, padding=pad))
        if augment and hflip > 0:
            steps.append(T.RandomHorizontalFlip(hflip))
        steps.append(T.Normalize(list(mean), list(std)))
        self.transform = T.Compose(steps)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if self.resized is not None:
            x = self.resized[index]
        else:
            x = self.images[index].float().div_(255.0)  # (C, H, W) in [0, 1]
        return self.transform(x), int(self.labels[index])

    def base_images(self) -> torch.Tensor:
        """Every image as float in [0, 1] at the output size, before augmentation and
        normalization: ``(N, C, size, size)``."""
        return self.resized if self.resized is not None else self.images.float().div(255.0)


def resize_image(image: torch.Tensor, size: int) -> torch.Tensor:
    """One uint8 ``(C, H, W)`` image as float in [0, 1], bilinear (antialiased) to ``size``."""
    x = image.float().div_(255.0)
    return F.interpolate(x[None], size=(size, size), mode="bilinear", align_corners=False,
                         antialias=True)[0]


def _resize_all(images: torch.Tensor, size: int, chunk: int = 4096) -> torch.Tensor:
    out = torch.empty((len(images), images.shape[1], size, size), dtype=torch.float32)
    for i in range(0, len(images), chunk):
        x = images[i:i + chunk].float().div_(255.0)
        out[i:i + chunk] = F.interpolate(x, size=(size, size), mode="bilinear",
                                         align_corners=False, antialias=True)
    return out


def dataset_stats(images: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 images, in [0, 1] units."""
    x = images.float().div(255.0)
    return x.mean(dim=(0, 2, 3)).tolist(), x.std(dim=(0, 2, 3)).tolist()


DIGITS_FILE = "digits.npz"
DEFAULT_HOLDOUT = 0.2  # the stored split (scikit-learn's stratified train_test_split, seed 0)


def load_digits_split(
    image_size: int = 32, holdout: float = DEFAULT_HOLDOUT
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """((train images, labels), (test images, labels)) of the built-in digits.

    Images are uint8 ``(N, 1, image_size, image_size)``, bilinearly upscaled from the 8x8
    originals (values 0..16). The split is stratified and fixed, so the test set never changes
    with the training seed: for the default ``holdout`` it is the one stored with the data (the
    360 test digits every number in this project was measured on), for any other a per-class
    shuffle with seed 0.
    """
    if not 0.0 < holdout < 1.0:
        raise ValueError(f"data.holdout must lie in (0, 1), got {holdout}")
    with resources.files(__package__).joinpath(DIGITS_FILE).open("rb") as f:
        stored = dict(np.load(f, allow_pickle=False))
    images, labels = stored["images"], stored["labels"].astype(np.int64)  # (N, 8, 8), (N,)
    if holdout == DEFAULT_HOLDOUT:
        idx_train, idx_test = stored["train_index"], stored["test_index"]
    else:
        idx_train, idx_test = _stratified_split(labels, holdout)
    x = torch.from_numpy(images).float().div_(16.0)[:, None]  # (N, 1, 8, 8) in [0, 1]
    x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
    x = x.mul_(255.0).round_().clamp_(0, 255).to(torch.uint8)
    y = torch.from_numpy(labels)
    idx_train, idx_test = (torch.from_numpy(i.astype(np.int64)) for i in (idx_train, idx_test))
    return (x[idx_train], y[idx_train]), (x[idx_test], y[idx_test])


def _stratified_split(labels: np.ndarray, holdout: float) -> tuple[np.ndarray, np.ndarray]:
    """A fraction ``holdout`` of every class (at least one image) into the test part, seed 0."""
    rng = np.random.default_rng(0)
    train, test = [], []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        n_test = max(1, round(holdout * len(members)))
        test.append(members[:n_test])
        train.append(members[n_test:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def read_idx(path: str | Path) -> np.ndarray:
    """One idx file (gzip or not) as a numpy array; the format of MNIST and Fashion-MNIST.

    Header: two zero bytes, a type code (0x08 = uint8, ...), the number of dimensions, then
    one big-endian int32 per dimension; the data follow.
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: not an idx file (header {raw[:4].hex()})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(
            f"{path}: header says shape {shape} ({expected} bytes of data), file has "
            f"{len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def _find_idx(root: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx")):
        if (root / name).is_file():
            return root / name
    raise DataError(
        f"{root}: missing {stem}[.gz]; an idx folder holds "
        + ", ".join(f for pair in IDX_FILES.values() for f in pair)
    )


def load_idx_split(root: str | Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(uint8 images (N, 1, H, W), labels (N,)) of the ``train`` or ``test`` split."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such idx folder")
    images_file, labels_file = (_find_idx(root, s) for s in IDX_FILES[split])
    images, labels = read_idx(images_file), read_idx(labels_file)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(
            f"{root}: {split} images {images.shape} and labels {labels.shape} do not match"
        )
    x = torch.from_numpy(np.array(images, dtype=np.uint8))[:, None]  # a writable copy
    return x, torch.from_numpy(labels.astype(np.int64))  # astype copies
