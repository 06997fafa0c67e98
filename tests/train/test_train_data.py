"""Data: the built-in digits, idx files, image folders (corrupt files, bad layouts), samplers."""

from __future__ import annotations

import gzip
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bimlp.data import (
    DataError,
    GlobalBatchSampler,
    ImageFolderDataset,
    SeededDataset,
    ShardedEvalSampler,
    SkippedSample,
    UndecodableImageWarning,
    build_datasets,
    collate_skipping,
    eval_transform,
    read_idx,
)
from bimlp.data.arrays import load_idx_split
from bimlp.train.config import DataConfig
from bimlp.train.skips import SkipLog
from bimlp.train.student import model_default_cfg

FASHION = Path("/usr/share/datasets/fashion-mnist")


def test_builtin_digits_are_real_images_with_a_fixed_held_out_split():
    bundle = build_datasets(DataConfig(dataset="digits"))
    assert (len(bundle.train), len(bundle.val)) == (1437, 360)  # 1,797 scans, 20 % held out
    assert (bundle.num_classes, bundle.in_chans) == (10, 1)
    x, y = bundle.val[0]
    assert x.shape == (1, 32, 32) and x.dtype == torch.float32
    labels = torch.tensor([bundle.val[i][1] for i in range(len(bundle.val))])
    assert torch.bincount(labels, minlength=10).min() >= 35  # stratified: ~36 per class
    again = build_datasets(DataConfig(dataset="digits"))
    torch.testing.assert_close(again.val[5][0], bundle.val[5][0])  # no randomness in eval
    # normalised with the training split's statistics
    plain = build_datasets(DataConfig(dataset="digits", augment=False)).train
    xs = torch.stack([plain[i][0] for i in range(len(plain))])
    assert abs(float(xs.mean())) < 1e-4 and float(xs.std()) == pytest.approx(1.0, abs=1e-3)


def _write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    codes = {np.dtype(np.uint8): 0x08}
    header = bytes([0, 0, codes[array.dtype], array.ndim])
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    raw = header + array.tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)


@pytest.mark.parametrize("compress", [False, True])
def test_idx_folder_round_trip(tmp_path, compress):
    rng = np.random.default_rng(0)
    suffix = ".gz" if compress else ""
    for split, n in (("train", 12), ("t10k", 5)):
        _write_idx(tmp_path / f"{split}-images-idx3-ubyte{suffix}",
                   rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), compress)
        _write_idx(tmp_path / f"{split}-labels-idx1-ubyte{suffix}",
                   (np.arange(n) % 3).astype(np.uint8), compress)
    images = read_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}")
    assert images.shape == (5, 28, 28) and images.dtype == np.uint8
    bundle = build_datasets(DataConfig(dataset="idx", root=str(tmp_path), image_size=32))
    assert (len(bundle.train), len(bundle.val), bundle.num_classes) == (12, 5, 3)
    assert bundle.val[0][0].shape == (1, 32, 32)


def test_idx_errors_are_clear(tmp_path):
    (tmp_path / "x").write_bytes(b"\x00\x00\x08\x01" + (10).to_bytes(4, "big") + b"abc")
    with pytest.raises(DataError, match=r"shape \(10,\).*has 3"):
        read_idx(tmp_path / "x")
    with pytest.raises(DataError, match="missing train-images-idx3-ubyte"):
        load_idx_split(tmp_path, "train")


@pytest.mark.skipif(not FASHION.is_dir(), reason="Debian's dataset-fashion-mnist not installed")
def test_reads_fashion_mnist():
    x, y = load_idx_split(FASHION, "test")
    assert x.shape == (10000, 1, 28, 28) and y.shape == (10000,)
    assert torch.bincount(y).tolist() == [1000] * 10


