"""Fine-tuning: start a run from another run's weights (run.init) and keep D's first blocks fixed
(train.freeze_d; FreezeD, Mo et al. 2020, "Freeze the Discriminator: a Simple Baseline for
Fine-Tuning GANs").

run.init takes a run directory (its newest checkpoint that verifies), a checkpoint directory,
a generator exported by facegan-export (.safetensors), a Hub folder written by facegan-export
--hub-dir, or a Hugging Face Hub repo id (user/name) holding one. G and G_ema start from its
weights (a checkpoint's G and G_ema; an export's one generator for both), D too where the source
has one (checkpoints; exports hold no D, so D starts fresh); optimizers and the step count start
fresh. A source of another architecture is refused naming every key that differs.
"""

import os
from dataclasses import dataclass
from typing import Optional

import torch
from safetensors.torch import load_file

from ..errors import UserError
from ..models.registry import with_defaults
from . import checkpoint as ckpt

HUB_WEIGHTS = "model.safetensors"  # the Hub folder's weights (facegan.share.model.WEIGHTS)
D_ONLY = ("ndf", "d_norm", "d_condition")  # architecture keys an export (G alone) does not hold


@dataclass
class InitSource:
    """Where run.init's weights are: files for G, G_ema and (checkpoints) D, and their architecture."""

    source: str
    G: str
    G_ema: str
    D: Optional[str]
    arch: dict


def is_off(source) -> bool:
    """Whether run.init is unset (None, empty or none)."""
    return source is None or str(source).strip().lower() in ("", "none", "null")


def _looks_like_repo_id(source: str) -> bool:
    parts = source.split("/")
    return len(parts) == 2 and all(parts) and not source.startswith((".", "~")) and not os.path.exists(source)


def _from_hub(repo_id: str) -> str:
    """model.safetensors of a Hub model repo (the Hugging Face cache; HF_HUB_OFFLINE reads only it)."""
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise UserError(f"run.init: {repo_id} looks like a Hub repo id, and reading one needs huggingface_hub "
                        f"(pip install 'facegan[app]')") from None
    try:
        return hf_hub_download(repo_id, HUB_WEIGHTS)
    except Exception as err:  # offline, no such repo, no permission: one line
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise UserError(f"run.init: {repo_id}: no such file or directory, and the Hugging Face Hub did not give "
                        f"it ({type(err).__name__}: {first[:200]})") from None


def _export_arch(path: str, source: str) -> dict:
    return ckpt.architecture_in(path, f"run.init: {source}")[0]


def _from_checkpoint(path: str, source: str) -> InitSource:
    state = ckpt.verify(path)
    return InitSource(source, os.path.join(path, "G.safetensors"), os.path.join(path, "G_ema.safetensors"),
                      os.path.join(path, "D.safetensors"), state.get("architecture", {}))


def resolve_init(source: str) -> InitSource:
    """The weights run.init names. UserError (naming run.init and the source) for a path that is
    none of the kinds above, a run directory without a usable checkpoint, a damaged checkpoint,
    or a Hub repo id that cannot be read."""
    if os.path.isfile(source):
        return InitSource(source, source, source, None, _export_arch(source, source))
    if os.path.isdir(source):
        if os.path.isfile(os.path.join(source, HUB_WEIGHTS)):
            weights = os.path.join(source, HUB_WEIGHTS)
            return InitSource(source, weights, weights, None, _export_arch(weights, source))
        if os.path.isfile(os.path.join(source, ckpt.STATE)):
            return _from_checkpoint(source, source)
        path, _ = ckpt.find_resumable(os.path.join(source, "checkpoints"), log=lambda *a: None)
        if path is None:
            raise UserError(f"run.init: {source}: not a run directory with a checkpoint that verifies, a "
                            f"checkpoint, an exported generator or a Hub folder")
        return _from_checkpoint(path, source)
    if _looks_like_repo_id(source):
        weights = _from_hub(source)
        return InitSource(source, weights, weights, None, _export_arch(weights, source))
    raise UserError(f"run.init: {source}: no such file or directory (nor a Hub repo id, user/name)")


def check_init(source: str, arch: dict) -> InitSource:
    """resolve_init, then the architecture: UserError naming every model.* key where the source
    and `arch` (the run's, facegan.models.architecture) differ. A source without D is compared
    on G's keys only."""
    init = resolve_init(source)
    keys = set(init.arch) | set(arch)
    if init.D is None:
        keys -= set(D_ONLY)
    mine, theirs = with_defaults(arch), with_defaults(init.arch)
    diff = sorted(k for k in keys if mine.get(k) != theirs.get(k))
    if diff:
        detail = "; ".join(f"model.{k}: source {theirs.get(k)} vs config {mine.get(k)}" for k in diff)
        raise UserError(f"run.init: {source}: architecture differs from the config ({detail})")
    return init


