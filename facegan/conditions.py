"""Conditioning on labels: what a conditional model is told (the condition), and how D is told it
(DConditioning, parsed once from model.d_condition).

A condition is stored in the architecture dict as {"kind", "fields"}:
- kind "attributes": binary label fields (CelebA's eyeglasses, wearing_hat, ...), any combination;
  c holds +1 (on) or -1 (off) per attribute, so both states carry a signal. C = number of fields.
- kind "class": one class field of K classes (an ImageFolder sub-folder, a hair style); c is
  one-hot. C = K.
G is told c through an embedding joined to z (the classic cGAN, Mirza & Osindero 2014) or through
conditional BatchNorm (de Vries et al. 2017, as in Miyato & Koyama 2018's G). D is told c by
projection (Miyato & Koyama 2018: logit = psi(phi(x)) + <E c, phi(x)>) or by the classic
concatenation of c to the image as constant feature maps; either can add an auxiliary classifier
(AC-GAN, Odena et al. 2017: D also predicts the labels; G is trained to make them readable) or
ADC-GAN's head (Hou et al. 2022: D predicts (label, real or fake) pairs).

A conditional G keeps a label bank: a bank of condition vectors of training images, so sampling with
nothing asked draws conditions as the data has them (joint, not per attribute), and anything
asked (--attr eyeglasses=1) overrides only what was asked.
"""

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from .data.labels import BINARY, CLASS, LabelField, fields_from_json, find_field
from .errors import UserError

CONDITION_KINDS = ("none", "attributes", "class")
G_CONDITIONS = ("embed", "cbn")
# aux: an auxiliary classifier head on D's features (AC-GAN, Odena et al. 2017) trained on real
# images' labels, whose verdict on fakes G is trained to match; projection+aux: both.
# adc: the classifier also tells real from fake per label (ADC-GAN, Hou et al. 2022), so a
# faint attribute on a fake reads as "fake with it", not as the attribute, and G cannot satisfy
# the head without drawing the attribute as the real images do.
D_CONDITIONS = ("projection", "concat", "aux", "projection+aux", "concat+aux", "adc", "projection+adc",
                "concat+adc")
D_INPUTS = ("projection", "concat")  # how D reads c besides its images
D_HEADS = ("aux", "adc")  # a classifier head on D's features: AC-GAN, or ADC-GAN's (label, source) one


@dataclass(frozen=True)
class DConditioning:
    """model.d_condition parsed once: how D reads c (input: projection, concat or None) and its
    classifier head (head: aux, adc or None). "projection+aux" -> DConditioning("projection", "aux")."""

    input: Optional[str]
    head: Optional[str]

    @staticmethod
    def parse(text: str) -> "DConditioning":
        """ValueError for a description outside D_CONDITIONS."""
        if text not in D_CONDITIONS:
            raise ValueError(f"d_condition {text!r}: expected one of {', '.join(D_CONDITIONS)}")
        parts = text.split("+")
        return DConditioning(next((p for p in parts if p in D_INPUTS), None),
                             next((p for p in parts if p in D_HEADS), None))


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


def balanced_conditions(cond: Condition, n: int, device="cpu") -> torch.Tensor:
    """n conditions (n, C) drawn with the global RNG of `device` so that every attribute is on
    with probability 1/2, independently (+-1 vectors), or every class equally likely (one-hot)."""
    if cond.kind == "attributes":
        return torch.where(torch.rand(n, cond.dim, device=device) < 0.5, 1.0, -1.0)
    return nn.functional.one_hot(torch.randint(cond.dim, (n,), device=device), cond.dim).float()
