"""Does a trained network's accuracy change when its BatchNorm statistics are recomputed?

A check from the study's probe: after a very short step 2, the running statistics of the
BatchNorms still hold part of step 1's, so evaluation can fall while training accuracy rises.
This recomputes them as a cumulative average over the training images (forward passes in
training mode, no gradient, nothing else changed) and evaluates before and after.

    python experiments/bn_check.py MODEL WEIGHTS IDX_ROOT [--train-limit N] [--image-size 32]
"""

from __future__ import annotations

import argparse

import torch
from torch.utils.data import DataLoader

import bimlp
from bimlp.data import build_datasets, collate_skipping
from bimlp.train.config import DataConfig
from bimlp.train.evaluation import evaluate


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("weights")
    p.add_argument("root", help="idx folder: statistics from its training split, top-1 on its test")
    p.add_argument("--train-limit", type=int, default=2000)
    p.add_argument("--image-size", type=int, default=32)
    args = p.parse_args()
    torch.manual_seed(0)
    data = DataConfig(dataset="idx", root=args.root, image_size=args.image_size, batch_size=128,
                      train_limit=args.train_limit, augment=False)
    bundle = build_datasets(data, {})
    model = bimlp.create_model(args.model, checkpoint=args.weights)
    val = DataLoader(bundle.val, batch_size=500, collate_fn=collate_skipping)
    cpu = torch.device("cpu")
    print(f"as trained: top-1 {evaluate(model, val, cpu)['top1']:.2f}%")
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over every batch below
    model.train()
    with torch.no_grad():
        for batch in DataLoader(bundle.train, batch_size=128, collate_fn=collate_skipping):
            model(batch.images)
    print(f"statistics recomputed on {len(bundle.train)} training images: "
          f"top-1 {evaluate(model, val, cpu)['top1']:.2f}%")


if __name__ == "__main__":
    main()
