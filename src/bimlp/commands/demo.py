"""``bimlp demo``: build a model, run one batch through it and print its size."""

from __future__ import annotations

import argparse
import time

from . import add_alias


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="bimlp_s", help="registered model name")
    parser.add_argument("--mode", default="paper", choices=("paper", "official"))
    parser.add_argument("--img-size", type=int, default=224, metavar="N")
    add_alias(parser, "--input-size", dest="img_size", type=int)
    parser.add_argument("-b", "--batch-size", type=int, default=2, metavar="N")
    add_alias(parser, "--batch", dest="batch_size", type=int)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..models import create_model

    torch.manual_seed(0)
    kwargs = {"mode": args.mode} if args.model.startswith("bimlp") else {}
    model = create_model(args.model, **kwargs).eval()
    x = torch.randn(args.batch_size, 3, args.img_size, args.img_size)
    start = time.perf_counter()
    with torch.inference_mode():
        logits = model(x)
    ms = (time.perf_counter() - start) * 1e3
    params = sum(p.numel() for p in model.parameters())
    stats = sum(b.numel() for n, b in model.named_buffers() if n.endswith(("running_mean", "running_var")))
    print(f"{args.model} ({args.mode} mode): {params:,} trainable parameters "
          f"({params / 1e6:.2f} M; {params + stats:,} with BatchNorm statistics)")
    print(f"input {tuple(x.shape)} -> logits {tuple(logits.shape)} in {ms:.0f} ms (float32 PyTorch)")
    return 0