def _load(module: torch.nn.Module, path: str, what: str, source: str) -> None:
    try:
        module.load_state_dict(load_file(path, device="cpu"))
    except RuntimeError as err:
        raise UserError(f"run.init: {source}: {os.path.basename(path)} does not fit {what} "
                        f"({str(err).splitlines()[0]})") from None


@torch.no_grad()
def load_init(init: InitSource, G: torch.nn.Module, G_ema: torch.nn.Module, D: torch.nn.Module) -> str:
    """Copy the source's weights into the plain (unwrapped) G, G_ema and, where it has one, D, in
    place. Returns what was loaded, for the trainer's line ("G, G_ema and D")."""
    _load(G, init.G, "G", init.source)
    _load(G_ema, init.G_ema, "G_ema", init.source)
    if init.D is None:
        return "G and G_ema (the source has no D: D starts fresh)"
    _load(D, init.D, "D", init.source)
    return "G, G_ema and D"


def d_blocks(D: torch.nn.Module) -> list:
    """D's blocks from its input: each strided convolution with the normalisation after it, as
    lists of modules; the final 4x4 convolution (the logit) and condition heads are not blocks.
    UserError when D has no `main` sequence of layers (an architecture registered without one)."""
    main = getattr(D, "main", None)
    if not isinstance(main, torch.nn.Sequential):
        raise UserError(f"train.freeze_d: {type(D).__name__} has no block sequence (main) to freeze")
    layers = list(main)[:-1]
    blocks = []
    for layer in layers:
        if isinstance(layer, torch.nn.Conv2d):  # spectral norm's parametrized conv is one too
            blocks.append([layer])
        elif blocks:
            blocks[-1].append(layer)
    return blocks


def freeze_d(D: torch.nn.Module, k: int) -> list:
    """Freeze D's first k blocks (FreezeD): their parameters get requires_grad False, so the D
    step neither computes their gradients nor (left out of D's optimizer by the trainer) changes
    them. BatchNorm running statistics are buffers and keep following the data. Returns the
    frozen parameters' names. UserError when D has fewer than k blocks."""
    if k <= 0:
        return []
    blocks = d_blocks(D)
    if k > len(blocks):
        raise UserError(f"train.freeze_d: D has {len(blocks)} blocks at this resolution, got {k} "
                        f"(0 to {len(blocks)})")
    frozen = {id(p) for block in blocks[:k] for m in block for p in m.parameters()}
    names = []
    for name, p in D.named_parameters():
        if id(p) in frozen:
            p.requires_grad_(False)
            names.append(name)
    return names


def freeze_note(k: int, blocks: int, init: Optional[InitSource]) -> str:
    """The line a fresh run with train.freeze_d=k says when it starts: which of D's `blocks` blocks
    stay fixed, and a warning when D starts from random weights (no run.init, or a source without
    a D), where FreezeD would keep random features."""
    if init is None or init.D is None:
        why = "no run.init" if init is None else f"run.init={init.source} holds no D"
        return (f"warning: train.freeze_d={k} with D starting from random weights ({why}): its first {k} "
                f"of {blocks} blocks stay random; FreezeD keeps a trained D's first blocks (give run.init a "
                f"run or checkpoint, or set train.freeze_d=0)")
    return f"FreezeD: D's first {k} of {blocks} blocks keep run.init's weights (train.freeze_d={k})"


def preflight_finetune(cfg, condition=None) -> Optional[InitSource]:
    """train.freeze_d and run.init checked against the config before the run writes anything:
    UserError for more frozen blocks than D has, or a source that is missing, unreadable or of
    another architecture. Returns the source to load, or None: no run.init, or the run resumes
    from a checkpoint of its own (which wins over run.init)."""
    from ..models import architecture
    from ..models.registry import spec_of

    arch = architecture(cfg.model, condition)
    if cfg.train.freeze_d:
        freeze_d(spec_of(arch).discriminator(with_defaults(arch)), cfg.train.freeze_d)
    if is_off(cfg.run.init):
        return None
    resume = cfg.run.resume
    if resume != "none" and (resume != "auto" or ckpt.list_checkpoints(os.path.join(cfg.run.dir, "checkpoints"))):
        return None  # resuming: the trainer notes that run.init is ignored
    return check_init(cfg.run.init, arch)
