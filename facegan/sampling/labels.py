"""Labels for a conditional generator: what a user asks for (--attr, --class), the label bank draws
(as the training data has them), and the conditions of toggle grids and the trainer's grid rows."""

from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

from ..conditions import Condition
from ..data.labels import BINARY, find_field, label_name
from ..errors import UserError


def parse_request(cond: Condition, attrs: Optional[str] = None, klass: Optional[str] = None) -> Dict[str, int]:
    """What a user asked for: --attr 'eyeglasses=1,wearing_hat=0' and/or --class K (an index or a
    class name). UserError naming the flag for anything the generator does not know."""
    if cond is None:
        if attrs or klass is not None:
            raise UserError("--attr/--class: this generator is unconditional (trained with model.condition=none)")
        return {}
    asked = {}
    if attrs:
        if cond.kind != "attributes":
            raise UserError(f"--attr: this generator is conditioned on a class ({cond.names[0]}); use --class")
        for part in (p.strip() for p in attrs.split(",") if p.strip()):
            name, sep, value = part.partition("=")
            f = find_field(cond.fields, name, "--attr") if sep else None
            if f is None or value.strip().lower() not in ("0", "1", "true", "false", "on", "off", "yes", "no"):
                raise UserError(f"--attr {part}: expected NAME=0 or NAME=1 (names: {', '.join(cond.names)})")
            asked[f.name] = int(value.strip().lower() in ("1", "true", "on", "yes"))
    if klass is not None:
        if cond.kind != "class":
            raise UserError("--class: this generator is conditioned on attributes; use --attr NAME=0|1")
        f = cond.fields[0]
        text = str(klass).strip()
        names = [label_name(c) for c in f.classes]
        if text.isdigit() and int(text) < len(f.classes):
            asked[f.name] = int(text)
        elif label_name(text) in names:
            asked[f.name] = names.index(label_name(text))
        else:
            raise UserError(f"--class {klass}: expected 0..{len(f.classes) - 1} or a class name "
                            f"({', '.join(f.classes)})")
    return asked


def bank_conditions(G: nn.Module, n: int, seed: int, start: int = 0) -> torch.Tensor:
    """(n, C) conditions for samples start..start+n-1 of `seed`, drawn from G's label bank: sample
    i's condition depends on (seed, i) only, like facegan.sampling.latents, so any slice agrees."""
    bank = G.label_bank.detach().cpu()
    gen = torch.Generator().manual_seed(seed * 1_000_003 + 17)
    index = torch.randint(len(bank), (start + n,), generator=gen)[start:]
    return bank[index].clone()


def apply_request(cond: Condition, c: torch.Tensor, asked: Dict[str, int]) -> torch.Tensor:
    """c (N, C) with the asked labels set (the rest as drawn)."""
    c = c.clone()
    for i, f in enumerate(cond.fields):
        if f.name not in asked:
            continue
        if cond.kind == "attributes":
            c[:, i] = 1.0 if asked[f.name] else -1.0
        else:
            c.zero_()
            c[:, asked[f.name]] = 1.0
    return c


def conditions_for(G: nn.Module, n: int, seed: int, start: int = 0, asked: Optional[Dict[str, int]] = None):
    """(n, C) conditions for a conditional G (bank draws, with `asked` applied), or None."""
    cond = getattr(G, "condition", None)
    if cond is None:
        return None
    c = bank_conditions(G, n, seed, start)
    return apply_request(cond, c, asked) if asked else c


def toggle_conditions(cond: Condition, base: torch.Tensor, name: str) -> Tuple[torch.Tensor, List[str]]:
    """Rows for a grid that walks one label over fixed faces: base (N, C) conditions repeated once
    per state of `name` (an attribute: off, on; the class field: every class). Returns the
    (states * N, C) conditions and one caption per state."""
    f = find_field(cond.fields, name, "--toggle")
    states = [0, 1] if f.kind == BINARY else list(range(len(f.classes)))
    rows = [apply_request(cond, base, {f.name: s}) for s in states]
    captions = [f"{f.name}={s}" if f.kind == BINARY else f"{f.name}={f.classes[s]}" for s in states]
    return torch.cat(rows), captions


def grid_conditions(G: nn.Module, rows: int = 8) -> Optional[torch.Tensor]:
    """(R, C) one condition per grid row for a conditional G (None otherwise): each class (up
    to 16), or the first `rows` distinct label combinations of its bank."""
    cond = getattr(G, "condition", None)
    if cond is None:
        return None
    if cond.kind == "class":
        return torch.eye(cond.dim)[:16]
    distinct = []
    for row in G.label_bank.detach().cpu():
        if not any(torch.equal(row, d) for d in distinct):
            distinct.append(row)
        if len(distinct) == rows:
            break
    return torch.stack(distinct)
