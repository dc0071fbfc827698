"""Checks across a whole Config once every value has its type: each number against its declared
range, each fixed-choice key against its values, and the rules one declaration cannot say (a power-of-two
resolution, names that become folders, the augmentation policy and EMA text). Each failure is one
UserError line naming the key."""

import math

from ..errors import UserError
from .augment_policy import parse_policy
from .fields import choices_of
from .schema import Config, declared_fields

# Keys whose value names something the trackers create: log.project is TensorBoard's folder under
# runs/NAME/tensorboard/ (Accelerate joins it to the logging directory as given) and wandb's project;
# log.name is wandb's run name. A path there would write outside the run directory.
NAME_KEYS = ("project", "name")
WANDB_PROJECT_BANS = "/\\#?%:"  # the characters wandb refuses in a project name (wandb_settings.validate_project)


def validate(cfg: Config) -> None:
    """Raise UserError, one line naming the key, for the first value cfg must not run with."""
    r = cfg.model.resolution
    if r not in (16, 32, 64, 128, 256, 512):
        raise UserError(f"model.resolution: {r} is not a power of two in 16..512")
    check_ranges(cfg)
    check_choices(cfg)
    check_names(cfg.log)  # log.project and log.name become folder names: never a path
    if len(cfg.train.betas) != 2:
        raise UserError(f"train.betas: expected two numbers in [0, 1), got {cfg.train.betas}")
    try:
        parse_policy(cfg.train.augment)
    except ValueError as err:
        raise UserError(f"train.augment: {err}") from None
    check_ema(cfg.train.ema)


def check_ranges(cfg: Config) -> None:
    """Every numeric key against the Range declared with it (schema's num(...)): one line naming
    the key, the accepted range and the value, e.g. 'train.lr_g: must be > 0, got -1.0'."""
    for key, f, value in declared_fields(cfg):
        rng = f.metadata.get("range")
        if rng is None or isinstance(value, (str, bool)) or value is None:
            continue  # train.ema="0.5kimg" is checked by check_ema
        for v in value if isinstance(value, list) else [value]:  # a list: each of its numbers
            problem = rng.problem(v)
            if problem:
                raise UserError(f"{key}: {problem}, got {value!r}")


def check_choices(cfg: Config) -> None:
    """Every key declared with one_of against its values; on a list key, each item (key[i]). The
    error names them all: 'train.loss: expected one of bce, hinge, lsgan; got 'nope''."""
    for key, f, value in declared_fields(cfg):
        choices = choices_of(f)
        if not choices:
            continue
        shown = ", ".join(str(c).lower() if isinstance(c, bool) else str(c) for c in choices)
        items = [(f"{key}[{i}]", v) for i, v in enumerate(value)] if isinstance(value, list) else [(key, value)]
        for where, v in items:
            if v not in choices:
                raise UserError(f"{where}: expected one of {shown}; got {v!r}")


def tracker_names(log_cfg) -> list:
    """The trackers a run logs to: log.trackers, plus wandb when log.wandb is not off (a shorthand
    for wandb). Order kept, duplicates dropped; [] means none.
    Takes a LogConfig."""
    names = list(dict.fromkeys(log_cfg.trackers))
    if log_cfg.wandb != "off" and "wandb" not in names:
        names.insert(0, "wandb")
    return names


def check_names(log_cfg) -> None:
    """Refuse a log.project or log.name that is not a plain name: empty, '.', '..', a / or \\, or a NUL
    (on TensorBoard, log.project=../../esc put event files outside the run directory). With wandb on,
    log.project also keeps to wandb's own rule (none of / \\ # ? % :, at most 128 characters), which
    wandb would otherwise enforce only after the run directory exists.
    Takes a LogConfig; raises UserError naming the key and the value."""
    for name in NAME_KEYS:
        value = getattr(log_cfg, name)
        if value is None:
            continue
        key = f"log.{name}"
        if value == "":
            raise UserError(f"{key}: must not be empty (a name, not a path: no /, \\ or ..)")
        if "\0" in value:
            raise UserError(f"{key}: {value!r} holds a NUL character")
        if "/" in value or "\\" in value or value in (".", ".."):
            raise UserError(f"{key}: {value!r} is a name, not a path (no /, \\ or ..)")
    project = log_cfg.project
    if "wandb" in tracker_names(log_cfg) and (len(project) > 128 or any(c in project for c in WANDB_PROJECT_BANS)):
        raise UserError(f"log.project: {project!r} is not a wandb project name "
                        f"(none of / \\ # ? % :, at most 128 characters)")


def check_ema(ema) -> None:
    """train.ema given as text must be a half-life 'Nkimg' with N > 0 (numbers are checked by their
    declared range). Raises UserError naming the key."""
    if isinstance(ema, str):
        half_life_kimg(ema)


def half_life_kimg(ema: str) -> float:
    """train.ema's text 'Nkimg' -> N, a finite number > 0. UserError naming the key otherwise."""
    text = ema.strip().lower()
    try:
        half_life = float(text[:-4]) if text.endswith("kimg") else None
    except ValueError:
        half_life = None
    if half_life is None:
        raise UserError(f"train.ema: expected a number or 'Nkimg', got {ema!r}")
    if not (math.isfinite(half_life) and half_life > 0):  # 0kimg would divide by zero; < 0 grows the EMA
        raise UserError(f"train.ema: a half-life must be a finite number > 0 kimg, got {ema!r}")
    return half_life
