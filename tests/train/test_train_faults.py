"""Training under hostile input: batches of one image, runs that would overwrite a finished run,
configurations that cannot work. Each fails in one clear line or trains to the end."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import pytest
import torch

from bimlp.data import UndecodableImageWarning
from bimlp.layers import BatchNorm2d
from bimlp.train.config import config_from_dict
from bimlp.train.engine import train


def _finished(result, epochs: int) -> None:
    assert [row["epoch"] for row in result.history] == list(range(1, epochs + 1))
    assert math.isfinite(result.final["train_loss"]) and result.weights.is_file()


def test_batch_size_one_trains_to_the_end(tmp_path, recipe):
    # every re-weighting BatchNorm sees (1, C, 1, 1): one value per channel at every step
    cfg = recipe(tmp_path, 1, data={"batch_size": 1, "train_limit": 12, "val_limit": 10},
                 optim={"epochs": 2})
    _finished(train(config_from_dict(cfg)), 2)


def test_batch_of_two_with_one_undecodable_image_trains_to_the_end(tmp_path, recipe, image_folder):
    root = image_folder(tmp_path / "images", train=4, val=2)
    (root / "train" / "c0" / "0.png").write_text("not an image")
    cfg = recipe(tmp_path / "run", 1, data={"dataset": "folder", "root": str(root),
                                            "batch_size": 2, "image_size": 16},
                 optim={"epochs": 2})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train(config_from_dict(cfg))
    _finished(result, 2)
    assert result.skipped == [str(root / "train" / "c0" / "0.png")]
    assert sum(issubclass(w.category, UndecodableImageWarning) for w in caught) == 1


def test_lone_sample_batchnorm_uses_and_keeps_running_statistics():
    bn = BatchNorm2d(3).train()
    bn.running_mean.fill_(1.0)
    bn.running_var.fill_(4.0)
    x = torch.tensor([3.0, 5.0, 7.0]).view(1, 3, 1, 1)
    y = bn(x)
    torch.testing.assert_close(y.flatten(), (x.flatten() - 1.0) / math.sqrt(4.0 + bn.eps))
    torch.testing.assert_close(bn.running_mean, torch.ones(3))  # unchanged
    torch.testing.assert_close(bn.running_var, torch.full((3,), 4.0))
    # two values per channel: ordinary BatchNorm, statistics of the batch
    x2 = torch.randn(2, 3, 1, 1)
    torch.testing.assert_close(bn(x2), torch.nn.functional.batch_norm(
        x2, None, None, bn.weight, bn.bias, True, 0.0, bn.eps))


# --- a new run never destroys an old one -------------------------------------------------------
def _digests(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_new_run_refuses_a_folder_that_holds_one_and_leaves_it_byte_identical(
    tmp_path, recipe, capsys
):
    import yaml

    from bimlp.cli import main as cli

    small = dict(data={"train_limit": 64, "val_limit": 20}, optim={"epochs": 1})
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe(tmp_path, 1, **small)))
    assert cli(["train", "--config", str(path)]) == 0
    run = tmp_path / "step1"
    before = _digests(run)
    assert {"last.pt", "model.safetensors", "metrics.csv"} <= set(before)
    capsys.readouterr()
    for extra in ([], ["optim.epochs=0"], ["optim.epochs=2", "run.seed=1"]):
        assert cli(["train", "--config", str(path), *extra]) == 2
        line = _one_line_error(capsys)
        if extra == ["optim.epochs=0"]:
            assert "optim.epochs must be an integer >= 1, got 0" in line
        else:
            assert f"run.out_dir {run} already holds a run" in line
            assert f"--resume {run / 'last.pt'}" in line and "run.overwrite=true" in line
        assert _digests(run) == before  # every byte of the trained run is still there
    # asked for explicitly, the folder is replaced by the new run
    assert cli(["train", "--config", str(path), "run.overwrite=true", "run.seed=1"]) == 0
    after = _digests(run)
    assert after["model.safetensors"] != before["model.safetensors"]
    # continuing the run in its own folder is not a new run
    assert cli(["train", "--config", str(path), "optim.epochs=2",
                "--resume", str(run / "last.pt")]) == 0


@pytest.mark.parametrize("override, message", [
    ("optim.epochs=0", "optim.epochs must be an integer >= 1, got 0"),
    ("optim.epochs=-3", "optim.epochs must be an integer >= 1, got -3"),
    ("data.batch_size=0", "data.batch_size must be an integer >= 1, got 0"),
    ("optim.lr=0", "optim.lr must be a finite number > 0, got 0.0"),
    ("optim.lr=-1e-3", "optim.lr must be a finite number > 0, got -0.001"),
    ("optim.lr=nan", "optim.lr must be a finite number > 0, got nan"),
    ("optim.lr=.inf", "optim.lr must be a finite number > 0, got inf"),
    ("optim.lr=fast", "optim.lr: expected a number, got 'fast'"),
    ("data.workers=-1", "data.workers must be an integer >= 0, got -1"),
    ("run.device=gpu", "run.device must be auto, cpu, mps, cuda or cuda:N, got 'gpu'"),
    ("run.device=cuda:x", "run.device must be auto, cpu, mps, cuda or cuda:N, got 'cuda:x'"),
    ("data.image_size=0", "data.image_size must be an integer >= 1, got 0"),
    ("data.image_size=-32", "data.image_size must be an integer >= 1, got -32"),
    ("optim.accum_steps=0", "optim.accum_steps must be an integer >= 1, got 0"),
    ("run.dist_timeout=0", "run.dist_timeout must be a finite number of seconds > 0"),
    ("optim.lr=[1", "override 'optim.lr=[1': value is not valid YAML"),
])
def test_impossible_values_are_one_line_and_exit_code_2(override, message, tmp_path, capsys):
    from bimlp.cli import main as cli

    assert cli(["train", f"run.out_dir={tmp_path}", override]) == 2
    assert message in _one_line_error(capsys)
    assert not any(tmp_path.iterdir())  # refused before anything was written


def test_cuda_without_a_gpu_is_a_config_error(tmp_path, capsys):
    from bimlp.cli import main as cli

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert cli(["train", f"run.out_dir={tmp_path}", "run.device=cuda",
                "data.train_limit=10"]) == 2
    assert "run.device=cuda but no CUDA device is available" in _one_line_error(capsys)


def test_bad_yaml_names_the_file_and_line(tmp_path, capsys):
    from bimlp.cli import main as cli

    path = tmp_path / "broken.yaml"
    path.write_text("model:\n  name: bimlp_s\noptim:\n  lr: [1e-3\n  epochs: 3\n")
    assert cli(["train", "--config", str(path)]) == 2
    line = _one_line_error(capsys)
    assert line.startswith(f"bimlp train: {path}:5:") and "not valid YAML" in line


def test_out_dir_that_is_a_file_or_below_one(tmp_path, recipe, capsys):
    from bimlp.cli import main as cli

    afile = tmp_path / "afile"
    afile.write_text("x")
    assert cli(["train", f"run.out_dir={afile}"]) == 2
    assert "is a file" in _one_line_error(capsys)
    with pytest.raises(Exception, match="afile"):  # the API raises the same ConfigError
        train(config_from_dict(recipe(afile / "below")))
    assert afile.read_text() == "x"


def test_unwritable_out_dir(tmp_path, recipe):
    import os

    if os.geteuid() == 0:
        pytest.skip("root writes anywhere")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    from bimlp.train.config import ConfigError

    with pytest.raises(ConfigError, match="cannot write to"):
        train(config_from_dict(recipe(locked / "run")))


# --- evaluation against data with another number of classes ----------------------------------
def test_eval_refuses_a_class_count_mismatch_unless_told(tmp_path, image_folder, capsys):
    import json

    import bimlp
    from bimlp.checkpoint import save_weights
    from bimlp.cli import main as cli
    from bimlp.train.config import ModelConfig
    from bimlp.train.student import weights_metadata

    root = image_folder(tmp_path / "two", classes=2, train=1, val=3)
    model = bimlp.create_model("bimlp_s", depths=(1,), dims=(16,), num_classes=10)
    cfg = ModelConfig(name="bimlp_s", depths=[1], dims=[16], num_classes=10)
    eval_cfg = {"input_size": [3, 16, 16], "crop_pct": 1.0, "interpolation": "bilinear",
                "mean": [0.5] * 3, "std": [0.25] * 3}
    ckpt = tmp_path / "m.safetensors"
    save_weights(model, ckpt, config=weights_metadata(model, cfg, eval_cfg))
    argv = ["eval", "--model", "bimlp_s", "--checkpoint", str(ckpt), "--data-dir", str(root),
            "--workers", "0", "--json", str(tmp_path / "r.json")]
    assert cli(argv) == 2  # was: 0 % and exit code 0
    line = _one_line_error(capsys)
    assert "the model scores 10 classes but the data has 2 (c0, c1)" in line
    assert "--allow-class-mismatch" in line
    assert not (tmp_path / "r.json").exists()
    assert cli([*argv, "--allow-class-mismatch"]) == 0
    assert "scored as the model's outputs 0..1 of 10" in capsys.readouterr().out
    assert json.loads((tmp_path / "r.json").read_text())["images"] == 6
    # more data classes than model outputs can never be scored
    small = bimlp.create_model("bimlp_s", depths=(1,), dims=(16,), num_classes=1)
    save_weights(small, ckpt, config=weights_metadata(
        small, ModelConfig(name="bimlp_s", depths=[1], dims=[16], num_classes=1), eval_cfg))
    assert cli([*argv, "--allow-class-mismatch"]) == 2
    assert "the data has 2 classes (c0, c1) but the model scores only 1" in _one_line_error(capsys)