def _image(path: Path, color=(200, 30, 30), size=(40, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)


def _folder(root: Path, per_class: int = 3) -> None:
    for split in ("train", "val"):
        for c, color in (("cat", (200, 0, 0)), ("dog", (0, 200, 0))):
            for i in range(per_class):
                _image(root / split / c / f"{i}.png", color)


def test_corrupt_image_is_skipped_with_a_warning_and_counted(tmp_path):
    _folder(tmp_path)
    bad = tmp_path / "train" / "dog" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    truncated = tmp_path / "train" / "cat" / "cut.png"
    _image(truncated, size=(64, 64))
    truncated.write_bytes(truncated.read_bytes()[:60])
    bundle = build_datasets(DataConfig(dataset="folder", root=str(tmp_path), image_size=24))
    assert len(bundle.train) == 8 and bundle.num_classes == 2
    batch = collate_skipping([bundle.train[i] for i in range(len(bundle.train))])
    assert batch.images.shape == (6, 3, 24, 24) and batch.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert sorted(Path(s.path).name for s in batch.skipped) == ["broken.jpg", "cut.png"]
    log = SkipLog()
    with pytest.warns(UndecodableImageWarning) as caught:
        log.note(batch.skipped)
    messages = sorted(str(w.message) for w in caught)  # cat/cut.png, dog/broken.jpg
    assert "cut.png (OSError: image file is truncated)" in messages[0]
    assert "broken.jpg" in messages[1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        log.note(batch.skipped)  # each file warns once
    assert len(log.paths) == 2


def test_empty_class_folder_is_an_error_naming_it(tmp_path):
    _folder(tmp_path)
    (tmp_path / "train" / "bird").mkdir()
    (tmp_path / "train" / "bird" / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match=r"hold no image.*train/bird"):
        build_datasets(DataConfig(dataset="folder", root=str(tmp_path)))


def test_mislaid_folders_are_errors(tmp_path):
    with pytest.raises(DataError, match="no such data folder"):
        build_datasets(DataConfig(dataset="folder", root=str(tmp_path / "nope")))
    _image(tmp_path / "train" / "a.png")
    with pytest.raises(DataError, match="missing val"):
        build_datasets(DataConfig(dataset="folder", root=str(tmp_path)))
    (tmp_path / "val").mkdir()
    with pytest.raises(DataError, match=r"holds 1 images directly.*one sub-folder per class"):
        build_datasets(DataConfig(dataset="folder", root=str(tmp_path)))
    with pytest.raises(DataError, match="needs data.root"):
        build_datasets(DataConfig(dataset="folder"))


def test_val_classes_must_match_train(tmp_path):
    _folder(tmp_path)
    _image(tmp_path / "val" / "fox" / "0.png")
    with pytest.raises(DataError, match="unknown: fox"):
        build_datasets(DataConfig(dataset="folder", root=str(tmp_path)))


def test_eval_pipeline_comes_from_the_model_default_cfg(tmp_path):
    _folder(tmp_path)
    bundle = build_datasets(DataConfig(dataset="folder", root=str(tmp_path)),
                            model_default_cfg("bimlp_s"))
    assert bundle.eval_cfg["input_size"] == [3, 224, 224] and bundle.eval_cfg["crop_pct"] == 0.875
    names = [type(t).__name__ for t in bundle.val.transform.transforms]
    assert names[:2] == ["Resize", "CenterCrop"]
    assert bundle.val.transform.transforms[0].size == 256  # 224 / 0.875
    assert bundle.val[0][0].shape == (3, 224, 224)
    train_names = [type(t).__name__ for t in bundle.train.transform.transforms]
    assert train_names[:2] == ["RandomResizedCrop", "RandomHorizontalFlip"]
    assert bundle.train.transform.transforms[0].scale == (0.08, 1.0)
    assert eval_transform(bundle.eval_cfg).transforms[1].size == (224, 224)


@pytest.mark.parametrize("size", [100, 103])
def test_one_process_accumulating_sees_what_two_processes_see(size):
    def steps(world, accum):
        out = []
        for rank in range(world):
            s = GlobalBatchSampler(size, 8, world=world, rank=rank, accum=accum, seed=3)
            s.set_epoch(2)
            out.append(list(s))
        return out

    (single,) = steps(1, 2)
    rank0, rank1 = steps(2, 1)
    assert len(single) == 2 * len(rank0) == 2 * (size // 16)
    assert single[0::2] == rank0 and single[1::2] == rank1
    seen = [i for batch in single for _, i in batch]
    assert len(seen) == len(set(seen)) == 16 * (size // 16)
    s = GlobalBatchSampler(size, 8, seed=3)
    s.set_epoch(3)
    assert [i for b in s for _, i in b] != [i for b in single for _, i in b]  # new epoch, new order


@pytest.mark.parametrize("world,rank,accum", [(1, 0, 1), (1, 0, 2), (2, 1, 2)])
def test_a_skipped_start_leaves_out_exactly_the_batches_already_seen(world, rank, accum):
    """set_epoch(epoch, skip=k): the epoch's own order, less this process's first k micro-batches;
    the next set_epoch without skip gives whole epochs again."""
    s = GlobalBatchSampler(200, 8, world=world, rank=rank, accum=accum, seed=3)
    s.set_epoch(4)
    whole = list(s)
    for k in (0, accum, 3 * accum, len(whole)):
        s.set_epoch(4, skip=k)
        assert list(s) == whole[k:] and len(s) == len(whole)
    s.set_epoch(4)
    assert list(s) == whole
    with pytest.raises(ValueError, match=f"skip {len(whole) + 1} outside an epoch of"):
        s.set_epoch(4, skip=len(whole) + 1)


def test_sampler_needs_one_full_global_batch():
    with pytest.raises(ValueError, match="cannot fill one global batch of 64"):
        GlobalBatchSampler(50, 16, world=2, accum=2)


def test_eval_shards_score_every_image_once():
    shards = [list(ShardedEvalSampler(11, 4, world=3, rank=r)) for r in range(3)]
    everything = sorted(i for shard in shards for batch in shard for i in batch)
    assert everything == list(range(11))
    assert list(ShardedEvalSampler(10, 4)) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_augmentation_depends_only_on_the_sample_seed():
    ds = SeededDataset(build_datasets(DataConfig(dataset="digits")).train)
    torch.manual_seed(0)
    a = ds[(1234, 7)][0]
    torch.manual_seed(99)
    state = torch.get_rng_state()
    b = ds[(1234, 7)][0]
    assert torch.equal(torch.get_rng_state(), state)  # the caller's stream is untouched
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, ds[(4321, 7)][0])


def test_collate_of_only_skipped_samples():
    batch = collate_skipping([SkippedSample("a.jpg", "bad")])
    assert batch.images is None and [s.path for s in batch.skipped] == ["a.jpg"]


def test_image_folder_dataset_directly(tmp_path):
    _folder(tmp_path, per_class=2)
    ds = ImageFolderDataset(tmp_path / "val")
    assert ds.classes == ["cat", "dog"] and len(ds) == 4
    img, label = ds[3]
    assert img.size == (40, 30) and label == 1


def test_limits_take_a_seeded_class_stratified_subset_of_sorted_data(tmp_path):
    # stored sorted by class, as several packaged sets are: the first 60 would be class 0 only
    from bimlp.data import dataset_labels, stratified_indices

    labels = np.repeat(np.arange(5), [100, 100, 100, 100, 40]).astype(np.uint8)
    for split in ("train", "t10k"):
        _write_idx(tmp_path / f"{split}-images-idx3-ubyte",
                   np.zeros((len(labels), 8, 8), dtype=np.uint8), False)
        _write_idx(tmp_path / f"{split}-labels-idx1-ubyte", labels, False)
    cfg = DataConfig(dataset="idx", root=str(tmp_path), train_limit=60, val_limit=11)
    bundle = build_datasets(cfg)
    counts = np.bincount([labels[i] for i in bundle.train.indices], minlength=5)
    # 60 x (100, 100, 100, 100, 40) / 440 = 13.64 x 4, 5.45: floors 57, the three largest
    # remainders (ties to the smaller class) get one more
    assert counts.tolist() == [14, 14, 14, 13, 5]
    assert np.bincount([labels[i] for i in bundle.val.indices], minlength=5).min() >= 1
    assert build_datasets(cfg).train.indices == bundle.train.indices  # seeded
    other = build_datasets(DataConfig(dataset="idx", root=str(tmp_path), train_limit=60,
                                      subset_seed=1))
    assert other.train.indices != bundle.train.indices
    # exactly n, sorted, no repeats; n >= len is everything
    idx = stratified_indices([0, 1, 2] * 7, 10, seed=3)
    assert len(idx) == len(set(idx)) == 10 and idx == sorted(idx)
    assert stratified_indices([0, 1], 5) == [0, 1]
    assert dataset_labels(bundle.val.dataset)[:3] == [0, 0, 0]


def test_resize_is_done_once_and_equals_the_per_image_resize():
    """Array sets at another size resize every image once at construction; each sample must equal
    resizing that image alone (bilinear, antialiased), the crop and flip still drawn per sample."""
    from bimlp.data.arrays import ArrayImageDataset, resize_image

    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (9, 1, 28, 28), dtype=torch.uint8, generator=g)
    labels = torch.arange(9) % 3
    ds = ArrayImageDataset(images, labels, [0.0], [1.0], size=32)
    assert ds.resized is not None and ds.resized.shape == (9, 1, 32, 32)
    for i in range(9):
        x, y = ds[i]
        assert torch.equal(x, resize_image(images[i], 32)) and y == int(labels[i])
    same = ArrayImageDataset(images, labels, [0.0], [1.0], size=28)
    assert same.resized is None and torch.equal(same[3][0], images[3].float() / 255)
