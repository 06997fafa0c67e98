"""``bimlp-run MODEL.bimlp IMAGE...``: top-5 classes of each image and the timing of the run.

Images: ``.npy`` arrays (C, H, W) or (B, C, H, W), float32, already normalized; PNG / JPEG (and
whatever Pillow opens, when Pillow is installed) are resized to ``--size`` (shorter side to
size / crop_pct, then a center crop), scaled to [0, 1] and normalized with ``--mean`` / ``--std``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from . import ArtifactError, load

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def read_image(path: Path, channels: int, size: int, mean, std, crop_pct: float) -> np.ndarray:
    """(B, C, H, W) float32 of one file."""
    if path.suffix.lower() == ".npy":
        x = np.load(path, allow_pickle=False)
        if x.ndim == 3:
            x = x[None]
        if x.ndim != 4 or x.shape[1] != channels:
            raise ValueError(f"{path}: array of shape {x.shape}, expected ({channels}, H, W) or (B, {channels}, H, W)")
        return np.ascontiguousarray(x, dtype=np.float32)
    try:
        from PIL import Image
    except ImportError as e:
        raise ValueError(f"{path}: reading images other than .npy needs Pillow (pip install pillow)") from e
    try:
        with Image.open(path) as im:
            im = im.convert("L" if channels == 1 else "RGB")
            scale = size / crop_pct / min(im.size)
            im = im.resize((max(size, round(im.size[0] * scale)), max(size, round(im.size[1] * scale))),
                           Image.BILINEAR)
            left, top = (im.size[0] - size) // 2, (im.size[1] - size) // 2
            im = im.crop((left, top, left + size, top + size))
            a = np.asarray(im, dtype=np.float32) / 255.0
    except OSError as e:
        raise ValueError(f"{path}: cannot read the image ({e})") from e
    a = a[:, :, None] if a.ndim == 2 else a
    if len(mean) != channels or len(std) != channels:
        raise ValueError(f"--mean/--std need {channels} values")
    a = (a - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(a.transpose(2, 0, 1)[None], dtype=np.float32)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bimlp-run", description="Classify images with a .bimlp model "
                                "(the standalone 1-bit runtime): top-k classes and timing.")
    p.add_argument("model", help="the .bimlp artifact (bimlp export)")
    p.add_argument("images", nargs="+", help=".npy arrays or image files")
    p.add_argument("--threads", type=int, default=None, help="threads per call (default: all cores)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs of the whole batch (median reported)")
    p.add_argument("--top", type=int, default=5, help="classes to print per image (default 5)")
    p.add_argument("--size", type=int, default=224, help="image files: input size (default 224)")
    p.add_argument("--crop-pct", type=float, default=0.875, help="image files: center-crop fraction")
    p.add_argument("--mean", type=float, nargs="+", default=None, help="image files: per-channel mean")
    p.add_argument("--std", type=float, nargs="+", default=None, help="image files: per-channel std")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        model = load(args.model, threads=args.threads)
    except (ArtifactError, ValueError) as e:
        print(f"bimlp-run: {e}", file=sys.stderr)
        return 2
    c = model.in_channels
    mean = args.mean or (IMAGENET_MEAN if c == 3 else (0.5,) * c)
    std = args.std or (IMAGENET_STD if c == 3 else (0.5,) * c)
    try:
        batches = [(Path(p), read_image(Path(p), c, args.size, mean, std, args.crop_pct)) for p in args.images]
        shapes = {b.shape[1:] for _, b in batches}
        if len(shapes) != 1:
            raise ValueError(f"all inputs need the same (C, H, W); got {sorted(shapes)}")
        x = np.concatenate([b for _, b in batches])
        logits = model.run(x)
    except ValueError as e:
        print(f"bimlp-run: {e}", file=sys.stderr)
        return 2
    times = []
    for _ in range(max(args.repeats, 1)):
        t0 = time.perf_counter()
        model.run(x)
        times.append(time.perf_counter() - t0)
    row = 0
    for path, b in batches:
        for i in range(b.shape[0]):
            z = logits[row].astype(np.float64)
            prob = np.exp(z - z.max())
            prob /= prob.sum()
            top = np.argsort(-z, kind="stable")[: args.top]
            label = f"{path}" + (f"[{i}]" if b.shape[0] > 1 else "")
            print(label + ": " + ", ".join(f"{k} ({prob[k]:.3f}, logit {z[k]:.4f})" for k in top))
            row += 1
    med = statistics.median(times)
    print(f"{model.name}: batch {x.shape[0]} at {x.shape[2]}x{x.shape[3]}, {model.threads} threads, "
          f"isa {model.isa}: median {med * 1e3:.2f} ms over {len(times)} runs "
          f"({med * 1e3 / x.shape[0]:.2f} ms per image)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
