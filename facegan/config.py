"""Typed run configuration: YAML in, dotted CLI overrides, validation, YAML out.

Every key is a dataclass field; an unknown key or a value of the wrong type is a UserError
naming the key, so a typo never silently trains with a default.
"""

import dataclasses
import difflib
import math
import re
import typing
from dataclasses import dataclass, field
from typing import List, Optional, Union

import yaml

from .errors import UserError
from .models import ARCHITECTURES
from .conditions import CONDITION_KINDS, D_CONDITIONS, G_CONDITIONS
from .models.dcgan import D_NORMS
from .train.augment import parse_policy
from .train.losses import LOSSES
from .train.tracking import TRACKERS, check_names


_MERGE = "tag:yaml.org,2002:merge"
# YAML 1.2 core schema numbers (yaml.org/spec/1.2.2 10.3.2). PyYAML reads YAML 1.1, where 2024_05 is
# 202405, 0755 is 493 (octal) and 1:30 is 90 (sexagesimal) (pyyaml#395); here those stay text.
_INT_12 = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT_12 = re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
                       r"|[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN)$")


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A key given twice in one mapping; PyYAML would keep the last silently (pyyaml#165)."""

    def __init__(self, key: str, first_line: int, line: int, mark):
        super().__init__(None, None, f"key {key!r} given twice (first at line {first_line})", mark)
        self.key, self.first_line, self.line = key, first_line, line


class _Key(str):
    """A mapping key as written in a config file, with its line (1-based), for error lines."""

    def __new__(cls, text: str, line: Optional[int] = None):
        key = super().__new__(cls, text)
        key.line = line
        return key


class _Loader(yaml.SafeLoader):
    """YAML read as written. Booleans, numbers and nulls are YAML 1.2's: only true/false are
    booleans, so off, no, on and yes stay the words the user typed (log.wandb=off,
    train.mixed_precision=no; boolean keys accept them below); numbers have no 1.1 octal, sexagesimal,
    '_' separators or dates. Every plain scalar comes back as _Typed(source text, reading), so a text
    key takes the text typed (log.name: 0755 is '0755'). Keys come back as _Key (text and line), and
    a key given twice in one mapping raises DuplicateKeyError (pyyaml#165). Merge keys (<<: *anchor)
    work as in YAML 1.1: the mapping's own keys win over merged ones."""

    def construct_object(self, node, deep=False):
        value = super().construct_object(node, deep)
        if isinstance(node, yaml.ScalarNode) and node.style is None and not isinstance(value, _Typed):
            return _Typed(node.value, value)
        return value

    def construct_mapping(self, node, deep=False):
        if not isinstance(node, yaml.MappingNode):
            return super().construct_mapping(node, deep)  # PyYAML's own error, with its mark
        self._check_unique(node)
        mapping = super().construct_mapping(node, deep)  # folds merged keys in first; own keys win
        lines = {k.value: k.start_mark.line + 1 for k, _ in node.value if isinstance(k, yaml.ScalarNode)}
        out = {}
        for key, value in mapping.items():
            text = key.text if isinstance(key, _Typed) else str(key)
            out[_Key(text, lines.get(text))] = value
        return out

    def _check_unique(self, node):
        """Raise DuplicateKeyError for a key given twice in node, or in a mapping merged into it
        (<<: {...}; PyYAML folds those in as nodes, never constructing them as mappings)."""
        first = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                for merged in value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]:
                    if isinstance(merged, yaml.MappingNode):
                        self._check_unique(merged)
            elif isinstance(key_node, yaml.ScalarNode):
                line = key_node.start_mark.line + 1
                if key_node.value in first:
                    raise DuplicateKeyError(key_node.value, first[key_node.value], line, key_node.start_mark)
                first[key_node.value] = line

    def construct_yaml_int(self, node):
        text = self.construct_scalar(node)
        if not _INT_12.match(text):  # only an explicit !!int tag gets here with other text
            raise yaml.constructor.ConstructorError(None, None, f"not an integer: {text!r}", node.start_mark)
        if text[:2] in ("0o", "0x"):
            return int(text[2:], 8 if text[1] == "o" else 16)
        return int(text)  # decimal, leading zeros too: 0755 is 755

    def construct_yaml_float(self, node):
        text = self.construct_scalar(node)
        if not _FLOAT_12.match(text):
            raise yaml.constructor.ConstructorError(None, None, f"not a number: {text!r}", node.start_mark)
        return _float12(text)


