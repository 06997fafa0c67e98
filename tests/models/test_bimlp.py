"""BiMLP models: sizes, numerics per mode, ablation switches and timm integration."""

from __future__ import annotations

import pytest
import timm
import torch
from timm.layers import DropPath

import bimlp
from bimlp.layers import BinaryConv2d

TINY = dict(depths=(1, 2, 1, 1), dims=(16, 32, 48, 64), num_classes=10)


def count(model: torch.nn.Module) -> tuple[int, int]:
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    stats = sum(b.numel() for n, b in model.named_buffers() if n.endswith(("running_mean", "running_var")))
    return params, params + stats


def test_parameter_counts_match_the_paper_and_the_release():
    s_params, s_official = count(bimlp.create_model("bimlp_s"))
    m_params, m_official = count(bimlp.create_model("bimlp_m"))
    assert abs(s_params / 1e6 - 15.84) <= 0.01 and abs(m_params / 1e6 - 29.69) <= 0.01
    assert (s_official, m_official) == (15_975_196, 29_922_988)


def _binary_conv_inputs(model, x):
    seen = []
    hooks = [
        m.register_forward_hook(lambda mod, inp, out: seen.append((mod, inp[0])))
        for m in model.modules() if isinstance(m, BinaryConv2d)
    ]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return seen


def test_paper_mode_is_truly_binary():
    model = bimlp.create_model("bimlp_s", mode="paper", **TINY).eval()
    seen = _binary_conv_inputs(model, torch.randn(2, 3, 64, 64))
    n_binary = sum(isinstance(m, BinaryConv2d) for m in model.modules())
    assert len(seen) == n_binary > 0
    for conv, x in seen:
        xq = conv.input_quantizer(x)
        assert set(xq.unique().tolist()) <= {-1.0, 1.0}
        wq = conv.quantized_weight()
        mags = wq.abs().flatten(1)
        # one magnitude per output channel, and signs only
        assert torch.equal(mags, mags[:, :1].expand_as(mags)), conv
        assert conv.input_precision == 1 and conv.weight_precision == 1


def test_official_mode_activations_are_ternary():
    model = bimlp.create_model("bimlp_s", mode="official", **TINY).eval()
    values = set()
    for conv, x in _binary_conv_inputs(model, torch.randn(2, 3, 64, 64) * 3):
        values |= set(conv.input_quantizer(x).unique().tolist())
        assert conv.input_precision == 2
    assert values <= {-1.0, 0.0, 1.0} and 0.0 in values


@pytest.mark.parametrize("name", bimlp.list_models())
def test_every_registered_model(name):
    """Output shape, no NaN, every parameter receives a gradient, config matches shapes."""
    model = bimlp.create_model(name, num_classes=7)
    model.train()
    x = torch.randn(2, 3, 64, 64)
    out = model(x)
    assert out.shape == (2, 7) and torch.isfinite(out).all()
    out.square().mean().backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not no_grad, f"parameters without gradient: {no_grad[:10]}"
    cfg = model.pretrained_cfg
    # ImageNet models declare 224, the small-image variants (stem stride 1-2) 32
    size = 32 if name.endswith("_xs") else 224
    assert cfg["input_size"] == (3, size, size) and cfg["classifier"] == "head"
    assert model.get_classifier().out_features == 7
    assert model.forward_features(x).shape[1] == model.num_features
    first = dict(model.named_modules())[cfg["first_conv"]]
    assert first.in_channels == 3


@pytest.mark.parametrize("switches", [
    dict(uni_shortcut=False),
    dict(multi_branch=False),
    dict(downsample="wavemlp"),
    dict(uni_shortcut=False, multi_branch=False, downsample="wavemlp"),
    dict(binary_weights=False),
    dict(norm="group", mlp_ratios=(2, 3, 4, 8)),
])
def test_ablation_switches_build_train_and_share_names(switches):
    model = bimlp.create_model("bimlp_s", **TINY, **switches).train()
    out = model(torch.randn(2, 3, 33, 33))
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    names = {n for n, _ in model.named_parameters()}
    if switches.get("multi_branch") is False:
        assert not any(".sfc_h." in n for n in names)
    if switches.get("uni_shortcut") is False:
        assert not any(".mlp.norm0." in n for n in names)
    if switches.get("downsample") == "wavemlp":
        assert model.network[1].proj.kernel_size == (3, 3)


def test_step_two_loads_step_one_strictly():
    step1 = bimlp.create_model("bimlp_s", binary_weights=False, **TINY)
    step2 = bimlp.create_model("bimlp_s", binary_weights=True, **TINY)
    step2.load_state_dict(step1.state_dict(), strict=True)
    assert step1.network[0][0].mlp.fc1.weight_precision == 32
    assert step2.network[0][0].mlp.fc1.weight_precision == 1


@pytest.mark.parametrize("size", [32, 33, 65, 97])
def test_odd_input_sizes(size):
    model = bimlp.create_model("bimlp_s", **TINY).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, size, size)).shape == (1, 10)


def test_drop_path_mask_is_per_sample():
    model = bimlp.create_model("bimlp_s", drop_path_rate=0.5, **TINY)
    paths = [m for m in model.modules() if isinstance(m, DropPath)]
    # linear rule over all blocks: rate * i / (n - 1); the first block has none
    assert len(paths) == sum(TINY["depths"]) - 1
    assert paths[-1].drop_prob == pytest.approx(0.5)
    dp = paths[-1].train()
    y = dp(torch.ones(256, 4, 3, 3))
    per_sample = y.flatten(1)
    assert torch.equal(per_sample, per_sample[:, :1].expand_as(per_sample))  # whole sample kept or not
    kept = per_sample[:, 0]
    assert set(kept.unique().tolist()) == {0.0, 2.0}


def test_timm_integration():
    model = timm.create_model("bimlp_s", num_classes=10)
    assert model.head.out_features == 10
    x = torch.randn(2, 3, 64, 64)
    model.eval()
    feats = model.forward_features(x)
    assert feats.shape == (2, 512, 2, 2)
    assert model.forward_head(feats, pre_logits=True).shape == (2, 512)
    model.reset_classifier(5)
    assert model.get_classifier().out_features == 5 and model(x).shape == (2, 5)
    assert "bimlp_s" in timm.list_models("bimlp*") and "bimlp_m" in bimlp.list_models()
    cfg = model.pretrained_cfg
    assert cfg["crop_pct"] == 0.875 and cfg["interpolation"] == "bilinear"
    assert cfg["mean"] == (0.485, 0.456, 0.406)


def test_bad_configurations_are_named():
    with pytest.raises(ValueError, match="divisible by 4"):
        bimlp.create_model("bimlp_s", dims=(16, 30, 48, 64))
    with pytest.raises(ValueError, match="mode must be one of"):
        bimlp.create_model("bimlp_s", mode="xnor")
    with pytest.raises(ValueError, match="unknown model 'bimlp_x'"):
        bimlp.create_model("bimlp_x")
