"""`bimlp-run` and the example C program, on an artifact written by `bimlp export`."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import bimlp_runtime
from bimlp_runtime.cli import main as run_main

EXAMPLE = Path(__file__).parents[2] / "runtime" / "examples" / "run_model.c"


def example_input(size: int, channels: int = 3) -> np.ndarray:
    """The example program's deterministic image: ((i * 2654435761) mod 2^32 mod 1000) / 500 - 1."""
    i = np.arange(channels * size * size, dtype=np.uint64)
    v = (i * np.uint64(2654435761)) % np.uint64(1 << 32) % np.uint64(1000)
    return (v.astype(np.float32) / np.float32(500.0) - np.float32(1.0)).reshape(1, channels, size, size)


def compile_example(tmp_path: Path) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    lib = bimlp_runtime.library_path()
    exe = tmp_path / "run_model"
    subprocess.run([cc, "-O2", "-std=c99", str(EXAMPLE), f"-I{bimlp_runtime.include_dir()}", f"-L{lib.parent}",
                    "-lbimlp_runtime", f"-Wl,-rpath,{lib.parent}", "-o", str(exe)], check=True)
    return exe


def parse_top(text: str) -> list[tuple[int, float]]:
    return [(int(c), float(v)) for c, v in re.findall(r"top\d class (\d+) logit (\S+)", text)]


def test_c_example_matches_python(small_artifact, tmp_path):
    path, _ = small_artifact
    exe = compile_example(tmp_path)
    res = subprocess.run([str(exe), str(path), "37", "2"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    top = parse_top(res.stdout)
    logits = bimlp_runtime.load(path, threads=2).run(example_input(37))[0]
    want = np.argsort(-logits, kind="stable")[:5]
    assert [c for c, _ in top] == want.tolist()
    assert np.allclose([v for _, v in top], logits[want], atol=1e-5)
    bad = subprocess.run([str(exe), str(tmp_path / "missing.bimlp")], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "missing.bimlp: cannot open" in bad.stderr


def test_cli_on_npy_and_png(small_artifact, tmp_path, capsys):
    path, _ = small_artifact
    x = np.random.default_rng(0).standard_normal((3, 40, 40)).astype(np.float32)
    np.save(tmp_path / "a.npy", x)
    assert run_main([str(path), str(tmp_path / "a.npy"), "--threads", "1", "--repeats", "2"]) == 0
    out = capsys.readouterr().out
    logits = bimlp_runtime.load(path, threads=1).run(x[None])[0]
    best = int(np.argmax(logits))
    assert out.startswith(f"{tmp_path / 'a.npy'}: {best} (")
    assert "median" in out and "ms" in out
    pil = pytest.importorskip("PIL.Image")
    pil.fromarray((np.random.default_rng(1).random((50, 60, 3)) * 255).astype(np.uint8)).save(tmp_path / "b.png")
    assert run_main([str(path), str(tmp_path / "b.png"), "--size", "33", "--repeats", "1"]) == 0
    assert "b.png: " in capsys.readouterr().out


def test_cli_errors(small_artifact, tmp_path, capsys):
    path, _ = small_artifact
    assert run_main([str(tmp_path / "none.bimlp"), "x.npy"]) == 2
    assert "cannot open" in capsys.readouterr().err
    np.save(tmp_path / "bad.npy", np.zeros((5, 8, 8), np.float32))
    assert run_main([str(path), str(tmp_path / "bad.npy")]) == 2
    assert "expected (3, H, W)" in capsys.readouterr().err
    res = subprocess.run([sys.executable, "-m", "bimlp_runtime", "--help"], capture_output=True, text=True)
    assert res.returncode == 0 and "bimlp-run" in res.stdout and "--threads" in res.stdout
