"""The runtime's logits equal the PyTorch paper-mode model: cosine >= 0.99999 per sample and the
same argmax, for BiMLP-S, odd-sized configurations and the trained model; threads and concurrent
calls do not change a bit."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from deploy_helpers import SMALL, conditioned_model
from runtime_helpers import cosines

import bimlp_runtime
from bimlp.deploy import export


def reference(model, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        ref = model(x)
        ref64 = model.double()(x.double())
        model.float()
    # the instrument first: the reference's own float32 rounding must not change its answer
    assert cosines(ref.numpy(), ref64.numpy()).min() >= 0.999999, "test model is not numerically conditioned"
    return ref.numpy()


def check(model, x: torch.Tensor, tmp_path: Path, threads: int = 1) -> np.ndarray:
    ref = reference(model, x)
    rt = bimlp_runtime.load(export(model, tmp_path / "m.bimlp"), threads=threads)
    out = rt.run(x.numpy())
    assert out.shape == ref.shape and out.dtype == np.float32
    assert cosines(out, ref).min() >= 0.99999, cosines(out, ref)
    assert np.array_equal(out.argmax(1), ref.argmax(1))
    return out


@pytest.mark.parametrize("size", [33, 65])
def test_small_odd_sizes_match(size, tmp_path):
    model = conditioned_model(calib_size=size, **SMALL)
    check(model, torch.randn(3, 3, size, size + 2), tmp_path)


def test_group_norm_and_ablations_with_odd_widths_match(tmp_path):
    model = conditioned_model(calib_size=40, norm="group", uni_shortcut=False, multi_branch=False,
                              depths=(1, 2), dims=(20, 36), mlp_ratios=(4, 3), num_classes=7)
    check(model, torch.randn(2, 3, 40, 37), tmp_path, threads=2)


def test_group_norm_with_all_branches_and_one_channel_matches(tmp_path):
    model = conditioned_model(calib_size=30, norm="group", depths=(2, 1), dims=(12, 24), mlp_ratios=(2, 0.5),
                              num_classes=5, in_chans=1)
    check(model, torch.randn(2, 1, 30, 30), tmp_path, threads=2)


def test_bimlp_s_224_matches(tmp_path):
    model = conditioned_model("bimlp_s", calib_size=64)
    check(model, torch.randn(1, 3, 224, 224), tmp_path, threads=2)


def test_trained_model_keeps_every_prediction(tmp_path):
    """The digits BiMLP of tests/data/trained on the 360 held-out digits. Sample 178 sits on a
    float32 tie (see test_trained.py): every sample below cosine 0.99999 must be reproduced by
    PyTorch itself in channels_last layout, else it is a defect of the runtime."""
    import copy

    from bimlp.data.arrays import ArrayImageDataset, load_digits_split
    from bimlp.train import load_trained_model

    path = Path(__file__).parents[1] / "data" / "trained" / "digits_bimlp_step2.safetensors"
    model, eval_cfg = load_trained_model("bimlp_s", path)
    model.eval()
    _, (images, labels) = load_digits_split(image_size=32)
    test = ArrayImageDataset(images, labels, eval_cfg["mean"], eval_cfg["std"])
    x = torch.stack([test[i][0] for i in range(len(test))])
    with torch.no_grad():
        ref = model(x).numpy()
    out = bimlp_runtime.load(export(model, tmp_path / "digits.bimlp"), threads=2).run(x.numpy())
    assert np.array_equal(out.argmax(1), ref.argmax(1))
    acc = (out.argmax(1) == labels.numpy()).mean()
    assert acc > 0.95
    cos = cosines(out, ref)
    bad = np.flatnonzero(cos < 0.99999).tolist()
    assert len(bad) <= 1, f"samples {bad} differ"
    cl = copy.deepcopy(model).to(memory_format=torch.channels_last)
    for i in bad:
        with torch.no_grad():
            other = cl(x[i:i + 1].contiguous(memory_format=torch.channels_last)).numpy()
        assert cosines(out[i:i + 1], other)[0] >= 0.99999, f"sample {i}: not a tie"


def test_thread_counts_give_identical_logits(small_artifact):
    path, _ = small_artifact
    x = np.random.default_rng(1).standard_normal((3, 3, 47, 33)).astype(np.float32)
    outs = [bimlp_runtime.load(path, threads=t).run(x) for t in (1, 2, 3, 4)]
    for out in outs[1:]:
        assert np.array_equal(out, outs[0])


@pytest.mark.parametrize("size", [33, 257])
def test_batches_split_into_whole_images_give_the_logits_of_one_image_at_a_time(small_artifact, size):
    """Batches of two or more go to the threads as whole images (sub-batches sized to the cache:
    many 33 px images per call, two of 257 px so that the sub-batch and its remainder differ), the
    images left over after an even split run on the whole team: every bit as a batch of one."""
    path, _ = small_artifact
    x = np.random.default_rng(4).standard_normal((7, 3, size, size)).astype(np.float32)
    one = bimlp_runtime.load(path, threads=1)
    expected = np.concatenate([one.run(x[i:i + 1]) for i in range(len(x))])
    for threads in (1, 2, 3):
        model = bimlp_runtime.load(path, threads=threads)
        for batch in (2, 5, 7):
            out = model.run(x[:batch])
            assert np.array_equal(out, expected[:batch]), (threads, batch)


def test_four_threads_sharing_one_model_get_correct_logits(small_artifact):
    path, _ = small_artifact
    model = bimlp_runtime.load(path, threads=2)
    rng = np.random.default_rng(2)
    inputs = [rng.standard_normal((b, 3, s, s)).astype(np.float32) for b, s in
              [(1, 33), (2, 40), (3, 33), (1, 57), (2, 33), (1, 40)]]
    expected = [model.run(x) for x in inputs]
    errors: list[str] = []

    def worker(k: int) -> None:
        for rep in range(10):
            i = (k + rep) % len(inputs)
            out = model.run(inputs[i])
            if not np.array_equal(out, expected[i]):
                errors.append(f"thread {k} call {rep} input {i}: max diff {np.abs(out - expected[i]).max()}")

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:5]


def test_input_views_are_not_copied_and_outputs_can_be_reused(small_artifact):
    path, _ = small_artifact
    model = bimlp_runtime.load(path, threads=1)
    x = np.random.default_rng(3).standard_normal((2, 3, 33, 33)).astype(np.float32)
    out = np.empty((2, 10), dtype=np.float32)
    assert model.run(x, out=out) is out
    assert np.array_equal(model.run(np.asfortranarray(x)), out)  # non-contiguous input: copied, same result
    assert np.array_equal(model.run(x.astype(np.float64)), out)


def test_profile_names_every_step_and_sums_to_the_run(small_artifact):
    path, _ = small_artifact
    model = bimlp_runtime.load(path, threads=1)
    x = np.zeros((1, 3, 33, 33), dtype=np.float32)
    out, times = model.profile(x, repeats=2)
    assert list(times) == model.step_names and model.step_names[0] == "stem" and model.step_names[-1] == "head"
    assert "network.0.0.mlp" in times and "network.1.proj" in times
    assert all(t >= 0 for t in times.values()) and sum(times.values()) > 0
    assert np.array_equal(out, model.run(x))


@pytest.mark.parametrize("stride", [1, 2])
def test_other_stem_strides_match(stride, tmp_path):
    model = conditioned_model(calib_size=20, stem_stride=stride, depths=(1, 1), dims=(16, 32), num_classes=6)
    check(model, torch.randn(2, 3, 20, 17), tmp_path, threads=2)


@pytest.mark.parametrize("norm", ["batch", "group"])
def test_wavemlp_downsampling_matches_the_simulated_model(norm, tmp_path):
    """downsample="wavemlp" (the ablation: fp conv 3x3 stride 2 pad 1 + norm, no pooling), odd
    map sizes: the packed model equals its simulated float model."""
    from bimlp.deploy import simulate

    model = conditioned_model(calib_size=33, downsample="wavemlp", norm=norm, depths=(1, 1, 1),
                              dims=(16, 32, 40), num_classes=10)
    x = torch.randn(2, 3, 33, 31)
    out = check(model, x, tmp_path, threads=2)
    with torch.no_grad():
        sim = simulate(model)(x).numpy()
    assert cosines(out, sim).min() >= 0.99999
