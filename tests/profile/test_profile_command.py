"""``bimlp profile NAME``: the printed report, the JSON file and the PNG chart."""

from __future__ import annotations

import json

import pytest

import bimlp
from bimlp.cli import main

INT_KEYS = ("params", "binary_params", "bops", "flops", "size_bytes_fp32", "size_bytes_packed")


def test_profile_bimlp_s_prints_tables_and_writes_json_and_png(tmp_path, capsys):
    out_json, out_png = tmp_path / "s.json", tmp_path / "plots" / "s.png"
    assert main(["profile", "bimlp_s", "--json", str(out_json), "--plot", str(out_png)]) == 0
    text = capsys.readouterr().out

    data = json.loads(out_json.read_text())
    for key in INT_KEYS:
        assert isinstance(data[key], int), key
    assert isinstance(data["ops"], float)
    assert data["bops"] == pytest.approx(2.242e9, rel=5e-3)
    assert data["flops"] == pytest.approx(1.199e8, rel=5e-3)
    assert data["ops"] == pytest.approx(1.550e8, rel=5e-3)
    assert data["ops"] == data["flops"] + data["bops"] / 64
    assert (data["model"], data["mode"], data["input_size"]) == ("bimlp_s", "paper", [3, 224, 224])
    assert sum(layer["params"] for layer in data["layers"]) == data["params"]
    assert [s["name"] for s in data["stages"]][:3] == ["patch_embed", "network.0", "network.1"]

    # the report: layer table, stage table, totals
    assert "network.4.3.mlp.fc2" in text and "BinaryConv2d" in text
    assert "stages" in text and "4 x BiMLPBlock" in text and "PoolDownsample" in text
    assert f"BOPs        {data['bops']:.3e}" in text
    assert f"OPs         {data['ops']:.3e}  (FLOPs + BOPs / 64)" in text
    assert f"binary {data['binary_params']:,}" in text
    assert "compression" in text

    png = out_png.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    from matplotlib.image import imread

    height, width = imread(out_png).shape[:2]
    assert width > 600 and height > 300


def test_official_mode_output_says_ternary_macs_are_flops(tmp_path, capsys):
    out_json = tmp_path / "o.json"
    args = [
        "profile",
        "bimlp_s",
        "--mode",
        "official",
        "--img-size",
        "64",
        "--json",
        str(out_json),
    ]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "bimlp_s (official mode) at input 3x64x64" in text
    assert "2-bit inputs (ternary activations) are counted as FLOPs" in text
    data = json.loads(out_json.read_text())
    assert data["bops"] == 0 and data["input_size"] == [3, 64, 64]
    model = bimlp.create_model("bimlp_s", mode="official")
    assert data["flops"] == bimlp.profile(model, (3, 64, 64)).flops


def test_all_layers_lists_norms_and_biases(capsys):
    assert main(["profile", "bimlp_s", "--img-size", "32", "--all-layers"]) == 0
    table = capsys.readouterr().out.split("\nstages\n")[0]
    assert "network.0.0.attn.move_fch" in table and "BatchNorm2d" in table
    assert "--all-layers lists them" not in table


def test_unknown_model_is_an_error(capsys):
    assert main(["profile", "no_such_model"]) == 2
    assert "unknown model" in capsys.readouterr().err
