"""data.loader=batches: whole batches shifted, flipped and normalized on the device."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bimlp.data import DataConfig, DataError, DeviceBatchLoader, build_datasets
from bimlp.data.arrays import ArrayImageDataset
from bimlp.data.batches import shift_flip_params
from bimlp.data.loading import GlobalBatchSampler, ShardedEvalSampler, sample_seed
from bimlp.train.config import ConfigError, config_from_dict


def _images(n=20, size=28, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 256, (n, 1, size, size), dtype=torch.uint8, generator=g),
            torch.arange(n) % 4)


def _reference(ds: ArrayImageDataset, seed: int, index: int) -> torch.Tensor:
    """One sample by an independent route: pad the [0, 1] image with zeros, slice the crop
    with Python indices, flip with torch.flip, normalize."""
    oy, ox, flip = shift_flip_params(seed, ds.pad, ds.hflip)
    x = ds.base_images()[index]
    p, s = ds.pad, ds.size
    crop = F.pad(x, (p, p, p, p))[:, oy:oy + s, ox:ox + s]
    if flip:
        crop = torch.flip(crop, dims=[-1])
    mean = torch.tensor(ds.mean).view(-1, 1, 1)
    std = torch.tensor(ds.std).view(-1, 1, 1)
    return (crop - mean) / std


def test_batches_equal_the_per_sample_formula():
    images, labels = _images()
    ds = ArrayImageDataset(images, labels, [0.3], [0.2], size=32, augment=True, pad=3, hflip=0.5)
    sampler = GlobalBatchSampler(len(ds), 8, seed=5)
    loader = DeviceBatchLoader(ds, sampler, "cpu")
    sampler.set_epoch(2)
    flips, offsets = 0, set()
    for items, batch in zip(sampler, loader, strict=True):
        assert batch.images.shape == (8, 1, 32, 32) and batch.skipped == []
        for row, (seed, index) in enumerate(items):
            assert torch.allclose(batch.images[row], _reference(ds, seed, index), atol=1e-6)
            assert batch.labels[row] == labels[index]
            oy, ox, flip = shift_flip_params(seed, 3, 0.5)
            flips += flip
            offsets.add((oy, ox))
    assert 0 < flips < 16 and len(offsets) > 5  # the draws really vary


def test_draws_cover_the_range_evenly():
    seeds = [sample_seed(0, 0, i) for i in range(20000)]
    oy = torch.tensor([shift_flip_params(s, 2, 0.5)[0] for s in seeds])
    flips = sum(shift_flip_params(s, 2, 0.5)[2] for s in seeds)
    counts = torch.bincount(oy, minlength=5).float() / len(seeds)
    assert counts.min() > 0.18 and counts.max() < 0.22  # uniform on 0..4
    assert 0.48 < flips / len(seeds) < 0.52
    assert not any(shift_flip_params(s, 2, 0.0)[2] for s in seeds[:100])


def test_eval_batches_are_unaugmented_and_subsets_map_indices():
    images, labels = _images()
    ds = ArrayImageDataset(images, labels, [0.5], [0.25], size=32)  # eval: no augment
    sub = torch.utils.data.Subset(ds, [3, 7, 11, 19])
    loader = DeviceBatchLoader(sub, ShardedEvalSampler(len(sub), 3), "cpu")
    got = torch.cat([b.images for b in loader])
    want = torch.stack([ds[i][0] for i in (3, 7, 11, 19)])  # the per-sample path, unaugmented
    assert torch.allclose(got, want, atol=1e-6)
    assert torch.equal(torch.cat([b.labels for b in loader]), labels[[3, 7, 11, 19]])


def test_only_array_sets_and_clear_errors(tmp_path):
    with pytest.raises(DataError, match="data.loader=batches needs an in-memory array set"):
        DeviceBatchLoader(torch.utils.data.TensorDataset(torch.zeros(2)), [[0]], "cpu")
    with pytest.raises(ConfigError, match="data.loader must be samples or batches"):
        config_from_dict({"data": {"loader": "gpu"}})
    with pytest.raises(ConfigError, match="data.loader must be samples for data.dataset=folder"):
        config_from_dict({"data": {"loader": "batches", "dataset": "folder", "root": str(tmp_path)}})


def test_training_with_batches_runs_and_is_reproducible(tmp_path):
    from bimlp.train.engine import train

    def run(out):
        cfg = config_from_dict({
            "model": {"name": "bimlp_xs", "extra": {"depths": [1, 1], "dims": [8, 16]}},
            "data": {"dataset": "digits", "image_size": 16, "batch_size": 32, "loader": "batches",
                     "train_limit": 96},
            "optim": {"epochs": 2},
            "run": {"out_dir": str(tmp_path / out), "seed": 3, "progress": False,
                    "tensorboard": False, "threads": 1},
        })
        return train(cfg, echo=lambda m: None).history

    a, b = run("a"), run("b")
    assert len(a) == 2 and a[-1]["val_images"] == build_datasets(
        DataConfig(dataset="digits", image_size=16)).val.__len__()
    assert [r["train_loss"] for r in a] == [r["train_loss"] for r in b]
    assert [r["val_top1"] for r in a] == [r["val_top1"] for r in b]
