"""ReActNet-A: published counts, block numerics, the two-step switch, small images, timm."""

from __future__ import annotations

import pytest
import timm
import torch
import torch.nn.functional as F

import bimlp
from bimlp.layers import BinaryConv2d
from bimlp.models._base import stem_geometry
from bimlp.models.reactnet import ReActBlock, block_strides

TINY = dict(stem_dim=8, dims=(16, 16, 32, 32), num_classes=10)


def test_profile_gives_the_published_counts_at_224():
    """ReActNet paper, Table: 4.82e9 BOPs, 0.12e8 FLOPs, 0.87e8 OPs (two significant digits)."""
    r = bimlp.profile(bimlp.create_model("reactnet_a"), input_size=(3, 224, 224))
    assert abs(r.bops / 4.82e9 - 1) < 0.01
    assert abs(r.ops / 8.7e7 - 1) < 0.01
    # stem 10.84 M + classifier 1.02 M MACs = 1.186e7: the published 0.12e8 at its precision
    # (1.15 % below the rounded figure, the only full-precision MACs there are)
    assert r.flops == 112 * 112 * 32 * 27 + 1024 * 1000
    assert float(f"{r.flops:.1e}") == 1.2e7
    assert abs(r.params / 1e6 - 29.34) < 0.01


def test_block_strides_follow_mobilenet_v1():
    strides = block_strides(32, (64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024))
    assert strides == (1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1)
    model = bimlp.create_model("reactnet_a").eval()
    sizes, x = [], model.patch_embed(torch.zeros(1, 3, 224, 224))
    for layer in model.network:
        x = layer(x)
        sizes.append(x.shape[-1])
    assert sizes == [112, 56, 56, 28, 28, 14, 14, 7, 7] and x.shape[1] == 1024


def test_block_matches_its_formula():
    """A stride-2 doubling block against the formula written out with plain functional ops."""
    torch.manual_seed(0)
    block = ReActBlock(4, 8, 2, "approx_sign", "scaled_sign").eval()
    for p in block.parameters():
        p.data.normal_(0, 0.5)
    for m in block.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 2)
    x = torch.randn(2, 4, 7, 7)

    def sign(t):
        return torch.where(t >= 0, 1.0, -1.0)

    def bconv(conv, t, **kw):
        w = conv.weight
        w = sign(w) * w.abs().mean(dim=(1, 2, 3), keepdim=True)
        return F.conv2d(sign(t), w, **kw)

    def bn(m, t):
        return F.batch_norm(t, m.running_mean, m.running_var, m.weight, m.bias, False, 0, m.eps)

    def rprelu(m, t):
        return F.prelu(t + m.move1.bias, m.act.weight) + m.move2.bias

    y = bn(block.bn1, bconv(block.binary_3x3, x + block.move11.bias, stride=2, padding=1))
    y = rprelu(block.act1, y + F.avg_pool2d(x, 2, 2, ceil_mode=True))  # 7 -> 4
    u = y + block.move21.bias
    z = torch.cat([bn(block.bn2_1, bconv(block.binary_pw_down1, u)) + y,
                   bn(block.bn2_2, bconv(block.binary_pw_down2, u)) + y], dim=1)
    expected = rprelu(block.act2, z)
    with torch.no_grad():
        got = block(x)
    assert got.shape == (2, 8, 4, 4)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_paper_mode_is_truly_binary_and_step_two_loads_step_one():
    step1 = bimlp.create_model("reactnet_a", binary_weights=False, **TINY)
    step2 = bimlp.create_model("reactnet_a", binary_weights=True, **TINY)
    step2.load_state_dict(step1.state_dict(), strict=True)
    convs = [m for m in step2.modules() if isinstance(m, BinaryConv2d)]
    assert len(convs) == 3 * 2 + 2 * 1 + 2  # two blocks double (two 1x1 each)
    assert all(c.input_precision == 1 and c.weight_precision == 1 for c in convs)
    assert all(c.weight_precision == 32 for c in step1.modules() if isinstance(c, BinaryConv2d))
    r1 = bimlp.profile(step1, input_size=(3, 32, 32))
    r2 = bimlp.profile(step2, input_size=(3, 32, 32))
    assert r1.bops == 0 and r2.bops > 0 and r2.flops < r1.flops


