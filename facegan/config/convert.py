"""Values as read (yaml_io) set onto a Config's typed fields. An unknown key or a value of the wrong
type is a UserError naming the key (and the file and line it came from), so a typo never silently
trains with a default."""

import dataclasses
import difflib
import re
import typing
from typing import List, Optional, Union

from ..errors import UserError
from .schema import Config, declared_fields
from .yaml_io import FLOAT_12, Typed, float12, plain, read_part

# Boolean keys take the words YAML 1.2 leaves as text (data.flip=off).
_BOOL_WORDS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}
_NONFINITE = re.compile(r"^[-+]?(?:nan|inf|infinity)$", re.IGNORECASE)
_YAML11_NUMBER = re.compile(r"^(?=.*[:_])[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])*(?:\.[0-9_]*)?$")  # 1:30, 1_000 (YAML 1.1)


def apply(obj, data: dict, prefix: str = "", source: Optional[str] = None) -> None:
    """Set obj's fields (a Config or one of its sections) from data (nested dicts for sections).
    source: the config file data came from; an error about one of its keys then starts
    'FILE: line N: '. Raises UserError for an unknown key or a value its field's type refuses."""
    hints = typing.get_type_hints(type(obj))
    for k, v in data.items():
        key = f"{prefix}{k}"
        if k in hints and dataclasses.is_dataclass(hints[k]) and isinstance(v, dict):
            apply(getattr(obj, k), v, key + ".", source)
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


def _check_type(key: str, value, tp):
    """Return value converted to tp, or raise UserError naming the key."""
    if isinstance(value, Typed):
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
        if (value.parsed if isinstance(value, Typed) else value) is None and type(None) in args:
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
            value = [read_part(part.strip()) for part in value.split(",")] if value.strip() else []
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
        if isinstance(value, str) and FLOAT_12.match(value):
            return float12(value)
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


def _shown(value) -> str:
    return repr(value.text if isinstance(value, Typed) else plain(value))


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
