"""Whole batches of an in-memory image set, augmented on the training device.

The per-sample path (a ``DataLoader`` over :class:`~bimlp.data.arrays.ArrayImageDataset`) runs
the crop, flip and normalization in Python for every image: 2,000-2,800 images/s per process on
the GPU machine of docs/RESULTS.md, far below what a small network trains at there.
:class:`DeviceBatchLoader` keeps the images (already resized, in [0, 1]) on the device and does
the same augmentation with a few tensor operations per batch:

* a random shift: zero-pad by ``pad`` (in [0, 1] space, before normalization, as
  ``RandomCrop(padding=pad)`` does) and crop back at an offset uniform in ``[0, 2 * pad]``;
* a horizontal flip with probability ``hflip``;
* normalization by the data set's mean and std.

Offsets and flips come from each sample's seed (:func:`~bimlp.data.loading.sample_seed`, the
seed the per-sample path runs that sample's transforms under), so a batch does not depend on
the device, on the other samples of its batch or on the number of processes. The distribution
is the per-sample path's; the draws are not (torch's generator is not consulted).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Subset

from .arrays import ArrayImageDataset
from .folder import DataError
from .loading import Batch

__all__ = ["DeviceBatchLoader", "shift_flip_params"]


def _unwrap(dataset: Dataset) -> tuple[ArrayImageDataset, list[int] | None]:
    """The array set under (possibly nested) ``Subset`` wrappers, and the index map."""
    index: list[int] | None = None
    while isinstance(dataset, Subset):
        inner = list(dataset.indices)
        index = inner if index is None else [inner[i] for i in index]
        dataset = dataset.dataset
    if not isinstance(dataset, ArrayImageDataset):
        raise DataError(f"data.loader=batches needs an in-memory array set (digits, idx), got "
                        f"{type(dataset).__name__}; use data.loader=samples")
    return dataset, index


def shift_flip_params(seed: int, pad: int, hflip: float) -> tuple[int, int, bool]:
    """(row offset, column offset, flip) of one sample from its 63-bit seed; offsets in
    ``[0, 2 * pad]``. Disjoint bit fields of the well-mixed 63-bit seed: independent draws."""
    span = 2 * pad + 1
    flip = hflip > 0 and ((seed >> 40) & 0x7FFFFF) < hflip * (1 << 23)  # bits 40-62
    return (seed & 0xFFFFF) % span, ((seed >> 20) & 0xFFFFF) % span, bool(flip)


class DeviceBatchLoader:
    """Iterates a batch sampler over an array set, yielding :class:`~bimlp.data.loading.Batch`
    on ``device``.

    Args:
        dataset: an :class:`ArrayImageDataset` (or a ``Subset`` of one).
        batch_sampler: yields lists of ``(sample seed, index)`` (training,
            :class:`~bimlp.data.loading.GlobalBatchSampler`) or lists of indices (evaluation,
            :class:`~bimlp.data.loading.ShardedEvalSampler`: no augmentation).
        device: where the images live and batches are built.
    """

    def __init__(self, dataset: Dataset, batch_sampler: Iterable[list[Any]],
                 device: torch.device | str) -> None:
        base, index = _unwrap(dataset)
        self.device = torch.device(device)
        self.sampler = batch_sampler
        self.images = base.base_images().to(self.device)
        self.labels = base.labels.to(self.device)
        self.index = None if index is None else torch.tensor(index, dtype=torch.long)
        self.pad, self.hflip, self.size = int(base.pad), float(base.hflip), base.size
        c = self.images.shape[1]
        self.mean = torch.tensor(base.mean, device=self.device).view(1, c, 1, 1)
        self.std = torch.tensor(base.std, device=self.device).view(1, c, 1, 1)
        self.arange = torch.arange(self.size, device=self.device)

    def __len__(self) -> int:
        return len(self.sampler)  # type: ignore[arg-type]

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)  # type: ignore[attr-defined]

    def __iter__(self) -> Iterator[Batch]:
        for items in self.sampler:
            if not items:
                continue
            seeded = isinstance(items[0], tuple)
            idx = torch.tensor([i for _, i in items] if seeded else items, dtype=torch.long)
            if self.index is not None:
                idx = self.index[idx]
            idx = idx.to(self.device, non_blocking=True)
            x = self.images[idx]
            if seeded and (self.pad > 0 or self.hflip > 0):
                x = self._augment(x, [s for s, _ in items])
            yield Batch((x - self.mean) / self.std, self.labels[idx], [])

    def _augment(self, x: torch.Tensor, seeds: list[int]) -> torch.Tensor:
        params = [shift_flip_params(s, self.pad, self.hflip) for s in seeds]
        oy, ox, flip = (torch.tensor(v, device=self.device) for v in zip(*params, strict=True))
        p, n = self.pad, self.arange
        padded = F.pad(x, (p, p, p, p)) if p > 0 else x
        rows = oy[:, None] + n  # (B, S)
        cols = torch.where(flip[:, None], ox[:, None] + (self.size - 1 - n), ox[:, None] + n)
        b = torch.arange(len(seeds), device=self.device)[:, None, None]
        # advanced indices around a slice: the result is (B, S, S, C)
        return padded[b, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()
