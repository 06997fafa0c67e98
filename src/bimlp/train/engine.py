"""The training loop: one process or many (torchrun), resumable to the bit.

:func:`train` runs a :class:`~bimlp.train.config.TrainConfig` to the end and returns what it
measured. Every epoch it evaluates on the held-out split and writes (rank 0 only, atomically)
``last.pt`` -- everything needed to continue -- plus ``metrics.csv``; at the end it writes the
weights as ``model.safetensors`` (with the model configuration and the evaluation pipeline in
the metadata, for ``bimlp eval`` and for step 2's ``model.init_from``) and ``curves.png``.
``best.safetensors`` (same format) holds the weights of the epoch with the best validation top-1
so far (``best_top1`` / ``best_epoch`` in ``metrics.csv``); ``train.log`` every message.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from ..checkpoint import CheckpointError, load_state_dict_strict, save_weights
from ..data import (
    Batch,
    DataBundle,
    DeviceBatchLoader,
    GlobalBatchSampler,
    SeededDataset,
    ShardedEvalSampler,
    build_datasets,
    collate_skipping,
)
from ..files import stale_temp_files
from ..models import load_checkpoint
from .amp import amp_dtype, autocast
from .config import (
    ConfigError,
    TrainConfig,
    config_to_dict,
    save_config,
    validate_config,
)
from .distill import Criterion, load_teacher
from .distributed import (
    DistEnv,
    all_reduce_sum,
    barrier,
    collective_timeouts,
    setup_distributed,
    teardown_distributed,
)
from .ema import ModelEma
from .evaluation import evaluate
from .metrics import TensorBoardLogger, plot_curves, write_csv
from .optim import build_optimizer, build_scheduler, scaled_lr
from .skips import SkipLog
from .state import (
    TRAIN_FORMAT,
    atomic_torch_save,
    check_run_folder,
    load_training_checkpoint,
    rng_state,
    set_rng_state,
)
from .student import build_student, model_default_cfg, weights_metadata

__all__ = ["TrainResult", "Trainer", "train"]

log = logging.getLogger("bimlp.train")  # rank 0's messages; train.log in the run folder


def compile_teacher(teacher: nn.Module, device: torch.device) -> nn.Module:
    """The frozen teacher through ``torch.compile`` where that pays: on a GPU, where its eager
    forward costs about as much as the student's whole step. On the CPU it stays eager: there its
    forward is ~12 % of a binary student's step, and compiling it added 34 generated kernels and
    16 s to the first step of the study's BiMLP (107 s against 91 s) for a step no faster within
    noise (472 against 459 ms; docs/RESULTS.md)."""
    return torch.compile(teacher) if device.type == "cuda" else teacher


@dataclass
class TrainResult:
    out_dir: Path
    history: list[dict[str, Any]]  # one row per epoch (what metrics.csv holds)
    final: dict[str, Any]  # the last row
    weights: Path | None  # model.safetensors (rank 0)
    skipped: list[str] = field(default_factory=list)  # undecodable images


def enable_fast_path(model: nn.Module, echo: Callable[[str], None]) -> None:
    """``run.fast_path``: the model's fast path where it has one (this project's families)."""
    if hasattr(model, "set_fast_path"):
        model.set_fast_path()
    else:
        echo(f"run.fast_path: {type(model).__name__} has no fast path; it runs as it is")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Trainer:
    """Builds everything a recipe needs, then runs epochs; used through :func:`train`."""

    def __init__(self, cfg: TrainConfig, env: DistEnv, echo: Callable[[str], None]) -> None:
        self.cfg, self.env, self.echo = cfg, env, echo
        self.device = env.device
        self.out_dir = Path(cfg.run.out_dir)
        self.amp_dtype = amp_dtype(cfg.run.amp, self.device)
        if cfg.run.threads:
            torch.set_num_threads(cfg.run.threads)
        if cfg.run.deterministic and self.device.type == "cuda":
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False

        seed_everything(cfg.run.seed)
        self.data: DataBundle = build_datasets(cfg.data, model_default_cfg(cfg.model.name))
        # Resolve what the data decides, so the saved config says it.
        cfg = self.cfg = dataclasses.replace(cfg, model=dataclasses.replace(
            cfg.model,
            num_classes=cfg.model.num_classes or self.data.num_classes,
            in_chans=cfg.model.in_chans or self.data.in_chans,
        ))
        seed_everything(cfg.run.seed)  # identical initial weights on every process
        model = build_student(cfg.model, self.data.num_classes, self.data.in_chans)
        if cfg.model.init_from:
            # Step 2 starts from step 1: same parameter names, so the load is strict.
            load_checkpoint(model, cfg.model.init_from)
        model.to(self.device)
        if cfg.run.fast_path:
            enable_fast_path(model, self.echo)
        if cfg.model.sync_bn:
            if env.distributed and self.device.type == "cuda":
                model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            else:
                self.echo("model.sync_bn ignored: it needs GPUs under torchrun")
        self.model = model
        self.ema = ModelEma(model, cfg.run.ema_decay) if cfg.run.ema_decay else None
        seed_everything(cfg.run.seed + env.rank)  # own dropout / drop-path stream per process

        self._build_loaders()
        self.global_batch = self.sampler.global_batch
        self.optimizer = build_optimizer(model, cfg.optim, self.global_batch,
                                         fused=cfg.run.fast_path)
        self.scheduler = build_scheduler(self.optimizer, cfg.optim, self.sampler.steps)
        fp16 = self.amp_dtype == torch.float16
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=fp16)
        self.ddp = DistributedDataParallel(model) if env.distributed else None
        forward: nn.Module = model if self.ddp is None else self.ddp
        self.forward_model = torch.compile(forward) if cfg.run.compile else forward
        teacher = load_teacher(cfg.distill, self.device)
        if teacher is not None and cfg.run.fast_path:
            enable_fast_path(teacher, self.echo)
        if teacher is not None and cfg.run.compile:
            teacher = compile_teacher(teacher, self.device)
        self.criterion = Criterion(teacher, cfg.distill.label_weight, cfg.distill.label_smoothing)
        self.history: list[dict[str, Any]] = []
        self.skips = SkipLog()
        self.start_epoch = 0
        # a checkpoint written inside an epoch: micro-batches done and this process's sums so far
        self.start_step = 0
        self.partial: dict[str, float] | None = None

    def _build_loaders(self) -> None:
        cfg, env = self.cfg, self.env
        self.sampler = GlobalBatchSampler(
            len(self.data.train), cfg.data.batch_size, world=env.world, rank=env.rank,
            accum=cfg.optim.accum_steps, seed=cfg.run.seed,
        )
        common = dict(
            num_workers=cfg.data.workers, collate_fn=collate_skipping,
            pin_memory=self.device.type == "cuda", persistent_workers=cfg.data.workers > 0,
        )
        eval_batch = cfg.data.eval_batch_size or 2 * cfg.data.batch_size
        eval_sampler = ShardedEvalSampler(len(self.data.val), eval_batch, env.world, env.rank)
        if cfg.data.loader == "batches":  # images on the device, whole batches augmented there
            self.train_loader = DeviceBatchLoader(self.data.train, self.sampler, self.device)
            self.val_loader = DeviceBatchLoader(self.data.val, eval_sampler, self.device)
            return
        self.train_loader = DataLoader(
            SeededDataset(self.data.train), batch_sampler=self.sampler, **common
        )
        self.val_loader = DataLoader(self.data.val, batch_sampler=eval_sampler, **common)

    # --- checkpoints -----------------------------------------------------------------------
    def _gather(self, mine: Any) -> list[Any]:
        """Every process's ``mine``, in rank order (a collective under torchrun)."""
        if not self.env.distributed:
            return [mine]
        everyone: list[Any] = [None] * self.env.world
        dist.all_gather_object(everyone, mine)
        return everyone

    def save_checkpoint(self, epoch: int, step: int = 0,
                        partial: dict[str, float] | None = None) -> None:
        """``last.pt`` after ``epoch`` epochs and ``step`` micro-batches of the next one (with
        ``partial``, this process's running sums of that epoch)."""
        rngs = self._gather(rng_state())  # collective: every process takes part
        partials = self._gather(partial) if step else None
        if not self.env.is_main:
            return
        atomic_torch_save({
            "format": TRAIN_FORMAT,
            "epoch": epoch,
            "step": step,
            "partial": partials,
            "config": config_to_dict(self.cfg),
            "eval_cfg": self.data.eval_cfg,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "ema": self.ema.state_dict() if self.ema else None,
            "rng": rngs,
            "history": self.history,
            "skipped": sorted(self.skips.paths),
        }, self.out_dir / "last.pt")

    def restore(self, path: str | Path) -> None:
        ckpt = load_training_checkpoint(path)
        step, partials = self._resume_point(path, ckpt)  # before anything is loaded
        differences = _config_differences(ckpt["config"], config_to_dict(self.cfg))
        if differences:
            self.echo(f"resuming {path} with a changed config: {', '.join(differences)}")
        load_state_dict_strict(self.model, ckpt["model"], source=str(path))
        try:
            self.optimizer.load_state_dict(ckpt["optimizer"])
        except ValueError as e:  # torch: other parameter groups or group sizes
            raise ConfigError(f"{path}: its optimizer state does not fit this run's parameter "
                              f"groups ({e}); optim.lr_mult must stay as it was when it was "
                              "written") from e
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        if self.ema is not None:
            if ckpt["ema"] is None:
                raise ConfigError(f"{path} has no EMA weights; run.ema_decay must stay unset")
            self.ema.load_state_dict(ckpt["ema"])
        rngs = ckpt["rng"]
        if len(rngs) == self.env.world:
            set_rng_state(rngs[self.env.rank])
        else:
            self.echo(f"{path} was written by {len(rngs)} processes, now {self.env.world}: "
                      "random streams restart from the seed")
            seed_everything(self.cfg.run.seed + self.env.rank + 7919 * ckpt["epoch"] + step)
        self.history = list(ckpt["history"])
        self.skips = SkipLog(list(ckpt.get("skipped", [])))
        self.start_epoch = int(ckpt["epoch"])
        self.start_step = step
        if step and len(partials) == self.env.world:
            self.partial = partials[self.env.rank]
        elif step:  # another process count: rank 0 carries the sums, so the epoch's totals hold
            sums = {k: sum(p[k] for p in partials) if self.env.is_main else 0.0 for k in _SUMS}
            self.partial = {**sums, "elapsed": partials[0]["elapsed"], "lr": partials[0]["lr"]}
        where = f"epoch {self.start_epoch}"
        if step:
            where += f" and {step} of {len(self.train_loader)} batches of epoch {self.start_epoch + 1}"
        self.echo(f"resumed from {path} after {where}")

    def _resume_point(self, path: str | Path, ckpt: dict[str, Any]) -> tuple[int, list[dict]]:
        """The checkpoint's position inside its epoch (0 at an epoch's end) and the processes'
        running sums there, checked against this run: a step outside the epoch, off the
        accumulation boundary or without its sums is an error naming the file."""
        step, partials = ckpt.get("step", 0), ckpt.get("partial")  # absent before checkpoint_steps
        if step == 0:
            return 0, []
        n, accum = len(self.train_loader), self.cfg.optim.accum_steps
        if type(step) is not int or not 0 < step < n or step % accum:
            raise CheckpointError(
                f"{path}: 'step' {step!r} is not a resumable point of this run's epochs ({n} "
                f"micro-batches of which every {accum}th ends an optimizer step); the data or "
                "optim.accum_steps must stay as they were when it was written")
        ok = isinstance(partials, list) and partials and all(
            isinstance(p, dict) and set(p) == set(_PARTIAL)
            and all(type(p[k]) in (int, float) and math.isfinite(p[k]) and p[k] >= 0 for k in p)
            for p in partials)
        if not ok:
            raise CheckpointError(f"{path}: written inside epoch {ckpt['epoch'] + 1} but its "
                                  f"'partial' sums are missing or malformed ({partials!r:.200})")
        return step, partials

    # --- the loop --------------------------------------------------------------------------
    def _optimizer_step(self) -> None:
        clip = self.cfg.optim.clip_grad
        if clip:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.model)

    def _placeholder_step(self, skip_sync: bool) -> None:
        """Forward and backward through DDP with zero loss weight, on a zero batch of the
        training shape, so that this process joins the buffer broadcast and the gradient
        all-reduce like the others. It adds zero gradients (the step's gradient is then the
        mean over the processes that had images, scaled by their share) and leaves BatchNorm
        statistics as they were."""
        assert self.ddp is not None
        shape = (2, *self.data.eval_cfg["input_size"])  # 2: BatchNorm needs > 1 value
        x = torch.zeros(shape, device=self.device)
        norms = [m for m in self.model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        momenta = [m.momentum for m in norms]
        tracked = [m.num_batches_tracked.clone() if m.num_batches_tracked is not None else None
                   for m in norms]
        for m in norms:
            m.momentum = 0.0  # running = (1 - 0) * running + 0 * batch: unchanged
        try:
            with self.ddp.no_sync() if skip_sync else contextlib.nullcontext():
                with autocast(self.device, self.amp_dtype):
                    logits = self.forward_model(x)
                self.scaler.scale(logits.float().sum() * 0.0).backward()
        finally:
            for m, momentum, count in zip(norms, momenta, tracked, strict=True):
                m.momentum = momentum
                if count is not None:
                    m.num_batches_tracked.copy_(count)

    def train_epoch(self, epoch: int, start_step: int = 0,
                    partial: dict[str, float] | None = None) -> dict[str, float]:
        """One epoch; from micro-batch ``start_step`` on, continuing the running sums
        ``partial``, when a run resumes inside it."""
        from tqdm.auto import tqdm

        cfg, env = self.cfg, self.env
        accum, every = cfg.optim.accum_steps, cfg.run.checkpoint_steps
        self.model.train()
        self.sampler.set_epoch(epoch, skip=start_step)
        self.optimizer.zero_grad(set_to_none=True)
        partial = partial or {**dict.fromkeys(_SUMS, 0.0), "elapsed": 0.0,
                              "lr": self.optimizer.param_groups[0]["lr"]}  # at the epoch's start
        loss_sum = torch.tensor(float(partial["loss_sum"]), dtype=torch.float64,
                                device=self.device)
        correct = torch.tensor(int(partial["correct"]), dtype=torch.int64, device=self.device)
        seen = int(partial["seen"])
        batches = len(self.train_loader)
        bar = tqdm(total=batches, initial=start_step, desc=f"epoch {epoch + 1}/{cfg.optim.epochs}",
                   unit="batch", leave=False, file=sys.stderr, dynamic_ncols=True,
                   disable=not (cfg.run.progress and env.is_main))
        start = time.perf_counter() - float(partial["elapsed"])
        for i, batch in enumerate(self.train_loader, start=start_step):
            batch: Batch
            self.skips.note(batch.skipped)
            last = (i + 1) % accum == 0
            if batch.images is None and self.ddp is not None:
                # Every image of this process's micro-batch was undecodable. Skipping it would
                # leave the other processes waiting in DDP's collectives for this one, so it
                # takes a zero-weight step instead (see _placeholder_step).
                self._placeholder_step(skip_sync=not last)
            elif batch.images is not None:
                x = batch.images.to(self.device, non_blocking=True)
                y = batch.labels.to(self.device, non_blocking=True)
                # gradients are all-reduced only on the micro-batch that ends an optimizer step
                skip_sync = self.ddp is not None and not last
                with self.ddp.no_sync() if skip_sync else contextlib.nullcontext():
                    with autocast(self.device, self.amp_dtype):
                        logits = self.forward_model(x)
                        loss = self.criterion(x, logits, y)
                    self.scaler.scale(loss / accum).backward()
                loss_sum += loss.detach().double() * len(y)
                correct += (logits.detach().argmax(dim=-1) == y).sum()
                seen += len(y)
            if last:
                self._optimizer_step()
                if every and ((i + 1) // accum) % every == 0 and i + 1 < batches:
                    self.save_checkpoint(epoch, i + 1, {
                        "loss_sum": float(loss_sum), "correct": int(correct), "seen": seen,
                        "elapsed": time.perf_counter() - start, "lr": partial["lr"]})
            bar.update()
            if (i + 1) % 10 == 0 or i + 1 == batches:
                rate = seen * env.world / max(time.perf_counter() - start, 1e-9)
                bar.set_postfix(loss=f"{float(loss_sum) / max(seen, 1):.3f}", img_s=f"{rate:.0f}")
        bar.close()
        elapsed = time.perf_counter() - start
        total_loss, total_correct, total_seen = all_reduce_sum(
            [float(loss_sum), float(correct), float(seen)], env
        )
        n = max(total_seen, 1)
        return {"lr": partial["lr"], "train_loss": total_loss / n,
                "train_top1": 100.0 * total_correct / n,
                "train_img_s": total_seen / max(elapsed, 1e-9), "epoch_s": elapsed}

    def fit(self) -> TrainResult:
        cfg, env = self.cfg, self.env
        tb = None
        if env.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            for name in ("last.pt", "metrics.csv", "config.yaml"):  # left by a killed writer
                for stale in stale_temp_files(self.out_dir, name):
                    stale.unlink()
            save_config(cfg, self.out_dir / "config.yaml")
            tb = TensorBoardLogger(self.out_dir / "tensorboard", cfg.run.tensorboard)
        self._announce()
        epoch_times: list[float] = []
        for epoch in range(self.start_epoch, cfg.optim.epochs):
            t0 = time.perf_counter()
            inside = epoch == self.start_epoch and self.start_step  # resumed inside it
            done = (self.train_epoch(epoch, self.start_step, self.partial) if inside
                    else self.train_epoch(epoch))
            row: dict[str, Any] = {"epoch": epoch + 1, **done}
            val = evaluate(self.model, self.val_loader, self.device, env, self.amp_dtype,
                           self.skips)
            row.update(val_loss=val["loss"], val_top1=val["top1"], val_top5=val["top5"],
                       val_images=val["images"])
            if self.ema is not None:
                row["ema_top1"] = evaluate(self.ema.module, self.val_loader, self.device, env,
                                           self.amp_dtype)["top1"]
            best = self._keep_best(row)
            self.history.append(row)
            self.save_checkpoint(epoch + 1)
            if env.is_main:
                if best:
                    meta = weights_metadata(self.model, cfg.model, self.data.eval_cfg)
                    save_weights(self.model, self.out_dir / "best.safetensors", config=meta)
                write_csv(self.history, self.out_dir / "metrics.csv")
                tb.log(row)
            epoch_times.append(time.perf_counter() - t0)
            eta = (cfg.optim.epochs - epoch - 1) * sum(epoch_times) / len(epoch_times)
            self.echo(_epoch_line(row, cfg.optim.epochs, eta))
            barrier(env)
        return self._finish(tb)

    def _keep_best(self, row: dict[str, Any]) -> bool:
        """Record the best validation top-1 so far in ``row`` (``best_top1``, ``best_epoch``);
        True when this epoch is it, so ``best.safetensors`` is rewritten. The earlier rows come
        from ``last.pt`` after a resume, so the best survives it."""
        earlier = [r for r in self.history if "val_top1" in r]
        top = max(earlier, key=lambda r: r["val_top1"], default=None)
        is_best = top is None or row["val_top1"] > top["val_top1"]
        row["best_top1"] = row["val_top1"] if is_best else top["val_top1"]
        row["best_epoch"] = row["epoch"] if is_best else top["epoch"]
        return is_best

    def _announce(self) -> None:
        cfg, env = self.cfg, self.env
        n_params = sum(p.numel() for p in self.model.parameters())
        step = {False: "step 1 (binary activations, real weights)",
                True: "step 2 (binary activations and weights)"}.get(cfg.model.binary_weights, "")
        teacher = (f"distilling from {cfg.distill.teacher}" if self.criterion.teacher is not None
                   else "labels only (no teacher)")
        self.echo(f"model {cfg.model.name} {step}: {n_params / 1e6:.3f} M parameters")
        self.echo(f"data: {self.data.description}")
        self.echo(
            f"{env.world} process(es) on {self.device}, global batch {self.global_batch}, "
            f"lr {scaled_lr(cfg.optim, self.global_batch):.3g}, {cfg.optim.epochs} epochs of "
            f"{self.sampler.steps} steps, {teacher}; writing to {self.out_dir}"
        )

    def _finish(self, tb: TensorBoardLogger | None) -> TrainResult:
        skipped = self.skips.gather(self.env)
        weights = None
        if self.env.is_main:
            meta = weights_metadata(self.model, self.cfg.model, self.data.eval_cfg)
            weights = save_weights(self.model, self.out_dir / "model.safetensors", config=meta)
            if self.ema is not None:
                save_weights(self.ema.module, self.out_dir / "model_ema.safetensors", config=meta)
            plot_curves(self.history, self.out_dir / "curves.png")
            if tb is not None:
                tb.close()
        barrier(self.env)
        final = self.history[-1] if self.history else {}
        if skipped:
            self.echo(f"skipped {len(skipped)} undecodable image(s) in all (first: {skipped[0]})")
        if final:
            self.echo(f"test accuracy: top-1 {final['val_top1']:.2f}%, top-5 "
                      f"{final['val_top5']:.2f}% after {final['epoch']} epochs; weights: "
                      f"{self.out_dir / 'model.safetensors'}")
            if "best_top1" in final:
                self.echo(f"best: top-1 {final['best_top1']:.2f}% after epoch "
                          f"{final['best_epoch']} ({self.out_dir / 'best.safetensors'})")
        return TrainResult(self.out_dir, self.history, final, weights, skipped)


# the running sums of an epoch that a checkpoint written inside it carries (one dict per process)
_SUMS = ("loss_sum", "correct", "seen")
_PARTIAL = (*_SUMS, "elapsed", "lr")


def _config_differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _config_differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out


def _epoch_line(row: dict[str, Any], epochs: int, eta: float) -> str:
    line = (f"epoch {row['epoch']}/{epochs}  loss {row['train_loss']:.4f}  "
            f"train {row['train_top1']:.1f}%  test top-1 {row['val_top1']:.2f}%  "
            f"top-5 {row['val_top5']:.2f}%")
    if "ema_top1" in row:
        line += f"  ema {row['ema_top1']:.2f}%"
    line += f"  {row['train_img_s']:.0f} img/s  {row['epoch_s']:.1f}s"
    if eta > 0:
        minutes, seconds = divmod(math.ceil(eta), 60)
        line += f"  eta {minutes}m{seconds:02d}s"
    return line


def _main_only(env: DistEnv, echo: Callable[[str], None] | None) -> Callable[[str], None]:
    def gated(message: str) -> None:
        if env.is_main:
            (echo or _print)(message)
            log.info(message)

    return gated


@contextlib.contextmanager
def _log_file(env: DistEnv, out_dir: Path):
    """Rank 0 appends every message of the run (and of ``bimlp.train``'s loggers) to
    ``OUT_DIR/train.log``, beside ``metrics.csv``; a resumed run continues the same file."""
    if not env.is_main:
        yield
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(out_dir / "train.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
        handler.close()


def _print(message: str) -> None:
    print(message, flush=True)


def train(
    cfg: TrainConfig,
    resume_from: str | Path | None = None,
    echo: Callable[[str], None] | None = None,
) -> TrainResult:
    """Run a recipe to the end (continuing ``resume_from``, a ``last.pt``, if given).

    Under torchrun every process calls this; only rank 0 writes files or prints.
    """
    validate_config(cfg)
    check_run_folder(cfg.run.out_dir, resume_from, cfg.run.overwrite)
    owns_group = not dist.is_initialized()
    env = setup_distributed(cfg.run.device, cfg.run.dist_timeout)
    try:
        with collective_timeouts(env, cfg.run.dist_timeout), _log_file(env, Path(cfg.run.out_dir)):
            trainer = Trainer(cfg, env, _main_only(env, echo))
            if resume_from is not None:
                trainer.restore(resume_from)
            return trainer.fit()
    finally:
        if owns_group:
            teardown_distributed()
