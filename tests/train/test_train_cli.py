"""The `bimlp train` and `bimlp eval` commands."""

from __future__ import annotations

import pytest
import torch
import yaml
from PIL import Image

import bimlp
from bimlp.checkpoint import save_weights
from bimlp.cli import main as cli
from bimlp.data import eval_transform
from bimlp.train.config import ModelConfig
from bimlp.train.student import weights_metadata


def test_print_config_applies_overrides(capsys):
    assert cli(["train", "--print-config", "optim.lr=0.1", "run.out_dir=/tmp/q"]) == 0
    docs = [d for d in yaml.safe_load_all(capsys.readouterr().out) if d]
    assert len(docs) == 2  # the built-in recipe: step 1 and step 2
    assert [d["optim"]["lr"] for d in docs] == [0.1, 0.1]
    assert [d["run"]["out_dir"] for d in docs] == ["/tmp/q/step1", "/tmp/q/step2"]


@pytest.mark.parametrize("args, message", [
    (["optim.lrr=1"], "unknown config key 'optim.lrr'"),
    (["--config", "nope.yaml"], "nope.yaml: no such config file"),
    (["data.dataset=folder", "optim.epochs=1"], "needs data.root"),
    (["--resume", "x.pt"], "x.pt: no such training checkpoint"),
])
def test_train_errors_are_one_line(args, message, capsys, tmp_path):
    assert cli(["train", f"run.out_dir={tmp_path}", *args]) == 2
    assert message in capsys.readouterr().err


def _tiny_folder(root, n_per_class=(7, 6)):
    colors = [(220, 20, 20), (20, 20, 220)]
    for c, (n, color) in enumerate(zip(n_per_class, colors, strict=True)):
        (root / "val" / f"class{c}").mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (48 + i, 40), color).save(root / "val" / f"class{c}" / f"{i}.png")


def test_eval_scores_every_image_including_the_last_partial_batch(tmp_path, capsys):
    _tiny_folder(tmp_path)
    (tmp_path / "val" / "class1" / "bad.png").write_bytes(b"\x89PNG not really")
    model = bimlp.create_model("bimlp_s", depths=(1,), dims=(16,), num_classes=2).eval()
    # as `bimlp train` writes it: build arguments and the eval pipeline (64 px) in the metadata
    eval_cfg = {"input_size": [3, 64, 64], "crop_pct": 0.875, "interpolation": "bilinear",
                "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}
    cfg = ModelConfig(name="bimlp_s", depths=[1], dims=[16], num_classes=2)
    save_weights(model, tmp_path / "m.safetensors",
                 config=weights_metadata(model, cfg, eval_cfg))
    argv = ["eval", "--model", "bimlp_s", "--checkpoint", str(tmp_path / "m.safetensors"),
            "--data-dir", str(tmp_path), "--batch-size", "4", "--workers", "0",
            "--json", str(tmp_path / "r.json")]
    with pytest.warns(UserWarning, match="bad.png"):
        assert cli(argv) == 0
    out = capsys.readouterr().out
    assert "(13 images scored" in out  # 13 = 3 full batches of 4 + 1; the bad file skipped
    assert "skipped 1 undecodable image(s)" in out
    result = yaml.safe_load((tmp_path / "r.json").read_text())

    # the same numbers by hand: Resize(73) + CenterCrop(64), normalised, one batch
    tf = eval_transform(eval_cfg)
    assert tf.transforms[0].size == 73
    images, labels = [], []
    for c in range(2):
        for path in sorted((tmp_path / "val" / f"class{c}").glob("[0-9]*.png")):
            images.append(tf(Image.open(path).convert("RGB")))
            labels.append(c)
    with torch.no_grad():
        pred = model(torch.stack(images)).argmax(-1)
    correct = int((pred == torch.tensor(labels)).sum())
    assert result["images"] == 13 and result["skipped"] == 1
    assert result["top1"] == pytest.approx(100 * correct / 13)
    assert result["top5"] == 100.0  # two classes


def test_eval_errors_are_one_line(tmp_path, capsys):
    model = bimlp.create_model("bimlp_s", depths=(1,), dims=(16,), num_classes=2)
    cfg = ModelConfig(name="bimlp_s", depths=[1], dims=[16], num_classes=2)
    save_weights(model, tmp_path / "m.safetensors", config=weights_metadata(model, cfg, {}))
    _tiny_folder(tmp_path)
    base = ["eval", "--data-dir", str(tmp_path), "--workers", "0"]
    assert cli([*base, "--model", "bimlp_m", "--checkpoint", str(tmp_path / "m.safetensors")]) == 2
    assert "holds a 'bimlp_s' model, not 'bimlp_m'" in capsys.readouterr().err
    assert cli([*base, "--model", "bimlp_s", "--checkpoint", str(tmp_path / "missing.pt")]) == 2
    assert "no such checkpoint" in capsys.readouterr().err
    assert cli([*base[:1], "--model", "bimlp_s", "--checkpoint", str(tmp_path / "m.safetensors"),
                "--data", str(tmp_path / "nothing")]) == 2
    assert "no such data folder" in capsys.readouterr().err
