"""Distillation from a frozen full-precision teacher (ReActNet's distributional loss).

``loss = -sum_k softmax(teacher)_k * log_softmax(student)_k``, averaged over the batch: the
cross-entropy of the student against the teacher's whole output distribution, no temperature.
It can be mixed with label cross-entropy (``label_weight``), and without a teacher the loss is
label cross-entropy alone.

A teacher is a registered model (``wavemlp_t``) with its checkpoint, loaded through
:func:`bimlp.create_model`, or any timm model name with a local weights file (safetensors or a
PyTorch file read with ``weights_only=True``), loaded strictly by
:func:`bimlp.models.load_checkpoint` -- the one checkpoint path, whose policy is: a training
checkpoint's weights, never its EMA copy unless ``distill.teacher_ema`` asks for it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import ConfigError, DistillConfig

__all__ = ["distillation_loss", "Criterion", "load_teacher"]


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


def load_teacher(cfg: DistillConfig, device: torch.device | str = "cpu") -> nn.Module | None:
    """The frozen teacher of a recipe, or ``None`` for teacher-free training."""
    if not cfg.teacher:
        return None
    if not cfg.teacher_checkpoint:
        raise ConfigError(
            f"distill.teacher={cfg.teacher} needs distill.teacher_checkpoint (its weights file); "
            "a randomly initialised teacher teaches nothing"
        )
    from ..models import create_model, is_model, load_checkpoint

    if is_model(cfg.teacher):
        teacher = create_model(cfg.teacher, checkpoint=cfg.teacher_checkpoint,
                               use_ema=cfg.teacher_ema, **cfg.teacher_args)
    else:
        import timm

        try:
            teacher = timm.create_model(cfg.teacher, pretrained=False, **cfg.teacher_args)
        except RuntimeError as e:  # timm: "Unknown model"
            raise ConfigError(f"distill.teacher: {e}") from e
        load_checkpoint(teacher, cfg.teacher_checkpoint, use_ema=cfg.teacher_ema)
    teacher.eval().requires_grad_(False)
    return teacher.to(device)
