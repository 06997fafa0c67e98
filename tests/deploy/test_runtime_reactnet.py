"""ReActNet-A on the runtime: the binary 3x3 conv (stride 1 and 2, padding 1) of every instruction
set is exact against the zero-padded integer convolution for either pad value the artifact may
record, and packed ReActNets (RSign shifts, RPReLU, duplicated 1x1 convs, average-pool shortcuts,
odd map sizes) equal their simulated float models: cosine >= 0.99999 per sample, same argmax,
the same bits on every instruction set."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from deploy_helpers import conditioned_reactnet, well_conditioned_inputs
from runtime_helpers import cosines, edit_config, edit_header, load_error, set_version, signs

import bimlp_runtime
from bimlp.deploy import export, simulate
from bimlp_runtime import testing as T

ISAS = T.supported_isas()


def conv3x3_reference(x: np.ndarray, w: np.ndarray, stride: int) -> np.ndarray:
    """sign(x) (B, H, W, C) conv sign(w) (N, C, 3, 3), zero padding 1, as int64 (B * Ho * Wo, N)."""
    b, h, wd, c = x.shape
    pad = np.zeros((b, h + 2, wd + 2, c), dtype=np.int64)
    pad[:, 1:-1, 1:-1] = signs(x)
    ws = signs(w).astype(np.int64)
    ho, wo = (h - 1) // stride + 1, (wd - 1) // stride + 1
    out = np.zeros((b, ho, wo, w.shape[0]), dtype=np.int64)
    for ky in range(3):
        for kx in range(3):
            patch = pad[:, ky:ky + stride * (ho - 1) + 1:stride, kx:kx + stride * (wo - 1) + 1:stride]
            out += patch @ ws[:, :, ky, kx].T
    return out.reshape(-1, w.shape[0])


@pytest.mark.parametrize("shape,n", [((1, 1, 1, 1), 1), ((2, 5, 7, 3), 5), ((1, 8, 9, 63), 17), ((1, 6, 5, 65), 33),
                                     ((2, 4, 4, 130), 16), ((1, 3, 11, 64), 70)])
@pytest.mark.parametrize("stride", [1, 2])
def test_binary_3x3_conv_is_exact_for_both_pad_values(shape, n, stride):
    rng = np.random.default_rng(sum(shape) * 31 + n + stride)
    x = rng.standard_normal(shape).astype(np.float32)
    x.reshape(-1)[:: 7] = 0.0  # sign(0) = +1, as the model's quantizer
    w = rng.standard_normal((n, shape[3], 3, 3)).astype(np.float32)
    ref = conv3x3_reference(x, w, stride).astype(np.float32)
    for isa in ISAS:
        for pad in (1, -1):
            assert np.array_equal(T.bconv3x3(isa, x, w, stride, pad), ref), (isa, pad)


def check(model, x: torch.Tensor, path) -> np.ndarray:
    with torch.no_grad():
        sim = simulate(model)(x).numpy()
        ref = model(x).numpy()
        ref64 = model.double()(x.double()).numpy()
        model.float()
    assert cosines(ref, ref64).min() >= 0.999999, "test model is not numerically conditioned"
    out = bimlp_runtime.load(export(model, path), threads=2).run(x.numpy())
    assert cosines(out, sim).min() >= 0.99999, cosines(out, sim)
    assert cosines(out, ref).min() >= 0.99999
    assert np.array_equal(out.argmax(1), sim.argmax(1))
    return out


def test_small_reactnet_matches_its_simulated_model_on_every_isa(tmp_path, monkeypatch):
    """Doubling and same-width blocks, strides 1 and 2 (two in a row), odd sizes down to 1 px."""
    model = conditioned_reactnet(num_classes=10, stem_dim=8, dims=(16, 16, 32, 64, 64), strides=(1, 2, 2, 2, 1))
    x = torch.randn(3, 3, 13, 11)
    outs = {}
    for isa in ISAS:
        monkeypatch.setenv("BIMLP_ISA", isa)
        outs[isa] = check(model, x, tmp_path / "r.bimlp")
    for isa, out in outs.items():
        assert np.array_equal(out, outs["portable"]), isa


def test_pad_value_minus_one_gives_the_same_logits(tmp_path):
    model = conditioned_reactnet(num_classes=7, stem_dim=8, dims=(16, 32, 32), strides=(1, 2, 1))
    x = np.random.default_rng(0).standard_normal((2, 3, 9, 10)).astype(np.float32)
    path = export(model, tmp_path / "p.bimlp")
    plus = bimlp_runtime.load(path, threads=1).run(x)
    minus = bimlp_runtime.load(edit_config(path, tmp_path / "m.bimlp", pad_value=-1), threads=1).run(x)
    assert np.array_equal(plus, minus)


def test_reactnet_a_xs_matches_at_32px(tmp_path):
    # 470,000 sign decisions per image: some image's closest one can sit within float32 rounding
    # of 0 (seen on a Xeon: 5.6e-8, one flipped bit, cosine 0.99996), so the images are chosen
    # among candidates for a margin that rounding cannot cross
    model = conditioned_reactnet(num_classes=10, calib_size=32)
    check(model, well_conditioned_inputs(model, torch.randn(8, 3, 32, 32)), tmp_path / "xs.bimlp")


@pytest.mark.slow
def test_reactnet_a_224_matches(tmp_path):
    model = conditioned_reactnet("reactnet_a", calib_size=64)
    check(model, torch.randn(1, 3, 224, 224), tmp_path / "a.bimlp")


def test_reactnet_configuration_is_checked_before_allocation(tmp_path):
    model = conditioned_reactnet(num_classes=5, stem_dim=8, dims=(16, 16), strides=(2, 1))
    path = export(model, tmp_path / "r.bimlp")
    cases = [
        ({"pad_value": 0}, "'pad_value' must be -1 or 1"),
        ({"dims": [24, 24]}, "goes 8 -> 24 channels; a block keeps or doubles them"),
        ({"strides": [3, 1]}, "'strides' must be an integer in [1, 2]"),
        ({"strides": [1]}, "'dims' and 'strides' differ in length"),
        ({"dims": [16] * 300, "strides": [1] * 300}, "1 to 256 blocks"),
        ({"mode": "official"}, "a reactnet artifact is 'paper'"),
        ({"arch": "resnet"}, "'arch' must be 'bimlp' or 'reactnet'"),
        ({"dims": [16, 32]}, "tensor 'blocks.1.binary_pw.bits' has shape"),
        ({"stem_dim": 4096, "dims": [4096, 4096]}, "has shape"),
    ]
    for i, (change, match) in enumerate(cases):
        assert match in load_error(edit_config(path, tmp_path / f"c{i}.bimlp", **change)), change
    assert "'numerics' must be 'paper'" in load_error(edit_header(path, tmp_path / "n.bimlp", numerics="official"))
    assert "needs a version 2 artifact" in load_error(set_version(path, tmp_path / "v.bimlp", "1"))


def test_export_command_writes_a_reactnet_artifact(tmp_path, capsys):
    from bimlp.cli import main

    out = tmp_path / "xs.bimlp"
    assert main(["export", "--model", "reactnet_a_xs", "-o", str(out)]) == 0
    assert "paper numerics" in capsys.readouterr().out
    rt = bimlp_runtime.load(out, threads=1)
    assert rt.step_names[:3] == ["stem", "blocks.0.binary_3x3", "blocks.0.binary_pw"]
    assert rt.run(np.zeros((1, 3, 32, 32), np.float32)).shape == (1, 1000)
