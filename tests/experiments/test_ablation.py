"""experiments/ablation.py end to end on a tiny synthetic idx folder: 2 variants, 1 seed.

The study script is a script, not part of the package, so it runs as a subprocess exactly as a
user runs it. Sizes are minimal (16x16 images, 2 batches per epoch, a two-stage model), so
this checks the plumbing -- teacher first, two steps with distillation, final evaluation,
profile, report files, resume -- not the accuracy.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).resolve().parents[2] / "experiments" / "ablation.py"


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> None:
    """MNIST idx format: 0, 0, type code 0x08 (uint8), ndim, big-endian dims, data."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    raw = header + array.astype(np.uint8).tobytes()
    if compress:
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)


def make_idx_folder(root: Path, n_train: int = 64, n_test: int = 40, size: int = 16) -> Path:
    rng = np.random.default_rng(0)
    root.mkdir()
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 60, size=(n, size, size))
        for i, c in enumerate(labels):  # a bright bar whose row encodes the class
            images[i, c + 2, 2:-2] = 250
        write_idx(root / f"{split}-images-idx3-ubyte", images, compress=split == "train")
        write_idx(root / f"{split}-labels-idx1-ubyte", labels)
    return root


def run_script(out: Path, root: Path) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable, str(SCRIPT), "--out", str(out), "--dataset", "idx", "--root", str(root),
        "--variants", "wavemlp_fp,naive", "--seeds", "1", "--epochs", "1", "--max-steps", "2",
        "--batch-size", "16", "--depths", "1,1", "--dims", "8,16", "--curve-limit", "16",
        "--jobs", "1",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_ablation_end_to_end(tmp_path: Path) -> None:
    root = make_idx_folder(tmp_path / "idx")
    out = tmp_path / "study"
    proc = run_script(out, root)
    assert "2 run(s) to do" in proc.stdout

    results = json.loads((out / "results.json").read_text())
    assert set(results) >= {"study", "input_size", "classes", "teacher", "variants",
                            "float_baselines", "machine"}
    assert results["input_size"] == [1, 16, 16] and results["classes"] == 10
    assert list(results["variants"]) == ["wavemlp_fp", "naive"]
    for name, v in results["variants"].items():
        assert v["seeds"] == [0] and v["missing_seeds"] == []
        assert len(v["top1"]) == 1 and 0.0 <= v["top1_mean"] <= 100.0
        assert v["top1_std"] == 0.0
        assert set(v["profile"]) >= {"params", "binary_params", "bops", "flops", "ops"}
        # binary: 2 steps x 1 epoch; full precision: both steps' budget in one run
        assert len(v["curves"][0]["val_top1"]) == 2
        run = json.loads((out / "runs" / name / "seed0" / "result.json").read_text())
        assert run["test_images"] == 40  # the whole test split, not the curve subset
    naive = results["variants"]["naive"]
    assert naive["profile"]["bops"] > 0 and results["variants"]["wavemlp_fp"]["profile"]["bops"] == 0
    assert (naive["multi_branch"], naive["uni_shortcut"], naive["downsample"]) == (
        False, False, "wavemlp")
    run = json.loads((out / "runs" / "naive" / "seed0" / "result.json").read_text())
    assert [s["step"] for s in run["steps"]] == [1, 2]
    assert run["teacher"].endswith("wavemlp_fp/seed0/step1/model.safetensors")

    table = (out / "results.md").read_text()
    assert table.startswith("| variant | MBB | Uni-shortcut | downsample | top-1 % (mean ± std)")
    for column in ("params", "BOPs", "FLOPs", "OPs"):
        assert f"| {column} |" in table
    assert "naive: naive binary Wave-MLP" in table
    assert (out / "accuracy.png").stat().st_size > 0 and (out / "curves.png").stat().st_size > 0

    # resumable: a second invocation finds every run finished and only rebuilds the report
    again = run_script(out, root)
    assert "0 run(s) to do" in again.stdout
    assert json.loads((out / "results.json").read_text())["variants"]["naive"]["top1"] == naive["top1"]
