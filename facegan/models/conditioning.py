"""Conditioning on labels: what a conditional model is told (the condition), and the layers that tell it.

A condition is stored in the architecture dict as {"kind", "fields"}:
- kind "attributes": binary label fields (CelebA's eyeglasses, wearing_hat, ...), any combination;
  c holds +1 (on) or -1 (off) per attribute, so both states carry a signal. C = number of fields.
- kind "class": one class field of K classes (an ImageFolder sub-folder, a hair style); c is
  one-hot. C = K.
G is told c through an embedding joined to z (the classic cGAN, Mirza & Osindero 2014) or through
conditional BatchNorm (de Vries et al. 2017, as in Miyato & Koyama 2018's G). D is told c by
projection (Miyato & Koyama 2018: logit = psi(phi(x)) + <E c, phi(x)>) or by the classic
concatenation of c to the image as constant feature maps; either can add an auxiliary classifier
(AC-GAN, Odena et al. 2017: D also predicts the labels; G is trained to make them readable).

A conditional G keeps a label bank: BANK condition vectors of training images, so sampling with
nothing asked draws conditions as the data has them (joint, not per attribute), and anything
asked (--attr eyeglasses=1) overrides only what was asked.
"""

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from ..data.labels import BINARY, CLASS, LabelField, fields_from_json, find_field, label_name
from ..errors import UserError

CONDITION_KINDS = ("none", "attributes", "class")
G_CONDITIONS = ("embed", "cbn")
# aux: an auxiliary classifier head on D's features (AC-GAN, Odena et al. 2017) trained on real
# images' labels, whose verdict on fakes G is trained to match; projection+aux: both.
# adc: the classifier also tells real from fake per label (ADC-GAN, Hou et al. 2022), so a
# faint attribute on a fake reads as "fake with it", not as the attribute, and G cannot satisfy
# the head without drawing the attribute as the real images do.
D_CONDITIONS = ("projection", "concat", "aux", "projection+aux", "concat+aux", "adc", "projection+adc",
                "concat+adc")
BANK = 1024  # condition vectors of training images kept in a conditional G
EMBED = 64  # width of G's condition embedding (joined to z)


@dataclass(frozen=True)
class Condition:
    kind: str  # "attributes" | "class"
    fields: Tuple[LabelField, ...]

    @property
    def dim(self) -> int:
        return len(self.fields) if self.kind == "attributes" else len(self.fields[0].classes)

    @property
    def names(self) -> List[str]:
        return [f.name for f in self.fields]

    def to_json(self) -> dict:
        return {"kind": self.kind, "fields": [f.to_json() for f in self.fields]}

    @staticmethod
    def from_json(spec: Optional[dict], where: str = "architecture") -> Optional["Condition"]:
        if not spec:
            return None
        if spec.get("kind") not in CONDITION_KINDS[1:]:
            raise UserError(f"{where}: condition kind {spec.get('kind')!r} is not attributes or class")
        return Condition(spec["kind"], fields_from_json(spec.get("fields"), f"{where}: condition"))

    def encode_one(self, labels: Dict[str, int]) -> List[float]:
        """One image's {name: int} labels -> its C floats. KeyError naming a missing field."""
        if self.kind == "attributes":
            return [1.0 if labels[f.name] else -1.0 for f in self.fields]
        onehot = [0.0] * self.dim
        onehot[int(labels[self.fields[0].name])] = 1.0
        return onehot

    def encode(self, labels: Sequence[Dict[str, int]]) -> torch.Tensor:
        """(N, C) float32 of N label dicts."""
        return torch.tensor([self.encode_one(v) for v in labels], dtype=torch.float32).reshape(len(labels), self.dim)

    def decode(self, c: torch.Tensor) -> List[Dict[str, int]]:
        """(N, C) -> N label dicts (attributes: c > 0; class: argmax)."""
        if self.kind == "attributes":
            return [{f.name: int(v > 0) for f, v in zip(self.fields, row)} for row in c.tolist()]
        return [{self.fields[0].name: int(row.argmax())} for row in c]

    def describe(self, labels: Dict[str, int]) -> str:
        """'glasses, hat' (the attributes on; 'none' when none) or a class name."""
        if self.kind == "attributes":
            on = [f.name for f in self.fields if labels.get(f.name)]
            return ", ".join(on) or "none"
        f = self.fields[0]
        return f"{f.name}={f.classes[labels[f.name]]}"


