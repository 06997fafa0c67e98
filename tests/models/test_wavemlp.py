"""Full-precision Wave-MLP (the teachers): sizes, released-checkpoint loading, timm integration."""

from __future__ import annotations

import argparse

import pytest
import timm
import torch
from torch import nn

import bimlp
from bimlp.checkpoint import CheckpointError, save_weights
from bimlp.models.wavemlp import WaveMLP, WaveMLPConfig, infer_wavemlp_config

TINY = dict(depths=(1, 2, 1, 1), dims=(16, 32, 48, 64), num_classes=10)  # the fixtures' shape


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def expected_params(depths, dims, ratios, classes, in_chans=3, downsample_norm=True) -> int:
    """Parameters of a Wave-MLP written out layer by layer (norms are weight + bias)."""
    norm = 2 if downsample_norm else 0
    total = dims[0] * in_chans * 7 * 7 + dims[0] + norm * dims[0]  # stem conv 7x7 + bias, norm
    for i, (depth, c, r) in enumerate(zip(depths, dims, ratios, strict=True)):
        hidden, q = int(c * r), c // 4
        patm = (
            3 * c * c  # fc_h, fc_w, fc_c (no bias)
            + 2 * (c * 2 * 7)  # tfc_h, tfc_w: grouped 2C -> C, 2 inputs x 7 taps per output
            + 2 * (c * c + c + 2 * c)  # theta_h/w: conv 1x1 + bias, BatchNorm
            + (c * q + q) + (q * 3 * c + 3 * c)  # reweight Mlp(C, C/4, 3C) with biases
            + c * c + c  # proj + bias
        )
        mlp = c * hidden + hidden + hidden * c + c
        total += depth * (2 * 2 * c + patm + mlp)  # norm1, norm2, PATM, channel MLP
        if i + 1 < len(dims):
            total += c * dims[i + 1] * 3 * 3 + dims[i + 1] + norm * dims[i + 1]  # conv 3x3/2
    return total + 2 * dims[-1] + dims[-1] * classes + classes  # final norm, head


# sizes ------------------------------------------------------------------------------------------
def test_parameter_counts_of_the_released_models():
    t, s = bimlp.create_model("wavemlp_t"), bimlp.create_model("wavemlp_s")
    dims = (64, 128, 320, 512)
    assert n_params(t) == 17_193_160 == expected_params((2, 2, 4, 2), dims, (4,) * 4, 1000)
    assert n_params(s) == 30_708_040 == expected_params((2, 3, 10, 3), dims, (4,) * 4, 1000)


def test_wavemlp_m_layout():
    m = bimlp.create_model("wavemlp_m")
    expected = expected_params(
        (3, 4, 18, 3), (64, 128, 320, 512), (8, 8, 4, 4), 1000, downsample_norm=False
    )
    assert n_params(m) == expected and round(expected / 1e6) == 44  # the paper's 44 M
    assert isinstance(m.norm, nn.GroupNorm) and isinstance(m.network[0][0].norm1, nn.GroupNorm)
    assert isinstance(m.patch_embed.norm, nn.Identity)
    assert all(isinstance(m.network[i].norm, nn.Identity) for i in (1, 3, 5))
    assert m.network[0][0].mlp.fc1.out_channels == 8 * 64
    assert m.network[4][0].mlp.fc1.out_channels == 4 * 320


def test_norm_kinds_of_t_and_s():
    t, s = bimlp.create_model("wavemlp_t"), bimlp.create_model("wavemlp_s")
    assert isinstance(t.patch_embed.norm, nn.BatchNorm2d)
    assert isinstance(t.network[1].norm, nn.BatchNorm2d)
    assert isinstance(s.patch_embed.norm, nn.GroupNorm) and s.patch_embed.norm.num_groups == 1
    # the phase estimator keeps BatchNorm whatever the outer norm
    assert isinstance(s.network[0][0].attn.theta_h_conv[1], nn.BatchNorm2d)


