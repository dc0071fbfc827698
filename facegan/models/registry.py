"""Architectures by name: the one table that building, checkpoint loading and export loading use.

An architecture is stored in every checkpoint and export as a flat dict: {"arch": NAME,
"resolution", "nz", "channels", and the arguments its entry names}. Adding one is a module with
its G and D plus one `register_architecture` call; nothing else in facegan names it.
"""

from dataclasses import dataclass, field
from typing import Callable, Dict, Tuple

import torch
from torch import nn

from ..errors import UserError


@dataclass(frozen=True)
class ArchSpec:
    """generator(arch) / discriminator(arch) build the networks from an architecture dict.
    keys: the model.* config keys it takes beyond resolution and nz. defaults: values for keys
    that checkpoints written before a key existed lack. init: weight initialisation. D's forward
    returns a facegan.models.DOutput (logits, labels), whatever its options."""

    name: str
    generator: Callable[[dict], nn.Module]
    discriminator: Callable[[dict], nn.Module]
    keys: Tuple[str, ...]
    defaults: Dict[str, object] = field(default_factory=dict)
    init: Callable[[nn.Module], None] = lambda module: None


ARCHITECTURES: Dict[str, ArchSpec] = {}


def register_architecture(spec: ArchSpec) -> ArchSpec:
    ARCHITECTURES[spec.name] = spec
    return spec


def spec_of(arch: dict, where: str = "architecture") -> ArchSpec:
    """The registered entry for an architecture dict; UserError naming `where` if unknown."""
    name = arch.get("arch")
    if name not in ARCHITECTURES:
        raise UserError(f"{where}: architecture '{name}' is not one facegan builds "
                        f"(known: {', '.join(sorted(ARCHITECTURES))})")
    return ARCHITECTURES[name]


def architecture(model_cfg, condition=None) -> dict:
    """What must match for weights to load: stored in every checkpoint and export. condition: the
    facegan.conditions.Condition of a conditional model (from the data's labels), or None;
    unconditional architectures carry no condition keys, as before conditioning existed."""
    spec = spec_of({"arch": model_cfg.arch}, "model.arch")
    arch = {"arch": spec.name, "resolution": model_cfg.resolution, "nz": model_cfg.nz, "channels": 3,
            **{k: getattr(model_cfg, k) for k in spec.keys}}
    if condition is not None:
        arch.update(condition=condition.to_json(), g_condition=model_cfg.g_condition,
                    d_condition=model_cfg.d_condition)
    return arch


def with_defaults(arch: dict) -> dict:
    """arch with the defaults of keys added after it was written (old checkpoints)."""
    spec = ARCHITECTURES.get(arch.get("arch"))
    return dict(spec.defaults, **arch) if spec else dict(arch)


def build_generator(arch: dict, where: str = "architecture") -> nn.Module:
    return spec_of(arch, where).generator(with_defaults(arch))


def build_models(model_cfg, seed: int = 0, condition=None):
    """(G, D) of model.arch, initialised identically on every rank for a given seed."""
    arch = with_defaults(architecture(model_cfg, condition))
    spec = spec_of(arch)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        g, d = spec.generator(arch), spec.discriminator(arch)
        spec.init(g)
        spec.init(d)
    return g, d
