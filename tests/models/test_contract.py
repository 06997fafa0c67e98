"""The contract every registered model keeps, timm style: one generic test per property, run over
every name of ``bimlp.list_models()`` (a new model is covered by registering it). What timm's
train.py, its optimizer factory, and detection / segmentation backbones expect of a model."""

from __future__ import annotations

import copy
import functools

import pytest
import timm
import torch
from timm.models import group_parameters
from timm.optim import param_groups_layer_decay

import bimlp
from bimlp.checkpoint import save_weights
from bimlp.train.optim import param_groups

NAMES = bimlp.list_models()
# The largest variants are the same code as their smaller siblings at more blocks; they run with
# `-m slow` to keep the default suite fast.
LARGE = {"bimlp_m", "wavemlp_s", "wavemlp_m"}
MODELS = [pytest.param(n, marks=pytest.mark.slow) if n in LARGE else n for n in NAMES]
SIDE = 32  # a multiple of every model's total reduction (32): the last map is 1x1
CLASSES = 10
BATCH = 2


@functools.cache
def _built(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return bimlp.create_model(name, num_classes=CLASSES)


def fresh(name: str) -> torch.nn.Module:
    """A private copy of the (cached) model with 10 classes, in eval mode."""
    return copy.deepcopy(_built(name)).eval()


def images(batch: int = BATCH, side: int = SIDE) -> torch.Tensor:
    return torch.randn(batch, 3, side, side, generator=torch.Generator().manual_seed(1))


def test_every_family_is_covered():
    families = {f.name for f in bimlp.models.list_families()}
    assert {"bimlp", "wavemlp", "reactnet"} <= families
    assert {bimlp.models.family_of(n).name for n in NAMES} == families
    assert not LARGE - set(NAMES)  # the slow marks name real models


@pytest.mark.parametrize("name", MODELS)
def test_registered_with_timm_and_in_its_family(name):
    model = fresh(name)
    assert name in timm.list_models()
    family = bimlp.models.family_of(name)
    assert family is not None and family.name == model.family
    assert isinstance(model.config, family.config_cls)
    assert set(model.config.arch_fields()) <= set(model.config.to_dict())


@pytest.mark.parametrize("name", MODELS)
def test_forward_shapes_and_finite(name):
    model, x = fresh(name), images()
    with torch.no_grad():
        out = model(x)
        feats = model.forward_features(x)
        pooled = model.forward_head(feats, pre_logits=True)
    assert out.shape == (BATCH, CLASSES) and torch.isfinite(out).all()
    assert feats.shape[:2] == (BATCH, model.num_features)
    assert pooled.shape == (BATCH, model.num_features)
    assert torch.equal(model.forward_head(feats), out)


@pytest.mark.parametrize("name", MODELS)
def test_every_parameter_gets_a_finite_gradient(name):
    model = fresh(name).train()
    model(images()).logsumexp(dim=1).sum().backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert not no_grad, f"no gradient for {no_grad[:5]}"
    bad = [n for n, p in model.named_parameters() if not torch.isfinite(p.grad).all()]
    assert not bad, f"non-finite gradient in {bad[:5]}"


@pytest.mark.parametrize("name", MODELS)
def test_config_matches_the_real_shapes(name):
    model = fresh(name)
    cfg, head = model.config, model.get_classifier()
    assert head.out_features == cfg.num_classes == model.num_classes == CLASSES
    assert head.in_features == model.num_features == cfg.dims[-1]
    assert model.get_submodule(model.pretrained_cfg["first_conv"]).in_channels == cfg.in_chans
    assert model.get_submodule(model.pretrained_cfg["classifier"]) is head
    # the stored configuration rebuilds the same tensors
    with torch.device("meta"):
        again = bimlp.create_model(name, **cfg.to_dict())
    assert {k: v.shape for k, v in again.state_dict().items()} == {
        k: v.shape for k, v in model.state_dict().items()
    }


@pytest.mark.parametrize("name", MODELS)
def test_pretrained_loads_a_local_file_the_timm_way(name, tmp_path):
    # timm's --pretrained-path: pretrained=True, pretrained_cfg_overlay=dict(file=PATH)
    source, x = fresh(name), images()
    path = save_weights(source, tmp_path / "w.safetensors")
    model = timm.create_model(name, pretrained=True, num_classes=CLASSES,
                              pretrained_cfg_overlay=dict(file=str(path), num_classes=CLASSES))
    assert model.pretrained_cfg["file"] == str(path) and "state_dict" not in model.pretrained_cfg
    with torch.no_grad():
        assert torch.equal(model.eval()(x), source(x))
    # fine-tuning: another number of classes keeps every weight but the new classifier's
    tuned = timm.create_model(name, pretrained=True, num_classes=3,
                              pretrained_cfg_overlay=dict(file=str(path)))
    with torch.no_grad():
        assert torch.equal(tuned.eval().forward_features(x), source.forward_features(x))
    assert tuned(x).shape == (BATCH, 3)
    feats = timm.create_model(name, pretrained=True, features_only=True,
                              pretrained_cfg_overlay=dict(file=str(path))).eval()
    with torch.no_grad():
        maps = source.forward_intermediates(x, intermediates_only=True)
        got = feats(x)
        assert [torch.equal(a, b) for a, b in zip(got, maps, strict=True)] == [True] * len(maps)
    with pytest.raises(ValueError, match="pretrained_cfg_overlay=dict\\(file=PATH\\)"):
        timm.create_model(name, pretrained=True)  # no hosted weights: says where they come from
    state = source.state_dict()
    state["head.weight"] = state["head.weight"][:, :-1]  # a file that does not fit
    bad = save_weights(state, tmp_path / "bad.safetensors")
    with pytest.raises(RuntimeError, match="size mismatch for head.weight"):
        timm.create_model(name, pretrained=True, num_classes=CLASSES,
                          pretrained_cfg_overlay=dict(file=str(bad), num_classes=CLASSES))


@pytest.mark.parametrize("name", MODELS)
def test_features_only_gives_one_map_per_stage_with_its_stride(name):
    model = timm.create_model(name, features_only=True).eval()
    info = model.feature_info
    n = fresh(name).num_stages
    with torch.no_grad():
        maps = model(images())
    assert len(maps) == len(info) == n
    assert info.channels() == [m.shape[1] for m in maps]
    assert [SIDE // r for r in info.reduction()] == [m.shape[-1] for m in maps]
    stem = getattr(fresh(name).config, "stem_stride", 4)
    assert info.reduction() == [stem * 2**i for i in range(n)]
    # a subset, negative indices included
    sub = timm.create_model(name, features_only=True, out_indices=(1, -1)).eval()
    assert sub.feature_info.reduction() == [info.reduction()[1], info.reduction()[-1]]
    with torch.no_grad():
        assert [m.shape[1] for m in sub(images())] == [maps[1].shape[1], maps[-1].shape[1]]


def test_bimlp_s_features_at_224_are_strides_4_to_32():
    model = timm.create_model("bimlp_s", features_only=True).eval()
    with torch.no_grad():
        maps = model(torch.randn(1, 3, 224, 224))
    assert [tuple(m.shape[1:]) for m in maps] == [
        (64, 56, 56), (128, 28, 28), (320, 14, 14), (512, 7, 7)]
    assert model.feature_info.reduction() == [4, 8, 16, 32]


@pytest.mark.parametrize("name", MODELS)
def test_forward_intermediates_agree_with_forward_features(name):
    model, x = fresh(name), images()
    n = model.num_stages
    with torch.no_grad():
        final, maps = model.forward_intermediates(x)
        assert torch.equal(final, model.forward_features(x))
        assert len(maps) == n
        last2 = model.forward_intermediates(x, indices=2, intermediates_only=True)
        assert [torch.equal(a, b) for a, b in zip(last2, maps[-2:], strict=True)] == [True, True]
        early_final, early = model.forward_intermediates(x, indices=[0], stop_early=True)
        assert torch.equal(early[0], maps[0]) and torch.equal(early_final, maps[0])
        (normed,) = model.forward_intermediates(x, indices=[-1], norm=True, intermediates_only=True)
        assert torch.equal(normed, final)
    with pytest.raises(ValueError, match="do not fit"):
        model.forward_intermediates(x, indices=[n])
    with pytest.raises(ValueError, match="NCHW"):
        model.forward_intermediates(x, output_fmt="NHWC")


@pytest.mark.parametrize("name", MODELS)
def test_prune_intermediate_layers_keeps_the_same_maps(name):
    model, x = fresh(name), images()
    with torch.no_grad():
        maps = model.forward_intermediates(x, intermediates_only=True)
    n, params = model.num_stages, sum(p.numel() for p in model.parameters())
    assert model.prune_intermediate_layers([0, 1]) == [0, 1]
    assert model.num_stages == 2 and sum(p.numel() for p in model.parameters()) < params
    assert model.num_features == model.feature_info[1]["num_chs"] and model.num_classes == 0
    with torch.no_grad():
        kept = model.forward_intermediates(x, intermediates_only=True)
        assert [torch.equal(a, b) for a, b in zip(kept, maps[:2], strict=True)] == [True, True]
        assert torch.equal(model(x), maps[1])  # no final norm, no pool, no head: the map itself
    assert n > 2


def _saved_bytes(model, x):
    """Bytes autograd keeps for the backward pass of ``model(x)``."""
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(x)
    return out, total


def smallest_of_each_family() -> list[str]:
    """One model per family (the variants of a family differ only in configuration)."""
    best: dict[str, str] = {}
    for name in NAMES:
        family = getattr(_built(name), "family", name)
        size = sum(p.numel() for p in _built(name).parameters())
        if family not in best or size < sum(p.numel() for p in _built(best[family]).parameters()):
            best[family] = name
    return sorted(best.values())


@pytest.mark.parametrize("name", smallest_of_each_family())
def test_grad_checkpointing_trades_memory_for_the_same_gradients(name):
    torch.manual_seed(0)
    # stochastic depth where the family has it: the recomputation must repeat its masks
    extra = {"drop_path_rate": 0.2} if hasattr(_built(name).config, "drop_path_rate") else {}
    plain = bimlp.create_model(name, num_classes=10, **extra).train()
    ckpt = copy.deepcopy(plain)
    ckpt.set_grad_checkpointing()
    x = images(4, 32)
    results = []
    for model in (plain, ckpt):
        torch.manual_seed(3)  # the same drop-path masks
        out, saved = _saved_bytes(model, x)
        out.square().mean().backward()
        results.append((out, saved))
    (out_a, saved_a), (out_b, saved_b) = results
    assert torch.equal(out_a, out_b)
    assert saved_b < saved_a / 3, (saved_a, saved_b)  # activations are recomputed, not kept
    for (n, a), b in zip(plain.named_parameters(), ckpt.parameters(), strict=True):
        assert a.grad is not None and torch.equal(a.grad, b.grad), n
    for (n, a), b in zip(plain.named_buffers(), ckpt.buffers(), strict=True):
        assert torch.equal(a, b), n  # BatchNorm statistics updated once, not twice


@pytest.mark.parametrize("name", MODELS)
def test_group_matcher_orders_stem_blocks_downsamples_norm(name):
    model = fresh(name)
    fine, coarse = (
        [names for _, names in sorted(group_parameters(model, model.group_matcher(c)).items())]
        for c in (False, True)
    )
    names = {n for n, _ in model.named_parameters()}
    for groups in (fine, coarse):
        assert sorted(n for g in groups for n in g) == sorted(names)  # each parameter once
        assert all(n.startswith("patch_embed.") for n in groups[0])
        assert {n for n in names if n.startswith("head.")} <= set(groups[-1])
    assert all(n.startswith("head.") for n in fine[-1])  # coarse: the final norm joins the head
    blocks = sum(len(model.network[2 * i]) for i in range(model.num_stages))
    downsamples = model.num_stages - 1
    # stem, every block, every downsample (the final norm joins the last block, as in timm), head
    assert len(fine) == 1 + blocks + downsamples + 1
    assert len(coarse) == 1 + sum(any(True for _ in m.parameters()) for m in model.network) + 1
    # timm's layer-wise LR decay sees those layers
    lr_scales = {g["lr_scale"] for g in param_groups_layer_decay(model, layer_decay=0.5)}
    assert len(lr_scales) == len(fine)


@pytest.mark.parametrize("name", MODELS)
def test_no_weight_decay_is_the_training_rule(name):
    model = fresh(name)
    names = {id(p): n for n, p in model.named_parameters()}
    _, rest = param_groups(model, 1e-5)
    assert model.no_weight_decay() == {names[id(p)] for p in rest["params"]}
    assert "head.bias" in model.no_weight_decay() and "head.weight" not in model.no_weight_decay()


@pytest.mark.parametrize("name", MODELS)
def test_global_pool_in_the_constructor_and_reset_classifier(name):
    x = images()
    model = timm.create_model(name, num_classes=5, global_pool="max").eval()
    assert model.global_pool.pool_type == "max" and model.head_hidden_size == model.num_features
    with torch.no_grad():
        feats = model.forward_features(x)
        assert torch.equal(model.forward_head(feats, pre_logits=True), feats.amax(dim=(2, 3)))
        model.reset_classifier(3, "catavgmax")
        assert model.head_hidden_size == 2 * model.num_features == model.head.in_features
        assert model(x).shape == (2, 3)
        assert model.forward_head(feats, pre_logits=True).shape == (2, model.head_hidden_size)
        model.reset_classifier(0, "")  # timm: no pool, no head -> the feature map itself
        assert torch.equal(model(x), feats)
        model.reset_classifier(4)  # the pool stays
        assert model.global_pool.pool_type == "" and model.num_classes == 4
    model = fresh(name)
    model.reset_classifier(0)  # no head, the pool stays: pooled features
    with torch.no_grad():
        assert model(x).shape == (BATCH, model.num_features)
    model.reset_classifier(3)
    assert model.get_classifier().out_features == 3 and model.config.num_classes == 3


@pytest.mark.parametrize("name", MODELS)
def test_torchscript_is_refused_with_the_reason(name):
    with pytest.raises(TypeError, match="does not support torch.jit.script.*torch.compile"):
        torch.jit.script(fresh(name))
