"""Typed run configuration: YAML in, dotted CLI overrides, validation, YAML out.

Every key is a dataclass field; an unknown key or a value of the wrong type is a UserError
naming the key, so a typo never silently trains with a default.
"""

import dataclasses
import math
import re
import typing
from dataclasses import dataclass, field
from typing import List, Optional, Union

import yaml

from .errors import UserError
from .models import ARCHITECTURES
from .models.conditioning import CONDITION_KINDS, D_CONDITIONS, G_CONDITIONS
from .models.dcgan import D_NORMS
from .train.augment import parse_policy
from .train.losses import LOSSES
from .train.tracking import TRACKERS


class _Loader(yaml.SafeLoader):
    """YAML with 1.2 booleans: only true/false are booleans, so off, no, on and yes stay the
    words the user typed (log.wandb=off, train.mixed_precision=no). Boolean keys accept them below."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                              list("tTfF"))
_BOOL_WORDS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}


def read_yaml(text_or_stream):
    return yaml.load(text_or_stream, Loader=_Loader)


@dataclass(frozen=True)
class Range:
    """The numbers a key accepts: finite, and within the bounds given (None: unbounded)."""
    ge: Optional[float] = None
    gt: Optional[float] = None
    le: Optional[float] = None
    lt: Optional[float] = None
    unit: str = ""

    def problem(self, value) -> Optional[str]:
        """None when value is acceptable, else what is wrong, e.g. 'must be > 0'."""
        if not math.isfinite(value):
            return "must be a finite number" + (f" {self.describe()}" if self.describe() else "")
        bad = ((self.ge is not None and value < self.ge) or (self.gt is not None and value <= self.gt)
               or (self.le is not None and value > self.le) or (self.lt is not None and value >= self.lt))
        return f"must be {self.describe()}" if bad else None

    def describe(self) -> str:
        lo = f"{self.ge:g}" if self.ge is not None else (f"{self.gt:g}" if self.gt is not None else None)
        hi = f"{self.le:g}" if self.le is not None else (f"{self.lt:g}" if self.lt is not None else None)
        unit = f" ({self.unit})" if self.unit else ""
        if lo is not None and hi is not None:
            return (f"in {'[' if self.ge is not None else '('}{lo}, {hi}{']' if self.le is not None else ')'}"
                    + unit)
        if lo is not None:
            return f"{'>=' if self.ge is not None else '>'} {lo}{unit}"
        if hi is not None:
            return f"{'<=' if self.le is not None else '<'} {hi}{unit}"
        return ""


def num(default, unit: str = "", **bounds):
    """A numeric field whose accepted range is declared with it: num(2e-4, gt=0)."""
    return field(default=default, metadata={"range": Range(unit=unit, **bounds)})


def one_of(default, choices):
    """A field with a fixed set of values, declared with it: one_of("auto", ("auto", "no")). choices
    may be a function returning them (a registry: what is registered when the config is read)."""
    return field(default=default, metadata={"choices": choices})


def choices_of(f: dataclasses.Field) -> tuple:
    """The values a field accepts (its one_of declaration), or () when any value of its type goes."""
    c = f.metadata.get("choices", ())
    return tuple(c() if callable(c) else c)


@dataclass(frozen=True)
class _Typed:
    """A command-line value: the text as typed and its YAML reading. The key's type picks one, so
    log.name=123 or run.dir=2024 stay the text typed while train.lr_g=1e-3 is a number."""
    text: str
    parsed: object


@dataclass
class DataConfig:
    shards: str = "shards/cartoon64"  # dataset directory, or shard URLs (brace patterns, pipe:, http)
    workers: int = num(2, ge=0)  # DataLoader worker processes per rank
    max_bad_fraction: float = num(0.01, ge=0, le=1)  # unreadable samples tolerated (a fraction) before the run stops
    stall_s: float = num(120.0, gt=0, unit="seconds")  # a shard stream delivering nothing this long is bad
    flip: bool = True  # random horizontal flips, applied on the device
    device_cache: bool = False  # hold this rank's training images on the device (small datasets)


@dataclass
class ModelConfig:
    arch: str = one_of("dcgan", lambda: tuple(ARCHITECTURES))  # by name, facegan.models.ARCHITECTURES
    resolution: int = 64
    nz: int = num(100, ge=1)
    ngf: int = num(64, ge=1)
    ndf: int = num(64, ge=1)
    d_norm: str = one_of("batch", D_NORMS)  # batch (the paper); spectral: spectral norm instead of BatchNorm
    # Conditional GAN on the dataset's labels (facegan-shard --labels): attributes (binary, any mix)
    # or class (one class label); none: unconditional. See facegan.models.conditioning.
    condition: str = one_of("none", CONDITION_KINDS)
    labels: List[str] = field(default_factory=list)  # labels to condition on; []: every binary one / the class one
    # The defaults are the best measured (bench/conditional.py, README "Conditional generation").
    g_condition: str = one_of("cbn", G_CONDITIONS)  # cbn: conditional BatchNorm; embed: embedding joined to z (cGAN)
    d_condition: str = one_of("projection+aux", D_CONDITIONS)  # projection (Miyato & Koyama 2018), concat, aux (AC-GAN), adc (ADC-GAN)


@dataclass
class TrainConfig:
    batch_size: int = num(128, ge=1)  # global, split evenly across processes
    lr_g: float = num(2e-4, gt=0)
    lr_d: float = num(2e-4, gt=0)
    betas: List[float] = field(default_factory=lambda: [0.5, 0.999], metadata={"range": Range(ge=0, lt=1)})
    loss: str = one_of("bce", lambda: tuple(LOSSES))  # bce: non-saturating, the paper's (train.losses)
    augment: str = "none"  # DiffAugment policy for D: none, or a comma list of color, translation, cutout
    r1_gamma: float = num(0.0, ge=0)  # R1 gradient penalty weight on real images; 0: off
    r1_every: int = num(16, ge=1)  # lazy R1: apply the penalty every this many steps (scaled to match)
    aux_weight: float = num(1.0, ge=0)  # conditional D with a classifier head (d_condition *aux, *adc): its loss weight
    fake_labels: str = one_of("data", ("data", "balanced"))  # conditional runs: the fakes' labels, the real batch's or each attribute / class equally often
    total_kimg: float = num(1000.0, gt=0)
    checkpoint_every_kimg: float = num(50.0, ge=0)  # 0: only at the end
    sample_every_kimg: float = num(10.0, ge=0)  # 0: only at the start and the end
    keep_checkpoints: int = num(3, ge=1)
    ema: Union[float, str] = num(10.0, ge=0)  # half-life in kimg (>= 1 or "0.5kimg"), a beta in (0, 1), or 0: off
    ema_rampup: float = num(0.0, ge=0, le=1)  # half-life at most this fraction of the images seen (StyleGAN2-ADA: 0.05); 0: off
    mixed_precision: str = one_of("auto", ("auto", "no", "fp16", "bf16"))
    seed: int = num(0, ge=0)
    sync_batchnorm: bool = False  # SyncBatchNorm on multi-GPU CUDA
    max_steps: int = num(0, ge=0)  # stop after this many steps (0: run to total_kimg); for smoke runs
    channels_last: Union[bool, str] = one_of("auto", ("auto", True, False))  # auto: on, except on MPS (slower)
    compile: bool = False  # torch.compile G and D (first steps slower while it compiles)


@dataclass
class RunConfig:
    dir: str = "runs/demo"
    resume: str = "auto"  # auto | none | PATH to a checkpoint directory


@dataclass
class DistConfig:
    timeout_s: float = num(300.0, gt=0, unit="seconds")  # a collective waiting longer ends the job (a stalled rank)


@dataclass
class LogConfig:
    every_steps: int = num(50, ge=1)  # status line, metrics.jsonl and tracker cadence
    wandb: str = one_of("off", ("off", "offline", "online"))  # not off: adds wandb to log.trackers
    trackers: List[str] = field(default_factory=list)  # any of wandb, tensorboard (Accelerate's trackers)
    project: str = "facegan"
    name: Optional[str] = None


@dataclass
class EvalConfig:
    every_kimg: float = num(0.0, ge=0)  # FID during training; 0: off
    n: int = num(5000, ge=2)  # generated images per evaluation
    ref: Optional[str] = None  # reference shards (default: data.shards, val split)
    inception_weights: Optional[str] = None


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    run: RunConfig = field(default_factory=RunConfig)
    dist: DistConfig = field(default_factory=DistConfig)
    log: LogConfig = field(default_factory=LogConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


def _check_type(key: str, value, tp):
    """Return value converted to tp, or raise UserError naming the key."""
    if isinstance(value, _Typed):
        if tp is str:
            return value.text
        if typing.get_origin(tp) is not Union:
            return _check_type(key, value.parsed, tp)
    origin = typing.get_origin(tp)
    if origin is Union:
        args = typing.get_args(tp)
        if (value.parsed if isinstance(value, _Typed) else value) is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check_type(key, value, arg)
            except UserError:
                pass
        names = " or ".join(getattr(a, "__name__", str(a)) for a in args if a is not type(None))
        raise UserError(f"{key}: expected {names}, got {_shown(value)}")
    if origin in (list, List):
        (inner,) = typing.get_args(tp)
        if isinstance(value, str):  # train.betas=0.5,0.999 as well as [0.5, 0.999]; log.trackers=tensorboard
            value = [read_yaml(part.strip()) for part in value.split(",")] if value.strip() else []
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{key}: expected a list, got {value!r}")
        return [_check_type(f"{key}[{i}]", v, inner) for i, v in enumerate(value)]
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, (str, int)) and str(value).strip().lower() in _BOOL_WORDS:
            return _BOOL_WORDS[str(value).strip().lower()]
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 2e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):  # name: 123 in a file
            return str(value)
    raise UserError(f"{key}: expected {tp.__name__}, got {_shown(value)}")


def _shown(value) -> str:
    return repr(value.text if isinstance(value, _Typed) else value)


def _apply(obj, data: dict, prefix: str = ""):
    hints = typing.get_type_hints(type(obj))
    for k, v in data.items():
        key = f"{prefix}{k}"
        if k not in hints:
            known = ", ".join(f"{prefix}{n}" for n in hints)
            raise UserError(f"unknown config key '{key}' (known: {known})")
        if dataclasses.is_dataclass(hints[k]):
            if not isinstance(v, dict):
                raise UserError(f"{key}: expected a section (mapping), got {_shown(v)}")
            _apply(getattr(obj, k), v, key + ".")
        else:
            setattr(obj, k, _check_type(key, v, hints[k]))


def parse_override(text: str) -> dict:
    """'train.total_kimg=5' -> {'train': {'total_kimg': 5}}; the value is parsed as YAML."""
    if "=" not in text:
        raise UserError(f"override '{text}': expected KEY=VALUE, e.g. train.total_kimg=5")
    key, raw = text.split("=", 1)
    try:
        parsed = read_yaml(raw) if raw != "" else ""
    except yaml.YAMLError:
        parsed = raw
    value = _Typed(raw, parsed)
    nested: dict = {}
    cur = nested
    parts = key.strip().split(".")
    for p in parts[:-1]:
        cur = cur.setdefault(p, {})
    cur[parts[-1]] = value
    return nested


def load_config(path: Optional[str] = None, overrides: List[str] = ()) -> Config:
    cfg = Config()
    if path:
        try:
            with open(path) as f:
                data = read_yaml(f) or {}
        except OSError as err:
            raise UserError(f"--config {path}: {err.strerror}") from None
        except yaml.YAMLError as err:
            raise UserError(f"--config {path}: not valid YAML ({str(err).splitlines()[0]})") from None
        if not isinstance(data, dict):
            raise UserError(f"--config {path}: expected a mapping of sections")
        _apply(cfg, data)
    for text in overrides:
        _apply(cfg, parse_override(text))
    validate(cfg)
    return cfg


def declared_fields(cfg: "Config"):
    """(dotted key, field, value) of every config key."""
    for section in dataclasses.fields(cfg):
        sub = getattr(cfg, section.name)
        for f in dataclasses.fields(sub):
            yield f"{section.name}.{f.name}", f, getattr(sub, f.name)


def validate(cfg: Config) -> None:
    r = cfg.model.resolution
    if r not in (16, 32, 64, 128, 256, 512):
        raise UserError(f"model.resolution: {r} is not a power of two in 16..512")
    check_ranges(cfg)
    for key, f, value in declared_fields(cfg):  # keys with a fixed set of values: an error names them all
        choices = choices_of(f)
        if choices and value not in choices:
            shown = ", ".join(str(c).lower() if isinstance(c, bool) else str(c) for c in choices)
            raise UserError(f"{key}: expected one of {shown}; got {value!r}")
    for i, name in enumerate(cfg.log.trackers):
        if name not in TRACKERS:
            raise UserError(f"log.trackers[{i}]: expected one of {', '.join(TRACKERS)}; got {name!r}")
    if len(cfg.train.betas) != 2:
        raise UserError(f"train.betas: expected two numbers in [0, 1), got {cfg.train.betas}")
    try:
        parse_policy(cfg.train.augment)
    except ValueError as err:
        raise UserError(f"train.augment: {err}") from None
    ema_beta(cfg.train.ema, 1)  # raises on a malformed value


def check_ranges(cfg: Config) -> None:
    """Every numeric key against the Range declared with it (num(...) above): one line naming
    the key, the accepted range and the value, e.g. 'train.lr_g: must be > 0, got -1.0'."""
    for key, f, value in declared_fields(cfg):
        rng = f.metadata.get("range")
        if rng is None or isinstance(value, (str, bool)) or value is None:
            continue  # train.ema="0.5kimg" is checked by ema_beta
        for v in value if isinstance(value, list) else [value]:  # a list: each of its numbers
            problem = rng.problem(v)
            if problem:
                raise UserError(f"{key}: {problem}, got {value!r}")


def ema_beta(ema, batch_size: int, rampup: float = 0.0, images_seen: int = 0) -> float:
    """The per-step EMA decay: from a half-life in kimg, or a beta given directly; 0 turns EMA off.

    rampup > 0 caps the half-life at rampup x images_seen (StyleGAN2-ADA's ema_rampup, Karras et
    al. 2020): early in a run the EMA follows G closely, so a short run's samples show what G
    has learned instead of its initial weights. The cap lifts once images_seen passes
    half-life / rampup (200 kimg for a 10 kimg half-life at 0.05)."""
    beta = _base_ema_beta(ema, batch_size)
    if rampup > 0 and 0 < beta < 1:
        half_life_images = batch_size * math.log(0.5) / math.log(beta)
        capped = min(half_life_images, images_seen * rampup)
        beta = 0.5 ** (batch_size / capped) if capped > 0 else 0.0
    return beta


def _base_ema_beta(ema, batch_size: int) -> float:
    if isinstance(ema, str):
        text = ema.strip().lower()
        if not text.endswith("kimg"):
            raise UserError(f"train.ema: expected a number or 'Nkimg', got {ema!r}")
        try:
            half_life = float(text[:-4])
        except ValueError:
            raise UserError(f"train.ema: expected a number or 'Nkimg', got {ema!r}") from None
    elif ema == 0:
        return 0.0
    elif 0 < ema < 1:
        return float(ema)
    elif ema >= 1:
        half_life = float(ema)
    else:
        raise UserError(f"train.ema: must be >= 0, got {ema}")
    return 0.5 ** (batch_size / (half_life * 1000.0))


def to_dict(cfg: Config) -> dict:
    return dataclasses.asdict(cfg)


def dump_config(cfg: Config, path: str) -> None:
    from .io import write_text_atomic

    write_text_atomic(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))
