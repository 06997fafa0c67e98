"""The runtime on aarch64: runtime/scripts/test_aarch64.sh cross-compiles it, runs the kernels and
three exported artifacts under qemu-aarch64 (portable and NEON tables) and requires the logits to
be bit-identical to the x86 build (portable, AVX2, AVX-512). About 3 minutes on 2 busy cores
(mostly the two builds), hence slow."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "runtime" / "scripts" / "test_aarch64.sh"


@pytest.mark.slow
def test_aarch64_build_is_bit_identical_to_x86():
    missing = [t for t in ("aarch64-linux-gnu-g++", "qemu-aarch64", "cmake") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (runtime/scripts/test_aarch64.sh installs them with apt-get)")
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = dict(os.environ, PYTHON=sys.executable,
               PYTHONPATH=os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    env.pop("BIMLP_ISA", None)
    proc = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=1200)
    lines = proc.stdout.strip().splitlines()
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert lines[-1].startswith("test_aarch64: PASS: 3 artifacts"), lines[-1]
    assert "0 mismatches" in lines[-1] and "portable neon" in lines[-1], lines[-1]