def select_condition(kind: str, fields: Optional[Sequence[LabelField]], names: Sequence[str],
                     where: str) -> Optional[Condition]:
    """The condition model.condition / model.labels ask for, from the dataset's label fields.
    attributes: the binary fields named (default: all of them); class: the class field named
    (default: the only one). UserError naming the key when the data cannot give it."""
    if kind == "none":
        if names:
            raise UserError("model.labels: set only with model.condition=attributes or class")
        return None
    if not fields:
        raise UserError(f"model.condition={kind}: {where} has no labels (facegan-shard packs them: "
                        f"CelebA's list_attr_celeba.txt, --labels folders, --label-columns, synthetic:cartoon)")
    want = BINARY if kind == "attributes" else CLASS
    chosen = [find_field(fields, n, "model.labels") for n in names] if names else \
        [f for f in fields if f.kind == want]
    twice = sorted({f.name for f in chosen if chosen.count(f) > 1})
    if twice:
        raise UserError(f"model.labels: {', '.join(twice)} named twice")
    wrong = [f.name for f in chosen if f.kind != want]
    if wrong:
        raise UserError(f"model.labels: {', '.join(wrong)} is not a {want} label; model.condition={kind} "
                        f"takes {want} labels (" + ", ".join(f.name for f in fields if f.kind == want) + ")")
    if not chosen:
        raise UserError(f"model.condition={kind}: {where} has no {want} labels "
                        f"(labels: {', '.join(f.name for f in fields)})")
    if kind == "class" and len(chosen) > 1:
        raise UserError(f"model.labels: model.condition=class takes one class label; name it from "
                        f"{', '.join(f.name for f in chosen)}")
    return Condition(kind, tuple(chosen))


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
    i's condition depends on (seed, i) only, like facegan.latents, so any slice agrees."""
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


def balanced_conditions(cond: Condition, n: int, device="cpu") -> torch.Tensor:
    """n conditions (n, C) drawn with the global RNG of `device` so that every attribute is on
    with probability 1/2, independently (+-1 vectors), or every class equally likely (one-hot)."""
    if cond.kind == "attributes":
        return torch.where(torch.rand(n, cond.dim, device=device) < 0.5, 1.0, -1.0)
    return nn.functional.one_hot(torch.randint(cond.dim, (n,), device=device), cond.dim).float()


def aux_loss(cond: Condition, logits: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """The auxiliary classifier's loss (AC-GAN) of its (N, C) logits against conditions c (N, C):
    binary cross-entropy per attribute (on = c > 0), or cross-entropy over the classes."""
    logits = logits.float()
    if cond.kind == "attributes":
        return nn.functional.binary_cross_entropy_with_logits(logits, (c > 0).float())
    return nn.functional.cross_entropy(logits, c.argmax(1))


def adc_width(cond: Condition) -> int:
    """Output width of ADC-GAN's classifier head: per attribute 4 logits (off, on) x (real, fake),
    or 2K for one class of K (K real classes, then K fake ones)."""
    return 4 * cond.dim if cond.kind == "attributes" else 2 * cond.dim


def adc_loss(cond: Condition, logits: torch.Tensor, c: torch.Tensor, real: bool) -> torch.Tensor:
    """ADC-GAN's classifier loss (Hou et al. 2022) of its (N, adc_width) logits against conditions
    c (N, C), taken as real images' labels (real=True) or fakes' (real=False): cross-entropy over
    (label, source) per attribute (averaged over attributes), or over the 2K (class, source) pairs.
    D minimises it on reals (real=True) and fakes (real=False); G on fakes with real=True."""
    logits = logits.float()
    if cond.kind == "attributes":
        target = (c > 0).long() + (0 if real else 2)  # 0 off-real, 1 on-real, 2 off-fake, 3 on-fake
        return nn.functional.cross_entropy(logits.reshape(-1, cond.dim, 4).transpose(1, 2), target)
    return nn.functional.cross_entropy(logits, c.argmax(1) + (0 if real else cond.dim))


class CondBatchNorm2d(nn.Module):
    """BatchNorm whose scale and shift come from the condition: y = BN(x) * (1 + W_g c) + W_b c
    (de Vries et al. 2017). W_g, W_b start at 0, so it starts as plain BatchNorm."""

    def __init__(self, channels: int, cond_dim: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gain = nn.Linear(cond_dim, channels, bias=False)
        self.bias = nn.Linear(cond_dim, channels, bias=False)
        self.gain.zero_init = self.bias.zero_init = True  # honoured by the architectures' init

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.bn(x) * (1 + self.gain(c))[:, :, None, None] + self.bias(c)[:, :, None, None]
