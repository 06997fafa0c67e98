"""Typed training configuration: one YAML file per recipe, ``key=value`` overrides on top.

A recipe is a :class:`TrainConfig` (sections ``model``, ``data``, ``optim``, ``distill``,
``run``). Field defaults are ReActNet's hyper-parameters (``docs/MODEL.md``, "Training recipe")
and, for the model, ``None``
= the named model's own default; a recipe file states what differs, and the small built-in
recipe (:mod:`bimlp.train.recipes`) is such a set of differences. The resolved configuration
travels inside every checkpoint and is written as ``config.yaml`` beside it, so a run can always
be repeated.

Overrides use dotted paths and YAML values: ``optim.lr=1e-3 model.depths=[1,1,1]
distill.teacher=null``. Unknown keys and values of the wrong type are errors that name the key.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import operator
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml

from ..data.config import DataConfig

__all__ = [
    "ConfigError",
    "ModelConfig",
    "DataConfig",
    "OptimConfig",
    "DistillConfig",
    "RunConfig",
    "TrainConfig",
    "load_config",
    "apply_overrides",
    "config_from_dict",
    "config_to_dict",
    "save_config",
    "validate_config",
]


class ConfigError(ValueError):
    """A recipe or override that does not fit the configuration schema."""


class _ModelSection:
    """The student network: ``name`` (any name of ``bimlp.list_models()``, or a timm name for
    full-precision baselines), then one optional field per configuration field of the
    registered model families (``depths``, ``dims``, ``mode``, ``binary_weights``, ...: see
    :class:`~bimlp.models.BiMLPConfig` and the others, where each is defined and commented),
    where ``None`` means "the named model's own default", then the fields below.

    The two steps of the recipe are one of those fields, ``binary_weights``: false = step 1
    (binary activations, real-valued weights), true = step 2 (both binary, initialised from
    step 1 by ``init_from``). ``num_classes`` / ``in_chans`` left at ``None`` come from the data.
    """

    def model_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``create_model``: every field that is set."""
        skip = {"name", "extra", "init_from", "sync_bn"}
        kwargs = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)  # type: ignore[arg-type]
            if f.name not in skip and getattr(self, f.name) is not None
        }
        return {**kwargs, **self.extra}  # type: ignore[attr-defined]


def _recipe_type(tp: Any) -> Any:
    """A model configuration's field type as a recipe holds it: lists for tuples (YAML)."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return functools.reduce(operator.or_, (_recipe_type(t) for t in typing.get_args(tp)))
    if origin is tuple:
        return list[typing.get_args(tp)[0]]
    return tp


def _model_section() -> type:
    """``ModelConfig``, its architecture fields read from the model families' configurations
    (the one place they are defined), so a field added to a family is a recipe key at once."""
    from ..models import list_families

    fields: dict[str, Any] = {}
    for family in list_families():
        hints = typing.get_type_hints(family.config_cls)
        for f in dataclasses.fields(family.config_cls):
            fields.setdefault(f.name, _recipe_type(hints[f.name]) | None)
    return dataclasses.make_dataclass(
        "ModelConfig",
        [
            ("name", str, field(default="bimlp_s")),
            *((name, tp, field(default=None)) for name, tp in fields.items()),
            # other keywords of the model (timm models, or anything create_model accepts)
            ("extra", dict[str, Any], field(default_factory=dict)),
            # weights loaded strictly before training (step 2: step 1's model.safetensors)
            ("init_from", str | None, field(default=None)),
            ("sync_bn", bool, field(default=False)),  # SyncBatchNorm (GPU + torchrun only)
        ],
        bases=(_ModelSection,),
        namespace={"__doc__": _ModelSection.__doc__, "__module__": __name__},
    )


ModelConfig = _model_section()


@dataclass
class OptimConfig:
    """ReActNet's optimisation: Adam, linear decay to 0, weight decay on conv/linear weights."""

    epochs: int = 256  # ReActNet: 256 (or 128 at lr 1.25e-3)
    optimizer: str = "adam"  # adam (ReActNet: L2 added to the gradient) | adamw
    # At a global batch of lr_ref_batch, scaled LINEARLY with the real one (ReActNet's rule; timm's
    # train.py scales Adam's --lr-base by the square root instead). See optim.scaled_lr.
    lr: float = 5e-4
    lr_ref_batch: int | None = 256  # None: use lr as given
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 1e-5  # step 1: 1e-5, step 2: 0; only on conv and linear weights
    schedule: str = "linear"  # linear (to 0) | cosine | constant
    warmup_epochs: float = 0.0
    clip_grad: float | None = None  # max global grad norm; None: no clipping
    accum_steps: int = 1  # micro-batches per optimizer step
    # {glob over parameter names: factor}: those parameters train at lr x factor (optim.param_groups)
    lr_mult: dict[str, float] = field(default_factory=dict)


