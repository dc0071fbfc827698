"""Config text in and out: YAML files and KEY=VALUE overrides read as written, and the resolved
config written back as YAML. What a value means for its key is convert's job; here a plain scalar
keeps both its source text and its YAML reading (Typed), and a file key keeps its line (Key)."""

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Optional

import yaml

from ..errors import UserError

_MERGE = "tag:yaml.org,2002:merge"
# YAML 1.2 core schema numbers (yaml.org/spec/1.2.2 10.3.2). PyYAML reads YAML 1.1, where 2024_05 is
# 202405, 0755 is 493 (octal) and 1:30 is 90 (sexagesimal) (pyyaml#395); here those stay text.
_INT_12 = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
FLOAT_12 = re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
                      r"|[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN)$")


@dataclass(frozen=True)
class Typed:
    """A value as typed (on the command line, or a plain scalar in a config file) and its YAML
    reading. The key's type picks one, so log.name=123, run.dir=2024_05 or log.project: 0755 stay the
    text typed while train.lr_g=1e-3 is a number."""
    text: str
    parsed: object


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A key given twice in one mapping; PyYAML would keep the last silently (pyyaml#165)."""

    def __init__(self, key: str, first_line: int, line: int, mark):
        super().__init__(None, None, f"key {key!r} given twice (first at line {first_line})", mark)
        self.key, self.first_line, self.line = key, first_line, line


class Key(str):
    """A mapping key as written in a config file, with its line (1-based), for error lines."""

    def __new__(cls, text: str, line: Optional[int] = None):
        key = super().__new__(cls, text)
        key.line = line
        return key


class _Loader(yaml.SafeLoader):
    """YAML read as written. Booleans, numbers and nulls are YAML 1.2's: only true/false are
    booleans, so off, no, on and yes stay the words the user typed (log.wandb=off,
    train.mixed_precision=no; boolean keys accept them in convert); numbers have no 1.1 octal,
    sexagesimal, '_' separators or dates. Every plain scalar comes back as Typed(source text, reading),
    so a text key takes the text typed (log.name: 0755 is '0755'). Keys come back as Key (text and
    line), and a key given twice in one mapping raises DuplicateKeyError (pyyaml#165). Merge keys
    (<<: *anchor) work as in YAML 1.1: the mapping's own keys win over merged ones."""

    def construct_object(self, node, deep=False):
        value = super().construct_object(node, deep)
        if isinstance(node, yaml.ScalarNode) and node.style is None and not isinstance(value, Typed):
            return Typed(node.value, value)
        return value

    def construct_mapping(self, node, deep=False):
        if not isinstance(node, yaml.MappingNode):
            return super().construct_mapping(node, deep)  # PyYAML's own error, with its mark
        self._check_unique(node)
        mapping = super().construct_mapping(node, deep)  # folds merged keys in first; own keys win
        lines = {k.value: k.start_mark.line + 1 for k, _ in node.value if isinstance(k, yaml.ScalarNode)}
        out = {}
        for key, value in mapping.items():
            text = key.text if isinstance(key, Typed) else str(key)
            out[Key(text, lines.get(text))] = value
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
        if not FLOAT_12.match(text):
            raise yaml.constructor.ConstructorError(None, None, f"not a number: {text!r}", node.start_mark)
        return float12(text)


def float12(text: str) -> float:
    """A YAML 1.2 float's value (text matches FLOAT_12): .inf, -.inf, .nan spelled YAML's way."""
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
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", FLOAT_12, list("-+0123456789."))


def read_yaml(text_or_stream):
    """YAML text or a stream, read as _Loader reads it, with plain values (each scalar's reading,
    keys as text). Raises yaml.YAMLError; DuplicateKeyError for a key given twice."""
    return plain(read_as_written(text_or_stream))


def read_as_written(text_or_stream):
    """Like read_yaml, but plain scalars stay Typed(text, reading) and keys Key(text, line)."""
    return yaml.load(text_or_stream, Loader=_Loader)


def plain(value):
    """value with every Typed replaced by its reading and every key by plain text."""
    if isinstance(value, Typed):
        return plain(value.parsed)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def read_part(text: str):
    """One item of a comma list typed on the command line (log.trackers=wandb,tensorboard), as written."""
    try:
        value = read_as_written(text)
    except yaml.YAMLError:
        return Typed(text, text)
    return value if value is not None else Typed(text, None)


def read_config_file(path: str) -> dict:
    """A config file's sections, read as written (_Loader). Raises UserError with the file, line and
    column of a YAML syntax error (yaml.MarkedYAMLError's problem_mark) or both lines of a key
    given twice."""
    try:
        with open(path, "rb") as f:  # bytes: PyYAML detects UTF-8/16 and reports bad bytes as YAMLError
            data = read_as_written(f)
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


def parse_override(text: str) -> dict:
    """'train.total_kimg=5' -> {'train': {'total_kimg': Typed('5', 5)}}: the value as typed, with its
    YAML reading. Raises UserError when there is no '='."""
    if "=" not in text:
        raise UserError(f"override '{text}': expected KEY=VALUE, e.g. train.total_kimg=5")
    key, raw = text.split("=", 1)
    try:
        parsed = read_as_written(raw) if raw != "" else ""
    except yaml.YAMLError:
        parsed = raw
    value = Typed(raw, parsed.parsed if isinstance(parsed, Typed) else parsed)
    nested: dict = {}
    cur = nested
    parts = key.strip().split(".")
    for p in parts[:-1]:
        cur = cur.setdefault(p, {})
    cur[parts[-1]] = value
    return nested


def to_dict(cfg) -> dict:
    """A Config as nested plain dicts (section -> key -> value)."""
    return dataclasses.asdict(cfg)


def dump_config(cfg, path: str, notes=()) -> None:
    """The resolved config as YAML; notes (what was chosen for the user, as the run printed them)
    lead it as comments, so the file still loads as the config it is."""
    from ..io import write_text_atomic

    header = "".join(f"# {line}\n" for note in notes for line in str(note).splitlines())
    write_text_atomic(path, header + yaml.safe_dump(to_dict(cfg), sort_keys=False))
