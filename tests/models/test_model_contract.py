"""The contract every registered model keeps (timm style): one generic test per property, run
over every name of ``bimlp.list_models()``. A new model is covered by registering it."""

from __future__ import annotations

import copy

import pytest
import torch

import bimlp

# The largest variants are the same code as their smaller siblings at more blocks; they run with
# `-m slow` to keep the default suite fast.
LARGE = {"bimlp_m", "wavemlp_s", "wavemlp_m"}
MODELS = [pytest.param(n, marks=pytest.mark.slow) if n in LARGE else n
          for n in bimlp.list_models()]
BATCH = 2


def _input(model: torch.nn.Module) -> torch.Tensor:
    # 32 px: every variant's last stage still sees at least 1x1 (BiMLP-S: 8, 4, 2, 1)
    c, h, w = model.pretrained_cfg["input_size"]
    return torch.randn(BATCH, c, 32, 32)


@pytest.fixture(scope="module", params=MODELS)
def built(request) -> tuple[str, torch.nn.Module]:
    torch.manual_seed(0)
    return request.param, bimlp.create_model(request.param, num_classes=7)


def test_forward_shape_and_finite(built):
    name, model = built
    model.eval()
    x = _input(model)
    with torch.no_grad():
        out = model(x)
        feats = model.forward_features(x)
        pooled = model.forward_head(feats, pre_logits=True)
    assert out.shape == (BATCH, 7), name
    assert torch.isfinite(out).all(), name
    assert feats.shape[:2] == (BATCH, model.num_features)
    assert pooled.shape == (BATCH, model.num_features)


def test_every_parameter_gets_a_gradient(built):
    name, model = built
    model.train()
    model.zero_grad(set_to_none=True)
    model(_input(model)).logsumexp(dim=1).sum().backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert not no_grad, f"{name}: no gradient for {no_grad[:5]}"
    bad = [n for n, p in model.named_parameters() if not torch.isfinite(p.grad).all()]
    assert not bad, f"{name}: non-finite gradient in {bad[:5]}"


def test_config_matches_the_real_shapes(built):
    name, model = built
    cfg = model.config
    head = model.get_classifier()
    assert head.out_features == cfg.num_classes == model.num_classes == 7
    assert head.in_features == model.num_features == cfg.dims[-1]
    first = model.get_submodule(model.pretrained_cfg["first_conv"])
    assert first.in_channels == cfg.in_chans
    assert model.get_submodule(model.pretrained_cfg["classifier"]) is head
    # the stored configuration rebuilds the same tensors
    with torch.device("meta"):
        again = bimlp.create_model(name, **cfg.to_dict())
    assert {k: v.shape for k, v in again.state_dict().items()} == {
        k: v.shape for k, v in model.state_dict().items()
    }


def test_reset_classifier(built):
    name, model = built
    fresh = copy.deepcopy(model)
    fresh.reset_classifier(0)
    with torch.no_grad():
        out = fresh.eval()(_input(fresh))
    assert out.shape == (BATCH, fresh.num_features)
    fresh.reset_classifier(3)
    assert fresh.get_classifier().out_features == 3 and fresh.config.num_classes == 3


def test_registered_with_timm_and_in_a_family(built):
    import timm

    name, model = built
    assert name in timm.list_models()
    family = bimlp.models.family_of(name)
    assert family is not None and isinstance(model.config, family.config_cls)
    assert set(model.config.arch_fields()) <= set(model.config.to_dict())
