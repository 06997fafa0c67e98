"""Samplers and collation that make a run independent of how many processes load it.

Training order is one permutation per epoch, drawn from ``(seed, epoch)``. Global batch ``k`` is
``perm[k*G : (k+1)*G]`` with ``G = micro_batch x world x accum``; it is cut into ``world x accum``
micro-batches, of which process ``rank`` takes ``rank*accum ... rank*accum + accum - 1``. So one
process accumulating over ``accum = W`` micro-batches sees exactly the images that ``W``
DistributedDataParallel processes see in one step. Every sample also carries its own seed
(from seed, epoch and index), under which its random augmentation runs: results do not depend
on worker count, process count or how far a resumed run got.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import torch
from torch.utils.data import Dataset, Sampler, default_collate

from .folder import SkippedSample

__all__ = [
    "GlobalBatchSampler",
    "ShardedEvalSampler",
    "SeededDataset",
    "Batch",
    "collate_skipping",
    "sample_seed",
]

_MASK = (1 << 63) - 1


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A well-mixed 63-bit seed for one sample of one epoch (splitmix64 finaliser)."""
    z = (seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9 + index * 0x94D049BB133111EB)
    z &= (1 << 64) - 1
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & ((1 << 64) - 1)
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & ((1 << 64) - 1)
    return (z ^ (z >> 31)) & _MASK


class GlobalBatchSampler(Sampler[list[tuple[int, int]]]):
    """This process's training micro-batches, as lists of ``(sample seed, index)``.

    The last incomplete global batch of an epoch is dropped (every optimizer step sees the
    same number of images on every process).
    """

    def __init__(
        self,
        size: int,
        micro_batch: int,
        *,
        world: int = 1,
        rank: int = 0,
        accum: int = 1,
        seed: int = 0,
        shuffle: bool = True,
    ) -> None:
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} outside world of {world}")
        self.size, self.micro_batch = size, micro_batch
        self.world, self.rank, self.accum = world, rank, accum
        self.seed, self.shuffle, self.epoch, self.skip = seed, shuffle, 0, 0
        self.global_batch = micro_batch * world * accum
        self.steps = size // self.global_batch
        if self.steps == 0:
            raise ValueError(
                f"{size} training images cannot fill one global batch of {self.global_batch} "
                f"({micro_batch} per process x {world} processes x {accum} accumulation steps)"
            )

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Draw epoch ``epoch``'s order; the next pass leaves out this process's first ``skip``
        micro-batches (a run resumed inside the epoch: the others are exactly those it had not
        seen). ``len()`` stays the whole epoch's count."""
        if not 0 <= skip <= len(self):
            raise ValueError(f"skip {skip} outside an epoch of {len(self)} micro-batches")
        self.epoch, self.skip = epoch, skip

    def __len__(self) -> int:
        return self.steps * self.accum

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        if self.shuffle:
            g = torch.Generator().manual_seed(sample_seed(self.seed, self.epoch, -1))
            order = torch.randperm(self.size, generator=g).tolist()
        else:
            order = list(range(self.size))
        b = self.micro_batch
        for step in range(self.steps):
            start = step * self.global_batch
            for a in range(self.accum):
                if step * self.accum + a < self.skip:
                    continue
                m = self.rank * self.accum + a
                chunk = order[start + m * b: start + (m + 1) * b]
                yield [(sample_seed(self.seed, self.epoch, i), i) for i in chunk]


class ShardedEvalSampler(Sampler[list[int]]):
    """Evaluation batches of indices ``rank, rank + world, ...``: every image exactly once
    over all processes, the last batch kept even when partial, nothing padded."""

    def __init__(self, size: int, batch_size: int, world: int = 1, rank: int = 0) -> None:
        self.indices = list(range(rank, size, world))
        self.batch_size = batch_size

    def __len__(self) -> int:
        return -(-len(self.indices) // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        for i in range(0, len(self.indices), self.batch_size):
            yield self.indices[i: i + self.batch_size]


class SeededDataset(Dataset):
    """Wraps a data set so that item ``(seed, index)`` runs its random transforms under
    ``torch.manual_seed(seed)``, leaving the caller's generator untouched."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, item: tuple[int, int]) -> Any:
        seed, index = item
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.dataset[index]


class Batch(NamedTuple):
    images: torch.Tensor | None  # (B, C, H, W); None when every sample was skipped
    labels: torch.Tensor | None  # (B,)
    skipped: list[SkippedSample]


def collate_skipping(samples: list[Any]) -> Batch:
    """``default_collate`` of the decodable samples; undecodable ones listed in ``skipped``."""
    good = [s for s in samples if not isinstance(s, SkippedSample)]
    skipped = [s for s in samples if isinstance(s, SkippedSample)]
    if not good:
        return Batch(None, None, skipped)
    images, labels = default_collate(good)
    return Batch(images, labels, skipped)