@dataclass
class DistillConfig:
    """Knowledge distillation from a frozen full-precision teacher (None: labels only)."""

    teacher: str | None = None  # a registered name (wavemlp_t) or any timm model name
    teacher_checkpoint: str | None = None  # required with a teacher: its weights file
    teacher_args: dict[str, Any] = field(default_factory=dict)  # e.g. {num_classes: 10}
    teacher_ema: bool = False  # the EMA copy of a training checkpoint instead of its weights
    # loss = (1 - w) * KD + w * CE(labels); 0 = pure distillation (ReActNet), 1 = labels only.
    label_weight: float = 0.0
    label_smoothing: float = 0.0


@dataclass
class RunConfig:
    """Everything about the run rather than the recipe."""

    out_dir: str = "runs/train"  # checkpoints, config.yaml, metrics.csv, curves.png
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int | None = None  # torch CPU threads; None: torch's default (1 helps on busy CPUs)
    amp: str = "none"  # none | bf16 | fp16 (GPU) | auto (bf16 where the device supports it)
    compile: bool = False  # torch.compile the student
    # the models' fast training path (fused kernels, channels-last, one-kernel Adam): the same
    # function and gradients as the plain modules, faster; false runs the reference modules
    fast_path: bool = False
    ema_decay: float | None = None  # keep an exponential moving average of the weights
    # also write last.pt every N optimizer steps inside an epoch, so that a killed run loses at
    # most N steps (--resume continues inside the epoch, bit-exactly); 0: at epoch ends only
    checkpoint_steps: int = 0
    deterministic: bool = True  # deterministic kernels (CPU always; cuDNN when on)
    progress: bool = True  # tqdm bar on rank 0
    tensorboard: bool = True  # also log to TensorBoard when it is installed
    # torchrun: a collective that waits longer than this (seconds) fails with an error naming
    # the stuck operation instead of hanging (torch's default is 30 minutes)
    dist_timeout: float = 600.0
    # a new run refuses a folder that already holds one (last.pt, weights, metrics.csv);
    # true replaces it. Continuing a run is --resume, not this.
    overwrite: bool = False


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    run: RunConfig = field(default_factory=RunConfig)


# --- dict <-> dataclass, with type checks --------------------------------------------------------
def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Plain dict of primitives (lists, not tuples) -- what checkpoints and YAML hold."""
    return _plain(dataclasses.asdict(cfg))


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def config_from_dict(data: Mapping[str, Any], cls: type = TrainConfig, path: str = "") -> Any:
    """Build a (nested) config dataclass from a dict, checking keys and types."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path or 'config'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown config key {where!r}{hint}; known: {', '.join(names)}")
        kwargs[key] = _coerce(value, hints[key], where)
    cfg = cls(**kwargs)
    return validate_config(cfg) if cls is TrainConfig else cfg


def _coerce(value: Any, tp: Any, where: str) -> Any:
    if dataclasses.is_dataclass(tp):
        return config_from_dict(value or {}, tp, where)
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None:
            if type(None) in options:
                return None
            raise ConfigError(f"{where}: may not be null")
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return _coerce(value, option, where)
            except ConfigError as e:
                errors.append(str(e))
        if len(errors) == 1:
            raise ConfigError(errors[0])
        raise ConfigError(f"{where}: {value!r} fits none of {tp}")
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        _, item = typing.get_args(tp) or (str, Any)
        return {k: _coerce(v, item, f"{where}.{k}") for k, v in value.items()}
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        # YAML 1.1 reads "1e-5" (no dot) as a string; accept any number-like value.
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    raise ConfigError(f"{where}: unsupported config type {tp}")  # pragma: no cover


# --- values that fit the type but cannot work ----------------------------------------------------
_DEVICE = re.compile(r"(auto|cpu|mps|cuda(:\d+)?)")


def _check(ok: bool, key: str, rule: str, value: Any) -> None:
    if not ok:
        raise ConfigError(f"{key} must be {rule}, got {value!r}")


def _positive_int(key: str, value: int | None, optional: bool = True) -> None:
    if value is None and optional:
        return
    _check(isinstance(value, int) and value >= 1, key, "an integer >= 1", value)


def _finite(key: str, value: float | None, low: float, rule: str, strict: bool = False) -> None:
    if value is None:
        return
    ok = math.isfinite(value) and (value > low if strict else value >= low)
    _check(ok, key, rule, value)


