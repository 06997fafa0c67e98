"""Seeded, class-stratified subsets: ``data.train_limit`` / ``data.val_limit`` on data stored
sorted by class (several packaged sets are) must not silently drop classes.

:func:`stratified_indices` keeps each class's share of the full set (largest-remainder rounding,
so the subset has exactly ``n`` items and every class with at least ``len / n`` items is present),
draws the items of each class at random under ``seed``, and returns them in index order.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import Dataset, Subset

__all__ = ["dataset_labels", "stratified_indices", "stratified_subset"]


def dataset_labels(ds: Dataset) -> list[int]:
    """Every item's label without decoding an image (array sets hold ``labels``, image folders
    ``samples`` of ``(path, label)``)."""
    labels = getattr(ds, "labels", None)
    if labels is not None:
        return [int(v) for v in labels]
    samples = getattr(ds, "samples", None)
    if samples is not None:
        return [int(label) for _, label in samples]
    raise TypeError(f"{type(ds).__name__} exposes neither labels nor samples")


def stratified_indices(labels: Sequence[int], n: int, seed: int = 0) -> list[int]:
    """``n`` indices into ``labels`` with each class's share kept (sorted, seeded)."""
    if n >= len(labels):
        return list(range(len(labels)))
    by_class: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        by_class.setdefault(int(label), []).append(i)
    classes = sorted(by_class)
    exact = [n * len(by_class[c]) / len(labels) for c in classes]
    take = [int(q) for q in exact]
    # largest remainders first, ties to the smaller class index: exactly n in all
    order = sorted(range(len(classes)), key=lambda k: (-(exact[k] - take[k]), k))
    for k in order[: n - sum(take)]:
        take[k] += 1
    g = torch.Generator().manual_seed(seed)
    chosen: list[int] = []
    for c, k in zip(classes, take, strict=True):
        members = by_class[c]
        perm = torch.randperm(len(members), generator=g)[:k].tolist()
        chosen += [members[j] for j in perm]
    return sorted(chosen)


def stratified_subset(ds: Dataset, n: int, seed: int = 0) -> Dataset:
    """``ds`` itself if it has at most ``n`` items, else a :class:`Subset` of
    :func:`stratified_indices`."""
    if n >= len(ds):  # type: ignore[arg-type]
        return ds
    return Subset(ds, stratified_indices(dataset_labels(ds), n, seed))
