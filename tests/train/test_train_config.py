"""Recipes: typed configs from YAML, dotted overrides, and the shipped recipe files."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bimlp.train.config import (
    ConfigError,
    ModelConfig,
    TrainConfig,
    config_from_dict,
    config_to_dict,
    load_config,
    save_config,
)
from bimlp.train.recipes import builtin_recipes, digits_recipe

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_overrides_are_typed_and_dotted(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("optim:\n  weight_decay: 1e-5\n  epochs: 3\nmodel:\n  name: bimlp_m\n")
    cfg = load_config(path, ["optim.lr=1e-3", "model.depths=[1, 2]", "distill.teacher=null",
                             "data.mean=[0.5]", "run.ema_decay=0.99", "model.extra.foo=7"])
    assert cfg.optim.weight_decay == 1e-5  # YAML 1.1 reads "1e-5" as a string: coerced
    assert isinstance(cfg.optim.lr, float) and cfg.optim.lr == 1e-3
    assert cfg.optim.epochs == 3 and cfg.model.name == "bimlp_m"
    assert cfg.model.depths == [1, 2] and cfg.data.mean == [0.5]
    assert cfg.distill.teacher is None and cfg.run.ema_decay == 0.99
    assert cfg.model.extra == {"foo": 7}
    assert cfg.data.dataset == "digits"  # left out of the file: the default


@pytest.mark.parametrize("override, message", [
    ("optim.lrr=1", "unknown config key 'optim.lrr' (did you mean 'lr'?)"),
    ("optimm.lr=1", "unknown config key 'optimm'"),
    ("optim.epochs=2.5", "optim.epochs: expected an integer"),
    ("optim.lr=fast", "optim.lr: expected a number"),
    ("run.compile=yes please", "run.compile: expected true or false"),
    ("model.depths=3", "model.depths"),
    ("data.batch_size=null", "data.batch_size: expected an integer, got None"),
    ("optim.betas=[0.9, fast]", "optim.betas[1]: expected a number"),
    ("optim.lr", "not KEY=VALUE"),
])
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ConfigError, match=_literal(message)):
        load_config(None, [override])


def _literal(text: str) -> str:
    import re

    return re.escape(text)


def test_resolved_config_round_trips_through_yaml(tmp_path):
    cfg = load_config(None, ["optim.lr=0.1", "model.dims=[8, 16]"])
    save_config(cfg, tmp_path / "config.yaml")
    again = load_config(tmp_path / "config.yaml")
    assert again == cfg
    assert config_from_dict(config_to_dict(cfg)) == cfg
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["optim"]["lr"] == 0.1


def test_defaults_are_reactnet():
    o = TrainConfig().optim
    assert (o.optimizer, o.lr, o.lr_ref_batch, o.schedule, o.weight_decay, o.epochs) == (
        "adam", 5e-4, 256, "linear", 1e-5, 256)


def test_every_shipped_recipe_loads():
    files = sorted(CONFIGS.glob("*.yaml"))
    assert {f.stem for f in files} >= {
        "bimlp_s_step1", "bimlp_s_step2", "bimlp_m_step1", "bimlp_m_step2",
        "digits_step1", "digits_step2"}
    for f in files:
        load_config(f)


@pytest.mark.parametrize("size, teacher, ckpt", [
    ("s", "wavemlp_t", "WaveMLP_T.pth.tar"), ("m", "wavemlp_s", "WaveMLP_S.pth.tar")])
def test_imagenet_recipes_are_two_steps_of_one_model(size, teacher, ckpt):
    one = load_config(CONFIGS / f"bimlp_{size}_step1.yaml")
    two = load_config(CONFIGS / f"bimlp_{size}_step2.yaml")
    for cfg in (one, two):
        assert cfg.model.name == f"bimlp_{size}" and cfg.model.mode == "paper"
        assert (cfg.optim.optimizer, cfg.optim.lr, cfg.optim.lr_ref_batch) == ("adam", 5e-4, 256)
        assert cfg.optim.schedule == "linear" and cfg.optim.epochs == 256
        assert (cfg.distill.teacher, cfg.distill.teacher_checkpoint) == (teacher, ckpt)
        assert cfg.distill.label_weight == 0.0
        assert cfg.data.dataset == "folder" and cfg.data.image_size == 224
        assert cfg.data.crop_scale == [0.08, 1.0] and cfg.data.hflip == 0.5
    assert (one.model.binary_weights, one.optim.weight_decay, one.model.init_from) == (
        False, 1e-5, None)
    assert (two.model.binary_weights, two.optim.weight_decay) == (True, 0.0)
    assert two.model.init_from == f"{one.run.out_dir}/model.safetensors"
    # apart from the step switches, the two steps are the same recipe
    differs = {"model": {"binary_weights", "init_from"}, "optim": {"weight_decay"},
               "run": {"out_dir"}}
    a, b = config_to_dict(one), config_to_dict(two)
    for section in a:
        for key in a[section]:
            if key not in differs.get(section, ()):
                assert a[section][key] == b[section][key], f"{section}.{key}"


def test_digits_files_are_the_builtin_recipe():
    for step in (1, 2):
        assert load_config(CONFIGS / f"digits_step{step}.yaml") == config_from_dict(
            digits_recipe(step))


def test_builtin_recipe_moves_with_out_dir():
    one, two = builtin_recipes(["run.out_dir=/tmp/x", "optim.epochs=2"])
    assert one.run.out_dir == "/tmp/x/step1" and two.run.out_dir == "/tmp/x/step2"
    assert two.model.init_from == "/tmp/x/step1/model.safetensors"
    assert one.optim.epochs == two.optim.epochs == 2
    assert (one.model.binary_weights, two.model.binary_weights) == (False, True)


def test_model_section_fields_come_from_the_model_families():
    # the architecture fields are defined once, in the families' configuration dataclasses;
    # the recipe's model section is generated from them (plus its own four fields)
    import dataclasses

    from bimlp.models import list_families

    family_fields = {f.name for fam in list_families() for f in dataclasses.fields(fam.config_cls)}
    assert {"depths", "mode", "binary_weights", "stem_stride", "stem_dim", "downsample_norm"} \
        <= family_fields
    own = {"name", "extra", "init_from", "sync_bn"}
    assert {f.name for f in dataclasses.fields(ModelConfig)} == family_fields | own
    # and each is a typed recipe key: lists for tuples, None = the model's default
    cfg = load_config(None, ["model.depths=[1,1]", "model.stem_stride=2", "model.mlp_ratios=4"])
    assert cfg.model.model_kwargs() == {"depths": [1, 1], "stem_stride": 2, "mlp_ratios": 4.0}
    with pytest.raises(ConfigError, match="model.stem_stride: expected an integer"):
        load_config(None, ["model.stem_stride=two"])