def _float12(text: str) -> float:
    """A YAML 1.2 float's value (text matches _FLOAT_12): .inf, -.inf, .nan spelled YAML's way."""
    low = text.lower()
    if low.endswith(".inf"):
        return -math.inf if low[0] == "-" else math.inf
    return math.nan if low == ".nan" else float(text)


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)
_Loader.add_constructor("tag:yaml.org,2002:float", _Loader.construct_yaml_float)
_YAML11_ONLY = {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
                "tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:value"}
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in _YAML11_ONLY]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                              list("tTfF"))
_Loader.add_implicit_resolver("tag:yaml.org,2002:int", _INT_12, list("-+0123456789"))  # before float: 12 is an int
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+0123456789."))
_BOOL_WORDS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}


def read_yaml(text_or_stream):
    """YAML text or a stream, read as _Loader reads it, with plain values (each scalar's reading,
    keys as text). Raises yaml.YAMLError; DuplicateKeyError for a key given twice."""
    return _plain(_read_as_written(text_or_stream))


def _read_as_written(text_or_stream):
    """Like read_yaml, but plain scalars stay _Typed(text, reading) and keys _Key(text, line)."""
    return yaml.load(text_or_stream, Loader=_Loader)


def _plain(value):
    """value with every _Typed replaced by its reading and every key by plain text."""
    if isinstance(value, _Typed):
        return _plain(value.parsed)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


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
    """A value as typed (on the command line, or a plain scalar in a config file) and its YAML
    reading. The key's type picks one, so log.name=123, run.dir=2024_05 or log.project: 0755 stay the
    text typed while train.lr_g=1e-3 is a number."""
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
    # or class (one class label); none: unconditional. See facegan.conditions.
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
    augment: str = "none"  # DiffAugment policy for D: none, or a comma list of color, translation, cutout; or ada
    ada_target: float = num(0.6, gt=0, lt=1)  # ADA: the r_t = E[sign(D(real))] that p is steered to (Karras et al. 2020)
    ada_kimg: float = num(500.0, gt=0)  # ADA: p can travel from 0 to 1 in this many kimg
    freeze_d: int = num(0, ge=0)  # FreezeD: D's first this many blocks keep their weights (fine-tuning); 0: none
    r1_gamma: float = num(0.0, ge=0)  # R1 gradient penalty weight on real images; 0: off
    r1_every: int = num(16, ge=1)  # lazy R1: apply the penalty every this many steps (scaled to match)
    aux_weight: float = num(1.0, ge=0)  # conditional D with a classifier head (d_condition *aux, *adc): its loss weight
    fake_labels: str = one_of("data", ("data", "balanced"))  # conditional runs: the fakes' labels, the real batch's or each attribute / class equally often
    total_kimg: float = num(1000.0, gt=0)
    checkpoint_every_kimg: float = num(50.0, ge=0)  # 0: only at the end
    sample_every_kimg: float = num(10.0, ge=0)  # 0: only at the start and the end
    keep_checkpoints: int = num(3, ge=1)
    ema: Union[float, str] = num(10.0, ge=0)  # half-life in kimg (>= 1 or "0.5kimg"), a beta in (0, 1), or 0: off
    ema_rampup: float = num(0.05, ge=0, le=1)  # half-life at most this fraction of the images seen (StyleGAN2-ADA's 0.05); 0: off
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
    init: Optional[str] = None  # fine-tune from: a run or checkpoint dir, an export, a Hub folder or repo id


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
            if value.parsed is None and value.text == "":  # `dir:` with nothing after it in a file
                raise UserError(f"{key}: expected str, got nothing")
            return value.text
        if tp == List[str] and isinstance(value.parsed, (int, float)):  # model.labels=2024_05: as typed
            return _check_type(key, value.text, tp)
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
            value = [_read_part(part.strip()) for part in value.split(",")] if value.strip() else []
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{key}: expected a list, got {_shown(value)}")
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
        # Quoted numbers ("2e-4") and nan/inf (refused by the range check, naming the key). Not
        # Python's float() at large: it takes 1_000 and full-width digits, which YAML 1.2 does not.
        if isinstance(value, str) and _FLOAT_12.match(value):
            return _float12(value)
        if isinstance(value, str) and _NONFINITE.match(value):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):  # name: 123 in a file
            return str(value)
    hint = ""
    if tp in (int, float) and isinstance(value, str) and _YAML11_NUMBER.match(value):
        hint = " (numbers are YAML 1.2 decimals here: no 1:30 sexagesimal, no _ separators)"
    raise UserError(f"{key}: expected {tp.__name__}, got {_shown(value)}{hint}")


_NONFINITE = re.compile(r"^[-+]?(?:nan|inf|infinity)$", re.IGNORECASE)
_YAML11_NUMBER = re.compile(r"^(?=.*[:_])[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])*(?:\.[0-9_]*)?$")  # 1:30, 1_000 (YAML 1.1)


