"""The packed model equals the paper-mode eval model: cosine >= 0.99999 per sample, same argmax."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from deploy_helpers import SMALL, conditioned_model

import bimlp
from bimlp.deploy import pack_model
from bimlp.deploy.pack import pack_bits, unpack_bits


def cosines(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return F.cosine_similarity(a.double(), b.double(), dim=1)


def check_packed_matches(model, x):
    with torch.no_grad():
        ref = model(x)
        ref64 = model.double()(x.double())
        model.float()
    # the instrument first: the reference's own float32 rounding must not change its answer
    assert cosines(ref, ref64).min() >= 0.999999, "test model is not numerically conditioned"
    packed = pack_model(model, threads=2)
    out = packed(x)
    assert out.shape == ref.shape
    assert cosines(out, ref).min() >= 0.99999, cosines(out, ref)
    assert torch.equal(out.argmax(1), ref.argmax(1))
    return packed, out, ref


@pytest.mark.parametrize("size", [33, 65])
def test_small_odd_config_matches(size):
    model = conditioned_model(calib_size=size, **SMALL)
    x = torch.randn(3, 3, size, size)
    packed, out, _ = check_packed_matches(model, x)
    assert torch.equal(pack_model(model, threads=1)(x), out)  # thread count changes no bit
    assert packed.kernel_name.startswith("runtime-")


def test_small_config_group_norm_and_ablations_match():
    model = conditioned_model(calib_size=40, norm="group", uni_shortcut=False, multi_branch=False,
                              depths=(1, 2), dims=(20, 36), mlp_ratios=(4, 3), num_classes=7)
    check_packed_matches(model, torch.randn(2, 3, 40, 37))


def test_bimlp_s_224_matches():
    model = conditioned_model("bimlp_s", calib_size=64)
    x = torch.randn(1, 3, 224, 224)
    check_packed_matches(model, x)


def test_packing_does_not_touch_the_model():
    model = conditioned_model(calib_size=33, **SMALL)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pack_model(model)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not model.training


def test_quantizers_of_another_mode_are_refused():
    model = bimlp.create_model("bimlp_s", mode="official", **SMALL).eval()
    model.config.mode = "paper"  # official quantizers inside a model that claims paper numerics
    with pytest.raises(ValueError, match="not the paper-mode pair"):
        pack_model(model)


def test_real_valued_weights_are_refused():
    model = bimlp.create_model("bimlp_s", binary_weights=False, **SMALL).eval()
    with pytest.raises(ValueError, match="binary_weights=False"):
        pack_model(model)


def test_bit_stream_order():
    # signs -, +, +, -, +, +, +, +, - : bit i of byte i // 8, LSB first, 1 = negative
    w = torch.tensor([-0.5, 0.0, 2.0, -1.0, 1.0, 1.0, 1.0, 1.0, -3.0])
    data = pack_bits(w < 0)
    assert data.tolist() == [0b00001001, 0b00000001]
    assert torch.equal(unpack_bits(data, 9), w < 0)
    neg = torch.rand(3, 77) < 0.5
    assert torch.equal(unpack_bits(pack_bits(neg), neg.numel()).view(3, 77), neg)
    assert pack_bits(neg).numel() == (3 * 77 + 7) // 8