# the generic model contract -----------------------------------------------------------------------
@pytest.mark.parametrize("norm", ["batch", "group"])
@pytest.mark.parametrize("size", [64, 45])
def test_forward_shapes_and_every_parameter_gets_a_gradient(norm, size):
    model = bimlp.create_model("wavemlp_t", **TINY, norm=norm)
    x = torch.randn(2, 3, size, size)
    feats = model.forward_features(x)
    side = -(-(size + 4 - 7 + 1) // 4)  # stem 7x7/4 pad 2, then three 3x3/2 pad 1 halvings
    for _ in range(3):
        side = -(-side // 2)
    assert feats.shape == (2, 64, side, side)
    assert model.forward_head(feats, pre_logits=True).shape == (2, 64)
    out = model(x)
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    out.square().mean().backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert not no_grad


def test_config_matches_the_real_shapes():
    cfg = WaveMLPConfig(
        depths=(1, 2, 1), dims=(8, 12, 20), mlp_ratios=(2, 3, 4), num_classes=5, in_chans=1
    )
    model = WaveMLP(cfg)
    stages = [model.network[i] for i in (0, 2, 4)]
    assert [len(s) for s in stages] == [1, 2, 1]
    assert [s[0].attn.fc_c.out_channels for s in stages] == [8, 12, 20]
    assert [s[0].mlp.fc1.out_channels for s in stages] == [16, 36, 80]
    assert model.patch_embed.proj.in_channels == 1 and model.head.out_features == 5
    assert model.config.to_dict()["dims"] == [8, 12, 20]
    assert model(torch.randn(1, 1, 32, 32)).shape == (1, 5)


def test_classifier_methods():
    model = bimlp.create_model("wavemlp_t", **TINY)
    assert model.get_classifier() is model.head
    model.reset_classifier(3)
    assert model.head.out_features == 3 and model.config.num_classes == 3
    model.reset_classifier(0)
    assert model.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 64)


def test_timm_integration():
    assert {"wavemlp_t", "wavemlp_s", "wavemlp_m"} <= set(bimlp.list_models())
    model = timm.create_model("wavemlp_s", **TINY)
    assert isinstance(model, WaveMLP) and model.config.norm == "group"
    cfg = model.pretrained_cfg
    assert (cfg["crop_pct"], cfg["interpolation"], cfg["first_conv"]) == (
        0.9, "bicubic", "patch_embed.proj"
    )
    with pytest.raises(ValueError, match="checkpoint="):
        bimlp.create_model("wavemlp_t", pretrained=True)


def test_drop_path_grows_over_the_blocks():
    model = bimlp.create_model("wavemlp_t", **TINY, drop_path_rate=0.3)
    blocks = [b for i in (0, 2, 4, 6) for b in model.network[i]]
    rates = [getattr(b.drop_path, "drop_prob", 0.0) for b in blocks]
    assert rates == pytest.approx([0.3 * i / 4 for i in range(5)])


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(depths=(1, 1), dims=(8,)), "one entry per stage"),
        (dict(dims=(64, 128, 2, 512)), "at least 4"),
        (dict(depths=(2, 0, 4, 2)), "at least one block"),
        (dict(norm="layer"), "norm"),
        (dict(mode="depthwise"), "mode"),
    ],
)
def test_config_validation(bad, message):
    with pytest.raises(ValueError, match=message):
        WaveMLPConfig(**bad)


# the released checkpoints (fixtures made by the released model code) ------------------------------
def _fixture(data_dir, kind):
    io = torch.load(data_dir / "wavemlp" / f"wave_tiny_{kind}_io.pt", weights_only=True)
    return data_dir / "wavemlp" / f"wave_tiny_{kind}.pth.tar", io["input"], io["logits"]


def _both_loaders(file) -> tuple[WaveMLP, WaveMLP]:
    return bimlp.load_wavemlp(file), bimlp.create_model("wavemlp_t", checkpoint=file).eval()


def _rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    return ((out - ref).norm() / ref.norm()).item()


@pytest.mark.parametrize("kind, norm", [("bn", "batch"), ("gn", "group")])
def test_load_wavemlp_reproduces_the_fixture_logits(data_dir, kind, norm):
    path, x, ref = _fixture(data_dir, kind)
    model = bimlp.load_wavemlp(path)
    assert not model.training
    cfg = model.config
    assert (cfg.depths, cfg.dims, cfg.mlp_ratios) == ((1, 2, 1, 1), (16, 32, 48, 64), (4.0,) * 4)
    assert (cfg.num_classes, cfg.in_chans, cfg.norm, cfg.downsample_norm) == (10, 3, norm, True)
    with torch.no_grad():
        assert _rel_err(model(x), ref) < 1e-4


@pytest.mark.parametrize("name", ["wavemlp_t", "wavemlp_s"])
@pytest.mark.parametrize("kind", ["bn", "gn"])
def test_create_model_with_checkpoint_reproduces_the_fixture_logits(data_dir, name, kind):
    path, x, ref = _fixture(data_dir, kind)
    model = bimlp.create_model(name, checkpoint=path).eval()  # the file's architecture wins
    with torch.no_grad():
        assert _rel_err(model(x), ref) < 1e-4


def test_release_layout_with_namespace_optimizer_and_ema_loads(data_dir, tmp_path):
    path, x, ref = _fixture(data_dir, "bn")
    state = torch.load(path, weights_only=True)["state_dict"]
    trained = bimlp.load_wavemlp(path)  # a stand-in for the last training step
    opt = torch.optim.AdamW(trained.parameters(), lr=1e-3)
    for p in trained.parameters():
        p.grad = torch.randn_like(p)
    opt.step()  # optimizer state (step, exp_avg, exp_avg_sq) and weights the EMA slot differ by
    release = {
        "epoch": 299, "arch": "WaveMLP_T", "version": 2, "metric": 80.9,
        "state_dict": {f"module.{k}": v for k, v in state.items()},  # saved from DDP
        "optimizer": opt.state_dict(),
        "state_dict_ema": trained.state_dict(),
        "args": argparse.Namespace(model="WaveMLP_T", lr=1e-3, model_ema=True, input_size=None),
    }
    file = tmp_path / "WaveMLP_T.pth.tar"
    torch.save(release, file)
    for model in _both_loaders(file):
        with torch.no_grad():
            assert _rel_err(model(x), ref) < 1e-4  # the state_dict, not the EMA copy


