"""The one checkpoint path (``bimlp.models._builder``): what a file's configuration may claim,
which weights of a file are meant, and which variant a file builds."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import bimlp
from bimlp.checkpoint import (
    CONFIG_KEY,
    CheckpointError,
    read_safetensors,
    save_weights,
    write_safetensors,
)
from bimlp.models import load_checkpoint, variant_for

TINY = dict(depths=(1, 1, 1, 1), dims=(8, 16, 24, 32), num_classes=3)

# Runs one load in a fresh interpreter and reports its wall time and the growth of its peak
# resident memory over the peak after the imports (VmHWM, reset where the kernel allows it).
_PROBE = textwrap.dedent("""
    import json, sys, time
    import bimlp
    import bimlp.models  # torch, timm and the package itself load before the measurement

    def peak_kb():
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])

    try:
        open("/proc/self/clear_refs", "w").write("5")  # reset the peak to the current size
    except OSError:
        pass
    before = peak_kb()
    start = time.perf_counter()
    try:
        {call}
        error = None
    except bimlp.CheckpointError as e:
        error = str(e)
    print(json.dumps({{"seconds": time.perf_counter() - start, "error": error,
                      "peak_mb": (peak_kb() - before) / 1024}}))
""")


def _probe(call: str, timeout: float = 60.0) -> dict:
    """Run ``call`` in a subprocess; a timeout counts as a failure of the bound."""
    if not Path("/proc/self/status").exists():
        pytest.skip("needs /proc to measure the peak resident memory")
    code = _PROBE.format(call=call)
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=timeout, check=True).stdout
    except subprocess.TimeoutExpired:
        pytest.fail(f"{call}: still running after {timeout:.0f} s")
    return json.loads(out.strip().splitlines()[-1])


def _with_config(src: Path, dst: Path, **changes) -> Path:
    """A copy of one of our safetensors files whose stored configuration claims ``changes``."""
    tensors, meta = read_safetensors(src)
    config = {**json.loads(meta[CONFIG_KEY]), **changes}
    return write_safetensors(tensors, dst, {**meta, CONFIG_KEY: json.dumps(config)})


# --- resource bombs: the file's claims are checked before anything is built ----------------------
@pytest.mark.parametrize(
    "claim, named",
    [
        # the reported bomb: one stage of 3000 BiMLP-S blocks (59 s and 2.2 GB before the fix)
        (dict(depths=[1, 1, 1, 3000], dims=[64, 128, 320, 512]), r"depths \[1, 1, 1, 3000\]"),
        # within the bounds, but far more blocks than the file holds: named before building
        (dict(depths=[1, 1, 1, 60], dims=[64, 128, 320, 512]), r"missing: network\.6\.1\.\*"),
    ],
    ids=["3000-blocks", "60-blocks"],
)
def test_a_configuration_that_claims_a_huge_model_is_refused_fast(tmp_path, claim, named):
    good = save_weights(bimlp.create_model("bimlp_s", **TINY), tmp_path / "tiny.safetensors")
    bomb = _with_config(good, tmp_path / "bomb.safetensors", **claim)
    result = _probe(f"bimlp.create_model('bimlp_s', checkpoint={str(bomb)!r})")
    assert result["error"] is not None, "the bomb was loaded"
    assert "bomb.safetensors" in result["error"]
    assert re.search(named, result["error"]), result["error"]
    assert result["seconds"] < 2.0 and result["peak_mb"] < 500, result


def test_a_wavemlp_file_with_one_far_block_is_refused_fast(data_dir, tmp_path):
    state = torch.load(data_dir / "wavemlp" / "wave_tiny_bn.pth.tar", weights_only=True)
    weights = state["state_dict"]
    weights["network.0.5000.mlp.fc1.weight"] = weights["network.0.0.mlp.fc1.weight"].clone()
    bomb = tmp_path / "far_block.pth"
    torch.save({"state_dict": weights}, bomb)
    result = _probe(f"bimlp.load_wavemlp({str(bomb)!r})")
    assert result["error"] is not None, "the bomb was loaded"
    assert "far_block.pth" in result["error"] and "network.0.5000" in result["error"]
    assert result["seconds"] < 2.0 and result["peak_mb"] < 500, result
    with pytest.raises(CheckpointError, match=r"network\.0\.5000"):
        bimlp.create_model("wavemlp_t", checkpoint=bomb)


@pytest.mark.parametrize(
    "claim, message",
    [
        (dict(depths="abc"), "depths must be a list of integers"),
        (dict(num_classes=10**9), "num_classes must be an integer in 0 .. 100000"),
        (dict(dims=[8, 16, 24, 10**6]), "every dim must lie in 1 .. 4096"),
        (dict(norm="layer"), "norm must be one of"),
    ],
)
def test_bad_stored_fields_name_the_file(tmp_path, claim, message):
    good = save_weights(bimlp.create_model("bimlp_s", **TINY), tmp_path / "tiny.safetensors")
    bad = _with_config(good, tmp_path / "bad.safetensors", **claim)
    with pytest.raises(CheckpointError, match=rf"bad\.safetensors: .*{message}"):
        bimlp.create_model("bimlp_s", checkpoint=bad)


def test_shapes_are_compared_before_the_tensors_are_read(tmp_path, monkeypatch):
    good = save_weights(bimlp.create_model("bimlp_s", **TINY), tmp_path / "tiny.safetensors")
    wrong = _with_config(good, tmp_path / "wrong.safetensors", num_classes=5)

    def no_tensor_reads(*args, **kwargs):
        raise AssertionError("tensors were read before the shapes were checked")

    monkeypatch.setattr("bimlp.convert.read_safetensors", no_tensor_reads)
    with pytest.raises(CheckpointError, match=r"wrong\.safetensors: .*head\.weight: checkpoint"):
        bimlp.create_model("bimlp_s", checkpoint=wrong)


# --- one policy for EMA weights and DDP prefixes -------------------------------------------------
def _timm_layout(model: torch.nn.Module, ema: torch.nn.Module | None) -> dict:
    out = {"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}, "epoch": 3}
    if ema is not None:
        out["state_dict_ema"] = ema.state_dict()
    return out


def test_ema_weights_only_when_asked_for(tmp_path):
    model = bimlp.create_model("wavemlp_t", **TINY)
    ema = bimlp.create_model("wavemlp_t", **TINY)
    path = tmp_path / "run.pth.tar"
    torch.save(_timm_layout(model, ema), path)
    plain = bimlp.create_model("wavemlp_t", checkpoint=path)
    averaged = bimlp.create_model("wavemlp_t", checkpoint=path, use_ema=True)
    for k, v in model.state_dict().items():
        assert torch.equal(plain.state_dict()[k], v)
        assert torch.equal(averaged.state_dict()[k], ema.state_dict()[k])
    # the same policy wherever a checkpoint is loaded into an existing model (init_from, teachers)
    target = bimlp.create_model("wavemlp_t", **TINY)
    load_checkpoint(target, path)
    assert torch.equal(target.head.weight, model.head.weight)


def test_ema_is_never_a_silent_fallback(tmp_path):
    ema = bimlp.create_model("wavemlp_t", **TINY)
    only_ema = tmp_path / "only_ema.pth"
    torch.save({"state_dict_ema": ema.state_dict()}, only_ema)
    with pytest.raises(CheckpointError, match="only_ema.pth: neither a state dict"):
        load_checkpoint(bimlp.create_model("wavemlp_t", **TINY), only_ema)
    no_ema = tmp_path / "no_ema.pth"
    torch.save(_timm_layout(ema, None), no_ema)
    with pytest.raises(CheckpointError, match="no_ema.pth: EMA weights were asked for"):
        bimlp.create_model("wavemlp_t", checkpoint=no_ema, use_ema=True)
    ours = save_weights(ema, tmp_path / "w.safetensors")
    with pytest.raises(CheckpointError, match="one set of weights"):
        bimlp.create_model("wavemlp_t", checkpoint=ours, use_ema=True)


def test_our_training_checkpoint_gives_weights_ema_and_architecture(tmp_path):
    from bimlp.train.state import TRAIN_FORMAT, atomic_torch_save

    model = bimlp.create_model("bimlp_s", **TINY)
    ema = bimlp.create_model("bimlp_s", **TINY)
    atomic_torch_save({
        "format": TRAIN_FORMAT, "epoch": 1, "model": model.state_dict(), "ema": ema.state_dict(),
        "config": {"model": {"name": "bimlp_s", "depths": [1, 1, 1, 1], "dims": [8, 16, 24, 32],
                             "num_classes": 3, "extra": {}, "init_from": None}},
    }, tmp_path / "last.pt")
    again = bimlp.create_model("bimlp_s", checkpoint=tmp_path / "last.pt")  # config from the file
    assert again.config.dims == (8, 16, 24, 32)
    assert torch.equal(again.head.weight, model.head.weight)
    averaged = bimlp.create_model("bimlp_s", checkpoint=tmp_path / "last.pt", use_ema=True)
    assert torch.equal(averaged.head.weight, ema.head.weight)


# --- the right variant ---------------------------------------------------------------------------
def test_variant_for_picks_the_registered_variant_a_configuration_describes():
    m = dict(depths=[2, 3, 10, 3], dims=[64, 128, 320, 512], mlp_ratios=[4.0] * 4, norm="group")
    assert variant_for("bimlp", m) == "bimlp_m"
    assert variant_for("bimlp", {**m, "norm": "batch"}) == "bimlp_s"  # no match: the first
    assert variant_for("bimlp", dict(depths=[2, 2, 4, 2], mlp_ratios=4)) == "bimlp_s"
    assert variant_for("wavemlp", dict(depths=[3, 4, 18, 3], mlp_ratios=[8, 8, 4, 4],
                                       norm="group", downsample_norm=False)) == "wavemlp_m"


def test_convert_names_the_variant_to_load(data_dir, tmp_path, capsys, monkeypatch):
    import bimlp.models as models
    from bimlp.cli import main as cli

    monkeypatch.setattr(models, "variant_for", lambda family, config: "bimlp_m")
    out = tmp_path / "c.safetensors"
    assert cli(["convert", str(data_dir / "official" / "tiny_gn.ckpt"), "-o", str(out)]) == 0
    assert "bimlp.create_model('bimlp_m'" in capsys.readouterr().out


def test_a_safetensors_header_length_starting_with_0x80_is_still_safetensors(tmp_path):
    from bimlp.checkpoint import sniff_format

    state = {"w": torch.zeros(2)}
    for pad in range(256):  # some metadata length makes the first byte of the header size 0x80
        path = write_safetensors(state, tmp_path / "w.safetensors", {"pad": "x" * pad})
        if path.read_bytes()[0] == 0x80:
            break
    else:
        pytest.fail("no header length with a 0x80 first byte was produced")
    assert sniff_format(path) == "safetensors"
    assert torch.equal(bimlp.convert.open_checkpoint(path).state_dict()["w"], state["w"])