def _read_part(text: str):
    """One item of a comma list typed on the command line (log.trackers=wandb,tensorboard), as written."""
    try:
        value = _read_as_written(text)
    except yaml.YAMLError:
        return _Typed(text, text)
    return value if value is not None else _Typed(text, None)


def _shown(value) -> str:
    return repr(value.text if isinstance(value, _Typed) else _plain(value))


def _apply(obj, data: dict, prefix: str = "", source: Optional[str] = None):
    """Set obj's fields from data (nested dicts for sections). source: the config file data came
    from; an error about one of its keys then starts 'FILE: line N: '."""
    hints = typing.get_type_hints(type(obj))
    for k, v in data.items():
        key = f"{prefix}{k}"
        if k in hints and dataclasses.is_dataclass(hints[k]) and isinstance(v, dict):
            _apply(getattr(obj, k), v, key + ".", source)
            continue
        try:
            if k not in hints:
                raise UserError(_unknown_key(key, prefix, hints))
            if dataclasses.is_dataclass(hints[k]):
                raise UserError(f"{key}: expected a section (mapping), got {_shown(v)}")
            setattr(obj, k, _check_type(key, v, hints[k]))
        except UserError as err:
            line = getattr(k, "line", None)
            if source is None or line is None:
                raise
            raise UserError(f"{source}: line {line}: {err}") from None


def _unknown_key(key: str, prefix: str, hints: dict) -> str:
    """'unknown config key 'train.total_kimgs'; did you mean 'train.total_kimg'? (known: ...)': the
    nearest name (difflib.get_close_matches) in the key's own section, else in any section
    (model.total_kimg suggests train.total_kimg). Names are compared without their section, which
    would make every key of a section look alike."""
    known = [f"{prefix}{n}" for n in hints]
    name = key[len(prefix):]
    close = [f"{prefix}{n}" for n in difflib.get_close_matches(name, list(hints), n=1)]
    if not close and prefix:
        elsewhere = {f.name: k for k, f, _ in declared_fields(Config())}
        close = [elsewhere[n] for n in difflib.get_close_matches(name, list(elsewhere), n=1)]
    guess = f"; did you mean '{close[0]}'?" if close else ""
    return f"unknown config key '{key}'{guess} (known: {', '.join(known)})"


def parse_override(text: str) -> dict:
    """'train.total_kimg=5' -> {'train': {'total_kimg': 5}}; the value is parsed as YAML."""
    if "=" not in text:
        raise UserError(f"override '{text}': expected KEY=VALUE, e.g. train.total_kimg=5")
    key, raw = text.split("=", 1)
    try:
        parsed = _read_as_written(raw) if raw != "" else ""
    except yaml.YAMLError:
        parsed = raw
    value = _Typed(raw, parsed.parsed if isinstance(parsed, _Typed) else parsed)
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
        data = _read_config_file(path)
        _apply(cfg, data, source=path)
    for text in overrides:
        _apply(cfg, parse_override(text))
    validate(cfg)
    return cfg


def _read_config_file(path: str) -> dict:
    """A config file's sections, read as written (_Loader). Raises UserError with the file, line and
    column of a YAML syntax error (yaml.MarkedYAMLError's problem_mark) or both lines of a key
    given twice."""
    try:
        with open(path, "rb") as f:  # bytes: PyYAML detects UTF-8/16 and reports bad bytes as YAMLError
            data = _read_as_written(f)
    except OSError as err:
        raise UserError(f"--config {path}: {err.strerror}") from None
    except DuplicateKeyError as err:
        raise UserError(f"{path}: line {err.line}: {err.problem}") from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = err.problem or str(err).splitlines()[0]
        if err.context and err.context_mark and err.context_mark is not mark:  # where the list, quote... began
            problem = (f"{err.context} at line {err.context_mark.line + 1}, column {err.context_mark.column + 1}: "
                       f"{problem}")
        raise UserError(f"{path}: {where}not valid YAML ({problem})") from None
    except yaml.YAMLError as err:
        raise UserError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"--config {path}: expected a mapping of sections")
    return data


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
    check_names(cfg.log)  # log.project and log.name become folder names: never a path
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


def dump_config(cfg: Config, path: str, notes=()) -> None:
    """The resolved config as YAML; notes (what was chosen for the user, as the run printed them)
    lead it as comments, so the file still loads as the config it is."""
    from .io import write_text_atomic

    header = "".join(f"# {line}\n" for note in notes for line in str(note).splitlines())
    write_text_atomic(path, header + yaml.safe_dump(to_dict(cfg), sort_keys=False))
