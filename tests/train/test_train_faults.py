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
