"""How far did chosen weights turn during a two-step run, from their initial values?

A check of the downsampling-rate probe's mechanism (docs/RESULTS.md): a convolution followed by
BatchNorm computes the same function at any scale of its weights, so what training changes is
their direction, and under Adam the angle it turns per step scales as lr / |w|. This rebuilds a
run's initial weights from its step-1 ``config.yaml`` (the trainer seeds ``run.seed`` right before
it builds the model, so the same seed and model config give the same tensors), reads the weights
at the end of step 1 and step 2, and prints, per parameter that matches ``--pattern``, its RMS
per element at the start and the end and the angle between the flattened tensors (degrees): start
-> step 1, step 1 -> step 2, start -> step 2.

    python experiments/weight_turn.py RUN_DIR [RUN_DIR ...] [--pattern GLOB] [--json PATH]

RUN_DIR is a run's folder with ``step1/`` (and ``step2/``): ``WORK/runs/VARIANT/seedS`` of
experiments/ablation.py. Only safetensors and YAML are read.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import math
from pathlib import Path
from typing import Any

import torch

from bimlp.checkpoint import read_safetensors
from bimlp.train.config import load_config
from bimlp.train.engine import seed_everything
from bimlp.train.student import build_student


def initial_state(step1: Path) -> dict[str, torch.Tensor]:
    """The weights a run started from, rebuilt from its step-1 config and seed."""
    cfg = load_config(step1 / "config.yaml")
    seed_everything(cfg.run.seed)
    model = build_student(cfg.model, cfg.model.num_classes, cfg.model.in_chans)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def angle(a: torch.Tensor, b: torch.Tensor) -> float:
    """Degrees between two tensors seen as vectors (float64)."""
    a, b = a.double().flatten(), b.double().flatten()
    cos = float(a @ b / (a.norm() * b.norm()))
    return math.degrees(math.acos(max(-1.0, min(1.0, cos))))


def rms(t: torch.Tensor) -> float:
    return float(t.double().pow(2).mean().sqrt())


def turns(run: Path, pattern: str) -> list[dict[str, Any]]:
    step1, step2 = run / "step1", run / "step2"
    for f in (step1 / "config.yaml", step1 / "model.safetensors"):
        if not f.is_file():
            raise SystemExit(f"{run}: {f.name} missing in {f.parent} (not a finished step 1)")
    start = initial_state(step1)
    end1, _ = read_safetensors(step1 / "model.safetensors")
    end2 = read_safetensors(step2 / "model.safetensors")[0] if (
        step2 / "model.safetensors").is_file() else None
    names = sorted(n for n in end1 if fnmatch.fnmatchcase(n, pattern))
    if not names:
        raise SystemExit(f"{run}: no weight matches {pattern!r}")
    rows = []
    for n in names:
        if n not in start or start[n].shape != end1[n].shape:
            raise SystemExit(f"{run}: {n} is not in the rebuilt initial model, or has another "
                             f"shape there; the config does not describe these weights")
        row = {"run": str(run), "name": n, "shape": list(end1[n].shape),
               "rms_start": rms(start[n]), "rms_step1": rms(end1[n]),
               "turn_start_step1": angle(start[n], end1[n])}
        if end2 is not None and n in end2:
            row.update(rms_step2=rms(end2[n]), turn_step1_step2=angle(end1[n], end2[n]),
                       turn_start_step2=angle(start[n], end2[n]))
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--pattern", default="network.[135].proj.weight",
                   help="glob over parameter names (default: the three downsampling convs)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    rows = [r for run in args.runs for r in turns(run, args.pattern)]
    print("| run | weight | shape | RMS start | RMS end | turn, step 1 (deg) | turn, step 2 | "
          "turn, start -> end |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        end = r.get("rms_step2", r["rms_step1"])
        print(f"| {r['run']} | {r['name']} | {'x'.join(map(str, r['shape']))} | "
              f"{r['rms_start']:.4f} | {end:.4f} | {r['turn_start_step1']:.1f} | "
              f"{r.get('turn_step1_step2', float('nan')):.1f} | "
              f"{r.get('turn_start_step2', float('nan')):.1f} |")
    if args.json:
        args.json.write_text(json.dumps({"pattern": args.pattern, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
