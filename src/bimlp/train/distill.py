"""Distillation from a frozen full-precision teacher (ReActNet's distributional loss).

``loss = -sum_k softmax(teacher)_k * log_softmax(student)_k``, averaged over the batch: the
cross-entropy of the student against the teacher's whole output distribution, no temperature.
It can be mixed with label cross-entropy (``label_weight``), and without a teacher the loss is
label cross-entropy alone.

A teacher is a registered model (``wavemlp_t``) with its checkpoint, loaded through
:func:`bimlp.create_model`, or any timm model name with a local weights file (safetensors or a
PyTorch file read with ``weights_only=True``), loaded strictly.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoint import CheckpointError, load_state_dict_strict, read_weights, sniff_format
from .config import ConfigError, DistillConfig

__all__ = ["distillation_loss", "Criterion", "load_teacher", "read_state_dict"]

# Where other training scripts keep the weights inside a saved dict, in order of preference.
_NESTED_KEYS = ("state_dict", "model", "module", "state_dict_ema", "model_ema")


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """``mean_b( -sum_k softmax(t)_bk * log_softmax(s)_bk )``, computed in float32."""
    target = F.softmax(teacher_logits.float(), dim=-1)
    return -(target * F.log_softmax(student_logits.float(), dim=-1)).sum(dim=-1).mean()


class Criterion:
    """The training loss: distillation, label cross-entropy, or a mix of both.

    ``loss = (1 - label_weight) * KD(student, teacher) + label_weight * CE(student, labels)``;
    without a teacher, ``CE`` alone. The teacher stays frozen in eval mode (it is deliberately
    not an ``nn.Module`` attribute of anything that gets ``.train()`` called on it).
    """

    def __init__(
        self, teacher: nn.Module | None, label_weight: float = 0.0, label_smoothing: float = 0.0
    ) -> None:
        if not 0.0 <= label_weight <= 1.0:
            raise ConfigError(f"distill.label_weight must lie in [0, 1], got {label_weight}")
        self.teacher = teacher
        self.label_weight = 1.0 if teacher is None else label_weight
        self.label_smoothing = label_smoothing

    def __call__(
        self, images: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor
    ) -> torch.Tensor:
        loss = logits.new_zeros((), dtype=torch.float32)
        if self.teacher is not None and self.label_weight < 1.0:
            with torch.no_grad():
                teacher_logits = self.teacher(images)
            if teacher_logits.shape != logits.shape:
                raise ValueError(
                    f"teacher logits {tuple(teacher_logits.shape)} do not match the student's "
                    f"{tuple(logits.shape)}: give the teacher the same classes"
                )
            loss = loss + (1.0 - self.label_weight) * distillation_loss(logits, teacher_logits)
        if self.label_weight > 0.0:
            ce = F.cross_entropy(logits.float(), labels, label_smoothing=self.label_smoothing)
            loss = loss + self.label_weight * ce
        return loss


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The weights in any file we accept, without unpickling arbitrary objects.

    safetensors; our training checkpoints (``model``); PyTorch files of other trainers read with
    ``weights_only=True`` (a dict of tensors, possibly under ``state_dict`` / ``model`` / ...,
    ``module.`` prefixes of DDP removed); official MindSpore ``.ckpt``.
    """
    kind = sniff_format(path)
    if kind == "safetensors":
        return read_weights(path)[0]
    if kind == "mindspore":
        from ..checkpoint import read_checkpoint

        return read_checkpoint(path)[0]
    try:
        # argparse.Namespace: the hyper-parameters timm-style trainers store next to the weights
        with torch.serialization.safe_globals([argparse.Namespace]):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path}: cannot be read safely with weights_only=True ({e})") from e
    state = _find_state_dict(obj)
    if state is None:
        raise CheckpointError(f"{path}: holds no state dict of tensors")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def _find_state_dict(obj: Any) -> dict[str, torch.Tensor] | None:
    if isinstance(obj, Mapping):
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return dict(obj)
        for key in _NESTED_KEYS:
            if key in obj:
                found = _find_state_dict(obj[key])
                if found is not None:
                    return found
    return None


def load_teacher(cfg: DistillConfig, device: torch.device | str = "cpu") -> nn.Module | None:
    """The frozen teacher of a recipe, or ``None`` for teacher-free training."""
    if not cfg.teacher:
        return None
    if not cfg.teacher_checkpoint:
        raise ConfigError(
            f"distill.teacher={cfg.teacher} needs distill.teacher_checkpoint (its weights file); "
            "a randomly initialised teacher teaches nothing"
        )
    from ..models import create_model, is_model

    if is_model(cfg.teacher):
        teacher = create_model(cfg.teacher, checkpoint=cfg.teacher_checkpoint, **cfg.teacher_args)
    else:
        import timm

        try:
            teacher = timm.create_model(cfg.teacher, pretrained=False, **cfg.teacher_args)
        except RuntimeError as e:  # timm: "Unknown model"
            raise ConfigError(f"distill.teacher: {e}") from e
        state = read_state_dict(cfg.teacher_checkpoint)
        load_state_dict_strict(teacher, state, source=str(cfg.teacher_checkpoint))
    teacher.eval().requires_grad_(False)
    return teacher.to(device)