@pytest.mark.parametrize("size", [32, 33, 45])
def test_any_input_size_trains(size):
    model = bimlp.create_model("reactnet_a", **TINY).train()
    out = model(torch.randn(2, 3, size, size))
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    out.square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("stride, size, expected", [(4, 224, 56), (2, 224, 112), (2, 32, 16),
                                                    (1, 32, 32), (2, 28, 14), (8, 224, 28)])
def test_stem_geometry(stride, size, expected):
    kernel, padding = stem_geometry(stride)
    assert (size + 2 * padding - kernel) // stride + 1 == expected
    assert stem_geometry(4) == (7, 2)  # the released 7x7 / 4 pad 2 stem is unchanged


@pytest.mark.parametrize("name, maps", [("bimlp_xs", [16, 16, 8, 8, 4, 4, 2, 2]),
                                        ("wavemlp_xs", [16, 16, 8, 8, 4, 4, 2, 2]),
                                        ("reactnet_a_xs", [32, 32, 16, 16, 8, 8, 4, 4, 2, 2])])
def test_small_image_variants_keep_2x2_maps_at_32px(name, maps):
    model = bimlp.create_model(name, in_chans=1, num_classes=10).eval()
    x = model.patch_embed(torch.zeros(1, 1, 32, 32))
    sizes = [x.shape[-1]]
    for layer in model.network:
        x = layer(x)
        sizes.append(x.shape[-1])
    assert sizes == maps  # stem, then stage 0, downsample 0, stage 1, ...
    assert model.pretrained_cfg["input_size"] == (3, 32, 32)


@pytest.mark.parametrize("name", ["bimlp_s", "wavemlp_t", "reactnet_a"])
def test_stem_stride_is_a_config_field_that_round_trips(name, tmp_path):
    model = bimlp.create_model(name, stem_stride=2, num_classes=10)
    assert model.patch_embed.proj.stride == (2, 2) and model.patch_embed.proj.kernel_size == (3, 3)
    assert model.config.to_dict()["stem_stride"] == 2
    from bimlp.checkpoint import save_weights

    path = tmp_path / "m.safetensors"
    save_weights(model, path)
    again = bimlp.create_model(name, checkpoint=path)
    assert again.config.stem_stride == 2


def test_timm_integration():
    model = timm.create_model("reactnet_a_xs", num_classes=10, in_chans=1).eval()
    x = torch.randn(2, 1, 32, 32)
    feats = model.forward_features(x)
    assert feats.shape == (2, 512, 2, 2)
    assert model.forward_head(feats, pre_logits=True).shape == (2, 512)
    model.reset_classifier(5)
    assert model(x).shape == (2, 5)
    assert {"reactnet_a", "reactnet_a_xs"} <= set(timm.list_models("reactnet*"))
    assert model.pretrained_cfg["first_conv"] == "patch_embed.proj"


def test_bad_configurations_are_named():
    with pytest.raises(ValueError, match="keeps or doubles"):
        bimlp.create_model("reactnet_a", stem_dim=8, dims=(16, 48))
    with pytest.raises(ValueError, match="strides needs one entry"):
        bimlp.create_model("reactnet_a", stem_dim=8, dims=(16, 32), strides=(1, 3))
    with pytest.raises(ValueError, match="mode must be one of"):
        bimlp.create_model("reactnet_a", mode="official")
    for name in ("reactnet_a", "bimlp_s", "wavemlp_t"):
        with pytest.raises(ValueError, match="stem_stride must be a positive integer"):
            bimlp.create_model(name, stem_stride=0)
