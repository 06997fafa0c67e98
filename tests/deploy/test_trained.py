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
        return model(x), pack_model(model)(x), labels, model, x


def test_packed_engine_keeps_every_prediction_of_a_trained_model(trained_outputs):
    ref, out, labels, _, _ = trained_outputs
    assert torch.equal(out.argmax(1), ref.argmax(1))
    acc = (out.argmax(1) == labels).float().mean().item()
    assert acc == (ref.argmax(1) == labels).float().mean().item() and acc > 0.95
    cos = F.cosine_similarity(out, ref, dim=1)
    assert (cos >= 0.99999).sum().item() >= len(cos) - 1


def test_every_per_sample_mismatch_is_a_float32_tie_that_pytorch_also_flips(trained_outputs):
    """Held-out digit 178 gives cosine 0.997 against the default PyTorch forward: one activation
    sign in the last stage is decided by a value within about 1 float32 ulp of zero
    (|x * bn_scale + shift + b| ~ 2e-7 with terms ~1.8), so any valid summation order may flip it.
    The same PyTorch model in channels_last memory layout flips it the same way as the packed
    engine. Every sample below 0.99999 must be such a case: reproduced by PyTorch itself in
    another memory layout (batch 1), else it is a defect of the packed engine."""
    import copy

    ref, out, _, model, x = trained_outputs
    cos = F.cosine_similarity(out, ref, dim=1)
    bad = (cos < 0.99999).nonzero().flatten().tolist()
    assert len(bad) <= 1, f"samples {bad} differ"
    cl = copy.deepcopy(model).to(memory_format=torch.channels_last)
    for i in bad:
        with torch.no_grad():
            other = cl(x[i:i + 1].contiguous(memory_format=torch.channels_last))
        assert F.cosine_similarity(out[i:i + 1], other).item() >= 0.99999, f"sample {i}: not a tie"