def _bare_fixture_state(data_dir) -> dict[str, torch.Tensor]:
    file = data_dir / "wavemlp" / "wave_tiny_bn.pth.tar"
    return torch.load(file, weights_only=True)["state_dict"]


def _broken(data_dir, tmp_path, edit) -> str:
    state = _bare_fixture_state(data_dir)
    edit(state)
    torch.save(state, tmp_path / "broken.pth")
    return str(tmp_path / "broken.pth")


def test_missing_keys_are_named(data_dir, tmp_path):
    path = _broken(data_dir, tmp_path, lambda s: s.pop("network.2.1.attn.proj.bias"))
    expected = r"broken\.pth: .*missing: network\.2\.1\.attn\.proj\.bias"
    for load in (bimlp.load_wavemlp, lambda p: bimlp.create_model("wavemlp_t", checkpoint=p)):
        with pytest.raises(CheckpointError, match=expected):
            load(path)


def test_wrong_shapes_are_named(data_dir, tmp_path):
    path = _broken(data_dir, tmp_path, lambda s: s.update({
        "network.0.0.attn.tfc_h.weight": torch.zeros(16, 2, 1, 5),
    }))
    expected = r"shape: network\.0\.0\.attn\.tfc_h\.weight: checkpoint \(16, 2, 1, 5\)"
    with pytest.raises(CheckpointError, match=expected):
        bimlp.load_wavemlp(path)


def test_unexpected_keys_are_named(data_dir, tmp_path):
    extra = {"network.0.0.attn.gate.weight": torch.ones(3)}
    path = _broken(data_dir, tmp_path, lambda s: s.update(extra))
    with pytest.raises(CheckpointError, match=r"unexpected: network\.0\.0\.attn\.gate\.weight"):
        bimlp.load_wavemlp(path)


def test_a_missing_block_is_reported_not_skipped(data_dir, tmp_path):
    def drop_first_block_of_stage_1(state):
        for k in [k for k in state if k.startswith("network.2.0.")]:
            del state[k]

    path = _broken(data_dir, tmp_path, drop_first_block_of_stage_1)
    with pytest.raises(CheckpointError, match=r"missing: network\.2\.0\."):
        bimlp.load_wavemlp(path)


def test_not_a_wavemlp_checkpoint(tmp_path):
    tiny_bimlp = bimlp.create_model("bimlp_s", depths=(1,) * 4, dims=(8,) * 4, num_classes=3)
    torch.save({"state_dict": tiny_bimlp.state_dict()}, tmp_path / "bimlp.pth")
    with pytest.raises(CheckpointError, match=r"bimlp\.pth: not a Wave-MLP state dict"):
        bimlp.load_wavemlp(tmp_path / "bimlp.pth")


def test_depthwise_theta_is_refused_clearly(data_dir, tmp_path):
    def to_depthwise(state):
        for k in [k for k in state if ".theta_" in k and k.endswith("conv.0.bias")]:
            del state[k]
        for k in [k for k in state if ".theta_" in k and k.endswith("conv.0.weight")]:
            state[k] = torch.zeros(state[k].shape[0], 1, 3, 3)

    with pytest.raises(CheckpointError, match="depthwise"):
        bimlp.load_wavemlp(_broken(data_dir, tmp_path, to_depthwise))


# configuration inference ------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["wavemlp_t", "wavemlp_s", "wavemlp_m"])
def test_inference_recovers_the_released_configurations(name):
    model = bimlp.create_model(name)
    arch = infer_wavemlp_config(model.state_dict())
    cfg = model.config.to_dict()
    assert arch == {k: cfg[k] for k in arch}
    assert set(arch) == {
        "depths", "dims", "mlp_ratios", "num_classes", "in_chans", "norm", "downsample_norm"
    }


def test_inference_of_odd_hidden_widths(tmp_path):
    # 15 / 44 * 44 is 14.999...: the inferred ratio must still give int(44 * ratio) == 15
    model = WaveMLP(depths=(1, 1), dims=(8, 44), mlp_ratios=(2.5, 0.341), num_classes=0, in_chans=2)
    assert model.network[2][0].mlp.fc1.out_channels == 15
    torch.save(model.state_dict(), tmp_path / "odd.pth")
    loaded = bimlp.load_wavemlp(tmp_path / "odd.pth")
    assert loaded.network[2][0].mlp.fc1.out_channels == 15
    assert loaded.num_classes == 0 and loaded.config.in_chans == 2
    x = torch.randn(1, 2, 24, 24)
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))


def test_our_safetensors_round_trip(data_dir, tmp_path):
    path, x, ref = _fixture(data_dir, "gn")
    file = tmp_path / "teacher.safetensors"
    save_weights(bimlp.load_wavemlp(path), file)
    for model in _both_loaders(file):
        assert model.config.norm == "group"
        with torch.no_grad():
            assert _rel_err(model(x), ref) < 1e-4
