"""Artifacts for test_aarch64.sh: small models written by ``bimlp export``.

    python make_check_artifacts.py OUT_DIR      (needs torch and bimlp; prints "NAME B H W" lines)

Paper mode: one random-init registered model through the CLI, two conditioned models (random
non-trivial biases, slopes and norm statistics, odd sizes, both outer norms) and one with Wave-MLP
downsampling through ``bimlp.deploy.export``; a small ReActNet (binary 3x3 convs, strides 1 and
2, duplicated 1x1 convs). Official (ternary) mode: the two official fixtures
of tests/data/official (released MindSpore code), one through the CLI, one through
``bimlp.load_official``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

import bimlp
from bimlp.deploy import export


def conditioned(seed: int, **kwargs) -> torch.nn.Module:
    return condition(bimlp.create_model("bimlp_s", **kwargs), seed)


def condition(m: torch.nn.Module, seed: int) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if p.dim() == 1:
                base = 1.0 if name.endswith(".weight") else 0.0
                p.copy_(base + torch.randn(p.shape, generator=g) * 0.1)
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.momentum = None
                mod.reset_running_stats()
        m.train()
        m(torch.randn(4, m.config.in_chans, 32, 32, generator=g))
    return m.eval()


def main() -> int:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "bimlp.cli", "export", "--model", "bimlp_xs", "-o",
                    str(out / "bimlp_xs.bimlp")], check=True, stdout=subprocess.DEVNULL)
    print("bimlp_xs.bimlp 2 32 32")
    export(conditioned(1, depths=(1, 1, 1, 1), dims=(16, 32, 48, 64), num_classes=10), out / "small.bimlp")
    print("small.bimlp 2 33 29")
    export(conditioned(2, depths=(1, 1, 2, 1), dims=(24, 40, 72, 100), mlp_ratios=3, num_classes=7,
                       norm="group"), out / "odd.bimlp")
    print("odd.bimlp 1 40 36")
    export(conditioned(3, depths=(1, 1, 1), dims=(16, 32, 40), num_classes=5, downsample="wavemlp"),
           out / "wavemlp.bimlp")
    print("wavemlp.bimlp 2 31 35")
    react = bimlp.create_model("reactnet_a_xs", num_classes=6, stem_dim=8, dims=(16, 16, 32, 64, 64),
                               strides=(1, 2, 2, 2, 1))
    export(condition(react, 4), out / "reactnet.bimlp")
    print("reactnet.bimlp 2 13 11")
    fixtures = Path(__file__).resolve().parents[2] / "tests" / "data" / "official"
    subprocess.run([sys.executable, "-m", "bimlp.cli", "export", "--model", "bimlp_s", "--checkpoint",
                    str(fixtures / "tiny_bn.ckpt"), "-o", str(out / "official_bn.bimlp")], check=True,
                   stdout=subprocess.DEVNULL)
    print("official_bn.bimlp 2 64 64")
    export(bimlp.load_official(fixtures / "tiny_gn.ckpt"), out / "official_gn.bimlp")
    print("official_gn.bimlp 1 45 70")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
