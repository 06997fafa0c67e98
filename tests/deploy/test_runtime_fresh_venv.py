"""The runtime installs and runs without PyTorch: a fresh virtual environment (no system site
packages), `pip install ./runtime`, then an artifact written by `bimlp export` runs from Python,
from `bimlp-run` and from the example C program. About 20 s when runtime/build holds the build
of the README's set-up command, about 80 s from scratch."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from deploy_helpers import SMALL, conditioned_model
from test_runtime_cli import EXAMPLE, example_input, parse_top

import bimlp_runtime
from bimlp.checkpoint import save_weights
from bimlp.cli import main as bimlp_main

RUNTIME = Path(__file__).parents[2] / "runtime"


def test_fresh_venv_without_torch(tmp_path):
    model = conditioned_model(calib_size=33, **SMALL)
    ckpt = save_weights(model, tmp_path / "small.safetensors")
    art = tmp_path / "small.bimlp"
    assert bimlp_main(["export", "--model", "bimlp_s", "--checkpoint", str(ckpt), "-o", str(art)]) == 0
    x = np.random.default_rng(0).standard_normal((2, 3, 33, 33)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    expected = bimlp_runtime.load(art, threads=1).run(x)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py, env = venv / "bin" / "python", {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([str(py), "-m", "pip", "install", "-q", str(RUNTIME)], check=True, timeout=600, env=env)

    script = (
        "import sys, numpy as np, bimlp_runtime\n"
        "assert 'torch' not in sys.modules\n"
        "try:\n    import torch\nexcept ImportError:\n    pass\nelse:\n    raise SystemExit('torch is importable')\n"
        f"m = bimlp_runtime.load({str(art)!r}, threads=1)\n"
        f"np.save({str(tmp_path / 'out.npy')!r}, m.run(np.load({str(tmp_path / 'x.npy')!r})))\n"
        "print(bimlp_runtime.library_path())\n"
    )
    res = subprocess.run([str(py), "-c", script], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert np.array_equal(np.load(tmp_path / "out.npy"), expected)
    lib = Path(res.stdout.strip().splitlines()[-1])
    assert str(lib).startswith(str(venv))

    cli = subprocess.run([str(venv / "bin" / "bimlp-run"), str(art), str(tmp_path / "x.npy"), "--repeats", "1"],
                         capture_output=True, text=True, timeout=120, env=env)
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.startswith(f"{tmp_path / 'x.npy'}[0]: {int(expected[0].argmax())} (")

    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler for the example")
    exe = tmp_path / "run_model"
    subprocess.run([cc, "-O2", "-std=c99", str(EXAMPLE), f"-I{lib.parent / 'include'}", f"-L{lib.parent}",
                    "-lbimlp_runtime", f"-Wl,-rpath,{lib.parent}", "-o", str(exe)], check=True, timeout=120)
    res = subprocess.run([str(exe), str(art), "33", "1"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    logits = bimlp_runtime.load(art, threads=1).run(example_input(33))[0]
    assert [c for c, _ in parse_top(res.stdout)] == np.argsort(-logits, kind="stable")[:5].tolist()
