"""Typed run configuration: YAML in, dotted CLI overrides, validation, YAML out.

schema: every key (section, type, default, range or values, meaning); fields: how a key declares
its range (num) or values (one_of); yaml_io: config text read as written, and written back;
convert: read values onto the typed fields; validate: checks across the whole config;
augment_policy: the text of train.augment. Nothing here imports facegan.train: the loss table
hands its names to schema.accept_losses.
"""

from typing import List, Optional

from .augment_policy import parse_policy
from .convert import apply
from .fields import Range, choices_of, num, one_of
from .schema import (TRACKERS, Config, DataConfig, DistConfig, EvalConfig, LogConfig, ModelConfig, RunConfig,
                     TrainConfig, accept_losses, declared_fields, loss_names)
from .validate import check_names, check_ranges, tracker_names, validate
from .yaml_io import DuplicateKeyError, dump_config, parse_override, read_config_file, read_yaml, to_dict

__all__ = ["Config", "DataConfig", "DistConfig", "DuplicateKeyError", "EvalConfig", "LogConfig", "ModelConfig",
           "Range", "RunConfig", "TRACKERS", "TrainConfig", "accept_losses", "check_names", "check_ranges",
           "choices_of", "declared_fields", "dump_config", "load_config", "loss_names", "num", "one_of",
           "parse_override", "parse_policy", "read_yaml", "to_dict", "tracker_names", "validate"]


def load_config(path: Optional[str] = None, overrides: List[str] = ()) -> Config:
    """The defaults, then the file at path (if any), then each KEY=VALUE override in order, validated.
    Raises UserError, one line naming the key (and the file and line it came from)."""
    cfg = Config()
    if path:
        apply(cfg, read_config_file(path), source=path)
    for text in overrides:
        apply(cfg, parse_override(text))
    validate(cfg)
    return cfg