def validate_config(cfg: TrainConfig) -> TrainConfig:
    """Reject values that fit their types but cannot work (``optim.epochs=0``, a NaN learning
    rate, ``data.workers=-1``, an unknown device...) with a :class:`ConfigError` naming the key
    and the value; returns ``cfg``."""
    m, d, o, r = cfg.model, cfg.data, cfg.optim, cfg.run
    _positive_int("optim.epochs", o.epochs, optional=False)
    _finite("optim.lr", o.lr, 0.0, "a finite number > 0", strict=True)
    _positive_int("optim.lr_ref_batch", o.lr_ref_batch)
    _positive_int("optim.accum_steps", o.accum_steps, optional=False)
    _finite("optim.weight_decay", o.weight_decay, 0.0, "a finite number >= 0")
    _finite("optim.warmup_epochs", o.warmup_epochs, 0.0, "a finite number >= 0")
    _finite("optim.clip_grad", o.clip_grad, 0.0, "a finite number > 0 or null", strict=True)
    _check(len(o.betas) == 2 and all(0.0 <= b < 1.0 for b in o.betas), "optim.betas",
           "two numbers in [0, 1)", o.betas)
    for pattern, factor in o.lr_mult.items():
        _check(isinstance(pattern, str) and pattern != "", "optim.lr_mult",
               "non-empty parameter-name patterns", pattern)
        _finite(f"optim.lr_mult.{pattern}", factor, 0.0, "a finite number > 0", strict=True)
    _positive_int("data.batch_size", d.batch_size, optional=False)
    _positive_int("data.eval_batch_size", d.eval_batch_size)
    _check(d.workers >= 0, "data.workers", "an integer >= 0", d.workers)
    _check(d.loader in ("samples", "batches"), "data.loader", "samples or batches", d.loader)
    _check(d.loader == "samples" or d.dataset in ("digits", "idx"), "data.loader",
           "samples for data.dataset=folder (batches needs in-memory arrays: digits, idx)",
           d.loader)
    _positive_int("data.image_size", d.image_size)
    _positive_int("data.train_limit", d.train_limit)
    _positive_int("data.val_limit", d.val_limit)
    _check(d.pad >= 0, "data.pad", "an integer >= 0", d.pad)
    _check(math.isfinite(d.holdout) and 0.0 < d.holdout < 1.0, "data.holdout",
           "a fraction in (0, 1)", d.holdout)
    if d.hflip is not None:
        _check(0.0 <= d.hflip <= 1.0, "data.hflip", "a probability in [0, 1]", d.hflip)
    _positive_int("model.num_classes", m.num_classes)
    _positive_int("model.in_chans", m.in_chans)
    _check(bool(_DEVICE.fullmatch(r.device)), "run.device", "auto, cpu, mps, cuda or cuda:N",
           r.device)
    _positive_int("run.threads", r.threads)
    _check(isinstance(r.checkpoint_steps, int) and r.checkpoint_steps >= 0,
           "run.checkpoint_steps", "an integer >= 0 (0: at epoch ends only)", r.checkpoint_steps)
    _check(r.amp in ("none", "auto", "bf16", "fp16"), "run.amp", "none, auto, bf16 or fp16",
           r.amp)
    if r.ema_decay is not None:
        _check(0.0 < r.ema_decay < 1.0, "run.ema_decay", "a number in (0, 1) or null",
               r.ema_decay)
    _finite("run.dist_timeout", r.dist_timeout, 0.0, "a finite number of seconds > 0",
            strict=True)
    _check(str(r.out_dir).strip() != "", "run.out_dir", "a folder path", r.out_dir)
    return cfg


# --- files and overrides ---------------------------------------------------------------------
def parse_override(item: str) -> tuple[list[str], Any]:
    """``"optim.lr=1e-3"`` -> (["optim", "lr"], 1e-3); the value is read as YAML."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} is not KEY=VALUE (e.g. optim.lr=1e-3)")
    key, raw = item.split("=", 1)
    keys = key.strip().split(".")
    if not all(keys):
        raise ConfigError(f"override {item!r}: empty key")
    try:
        return keys, yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as e:
        raise ConfigError(f"override {item!r}: value is not valid YAML ({_yaml_problem(e)})") \
            from None


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Set dotted keys in a nested dict (a copy); sections are created as needed."""
    out = _plain(data)
    for item in overrides:
        keys, value = parse_override(item)
        node = out
        for k in keys[:-1]:
            child = node.setdefault(k, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {k!r} is not a section")
            node = child
        node[keys[-1]] = value
    return out


def _yaml_where(e: yaml.YAMLError) -> str:
    mark = getattr(e, "problem_mark", None)
    return f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""


def _yaml_problem(e: yaml.YAMLError) -> str:
    return str(getattr(e, "problem", None) or e).strip().splitlines()[0]


def read_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such config file")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}{_yaml_where(e)}: not valid YAML ({_yaml_problem(e)})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p}: cannot read the config file ({e})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: a recipe is a mapping of sections, got {type(data).__name__}")
    return data


def load_config(
    path: str | Path | None = None,
    overrides: Sequence[str] = (),
    base: TrainConfig | None = None,
) -> TrainConfig:
    """A recipe file (or ``base``, default: the built-in recipe) plus ``key=value`` overrides.

    Fields a recipe file leaves out keep their dataclass defaults.
    """
    data = read_yaml(path) if path is not None else config_to_dict(base or TrainConfig())
    try:
        return config_from_dict(apply_overrides(data, overrides))
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}" if path else str(e)) from None


def save_config(cfg: TrainConfig, path: str | Path) -> Path:
    """Write the resolved configuration as YAML (atomically)."""
    from ..files import atomic_write_text

    return atomic_write_text(path, yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
