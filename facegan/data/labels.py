"""Labels: what a dataset says about each image, from source to shard to model.

A dataset's labels are a list of fields, each either a binary attribute (CelebA's 40 attributes,
a tag: 0 or 1) or one class out of K (an ImageFolder sub-folder, a ClassLabel column). The
manifest names them under "labels"; each shard sample carries its values in its .json as
{"labels": {NAME: int}} (a binary field's 0/1, a class field's index). Names are lower-case
with underscores (CelebA's "Wearing_Hat" is "wearing_hat"), as users type them in --attr.
"""

import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from ..errors import UserError

BINARY, CLASS = "binary", "class"


@dataclass(frozen=True)
class LabelField:
    name: str
    kind: str  # BINARY | CLASS
    classes: Tuple[str, ...] = ()  # the class names of a CLASS field, index order

    def to_json(self) -> dict:
        out = {"name": self.name, "kind": self.kind}
        if self.kind == CLASS:
            out["classes"] = list(self.classes)
        return out

    def check(self, value, where: str) -> int:
        """value as this field's int; UserError naming `where` when it is not one."""
        v = int(value) if isinstance(value, (int, bool)) else None
        top = 2 if self.kind == BINARY else len(self.classes)
        if v is None or not 0 <= v < top:
            raise UserError(f"{where}: label {self.name}={value!r} is not "
                            + ("0 or 1" if self.kind == BINARY else f"a class index in 0..{top - 1}"))
        return v


def label_name(text: str) -> str:
    """'Wearing_Hat' / 'wearing hat' -> 'wearing_hat': how names are stored and matched."""
    name = re.sub(r"[^0-9a-z]+", "_", str(text).strip().lower()).strip("_")
    if not name:
        raise UserError(f"label name {text!r}: empty after normalising")
    return name


def fields_from_json(spec, where: str = "labels") -> Tuple[LabelField, ...]:
    """The fields of a manifest's (or checkpoint's) "labels" value: a dict with "fields", or the
    list itself. UserError naming `where` for anything malformed."""
    items = spec.get("fields") if isinstance(spec, dict) else spec
    if not isinstance(items, list):
        raise UserError(f"{where}: expected a list of label fields")
    fields, seen = [], set()
    for i, f in enumerate(items):
        if not isinstance(f, dict) or not isinstance(f.get("name"), str) or f.get("kind") not in (BINARY, CLASS):
            raise UserError(f"{where}: field {i} is not {{name, kind: binary|class}}")
        classes = tuple(str(c) for c in f.get("classes") or ())
        if f["kind"] == CLASS and len(classes) < 2:
            raise UserError(f"{where}: class field {f['name']} names fewer than 2 classes")
        if f["name"] in seen:
            raise UserError(f"{where}: field {f['name']} appears twice")
        seen.add(f["name"])
        fields.append(LabelField(f["name"], f["kind"], classes if f["kind"] == CLASS else ()))
    return tuple(fields)


def manifest_labels(fields: Sequence[LabelField], source: str, values: List[Dict[str, int]]) -> dict:
    """The manifest's "labels" entry: fields, where they came from, and per-field counts over the
    written images (binary: how many are 1; class: how many per class), so class balance shows."""
    counts = {}
    for f in fields:
        col = [v[f.name] for v in values if f.name in v]
        counts[f.name] = sum(col) if f.kind == BINARY else [col.count(k) for k in range(len(f.classes))]
    return {"fields": [f.to_json() for f in fields], "source": source, "labeled": len(values),
            "counts": counts}


def find_field(fields: Sequence[LabelField], name: str, where: str) -> LabelField:
    """The field called `name` (matched after label_name); UserError listing the names otherwise."""
    key = label_name(name)
    for f in fields:
        if f.name == key:
            return f
    have = ", ".join(f.name for f in fields) or "none"
    raise UserError(f"{where}: no label called {name!r} (labels: {have})")


def manifest_fields(manifest: dict, where: str) -> Optional[Tuple[LabelField, ...]]:
    """A dataset's label fields, or None for an unlabeled dataset (and shards packed before labels)."""
    spec = manifest.get("labels")
    return fields_from_json(spec, f"{where}: labels") if spec else None
