"""The whole training state as safetensors + JSON: atomic, verified, rotated. No pickle anywhere.

checkpoints/step-NNNNNNNN/
  G.safetensors, G_ema.safetensors, D.safetensors   state dicts, architecture in the metadata
  opt_G.safetensors, opt_D.safetensors             optimizer state flattened; param groups as JSON
  rng.safetensors                                  python/numpy/torch/device RNG of every rank
  state.json                                       step, images seen, scaler, wandb id, sha256s,
                                                   ADA's p and statistics (train.augment=ada)
"""

import json
import os
import random
import shutil

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from ..models.registry import with_defaults
from ..io import atomic_dir, read_json, remove_stale_temps, save_safetensors_atomic, sha256_file, write_json_atomic
from ..errors import UserError
from ..log import get_logger

NETWORKS = ("G", "G_ema", "D")
OPTIMIZERS = ("opt_G", "opt_D")
STATE = "state.json"
PREFIX = "step-"


def step_dir_name(step: int) -> str:
    return f"{PREFIX}{step:08d}"


# ---------------------------------------------------------------- networks and optimizers

def save_network(module: torch.nn.Module, path: str, arch: dict, extra: dict = None) -> None:
    tensors = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
    meta = {"architecture": json.dumps(arch, sort_keys=True), "format": "facegan-network-1"}
    meta.update({k: json.dumps(v) for k, v in (extra or {}).items()})
    save_safetensors_atomic(path, tensors, meta)


def read_metadata(path: str) -> dict:
    with safe_open(path, framework="pt") as f:
        return f.metadata() or {}


def architecture_in(path: str, name: str = None):
    """(architecture dict, metadata) of a facegan weights file (an export, a Hub folder's
    model.safetensors). UserError naming `name` (default: the path) for a file safetensors cannot
    read or one without a facegan architecture in its metadata."""
    name = name or path
    try:
        meta = read_metadata(path)
    except Exception as err:  # safetensors raises its own error types for a foreign file
        raise UserError(f"{name}: not a readable safetensors file ({type(err).__name__})") from None
    if "architecture" not in meta:
        raise UserError(f"{name}: no facegan architecture in its metadata")
    return json.loads(meta["architecture"]), meta


def load_network(module: torch.nn.Module, path: str) -> None:
    module.load_state_dict(load_file(path, device="cpu"))


def optimizer_tensors(opt: torch.optim.Optimizer):
    """Flatten optimizer state into {"state.IDX.NAME": tensor} plus JSON-able groups/scalars."""
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, st in sd["state"].items():
        for name, value in st.items():
            if torch.is_tensor(value):
                tensors[f"state.{idx}.{name}"] = value.detach().contiguous().cpu()
            else:
                scalars[f"{idx}.{name}"] = value
    return tensors, {"param_groups": json.dumps(sd["param_groups"]), "scalars": json.dumps(scalars)}


def save_optimizer(opt, path: str) -> None:
    tensors, meta = optimizer_tensors(opt)
    save_safetensors_atomic(path, tensors, meta)


def load_optimizer(opt, path: str) -> None:
    meta = read_metadata(path)
    state: dict = {}
    for key, value in load_file(path, device="cpu").items():
        _, idx, name = key.split(".", 2)
        state.setdefault(int(idx), {})[name] = value
    for key, value in json.loads(meta.get("scalars", "{}")).items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    groups = json.loads(meta["param_groups"])
    for g in groups:  # JSON turned tuples (betas) into lists
        for k, v in g.items():
            if k != "params" and isinstance(v, list):
                g[k] = tuple(v)
    try:
        opt.load_state_dict({"state": state, "param_groups": groups})
    except ValueError as err:  # another parameter count, e.g. train.freeze_d changed since it was written
        raise UserError(f"{path}: optimizer state does not fit this run's parameters ({err}); "
                        f"train.freeze_d must stay as it was when the checkpoint was written") from None


# ---------------------------------------------------------------- RNG states

def rng_tensors(device: torch.device) -> dict:
    """This rank's RNG states as tensors of fixed shape (so ranks can be gathered)."""
    py = random.getstate()
    np_state = np.random.get_state()
    out = {
        "python": torch.tensor([py[0]] + list(py[1]) + [-1 if py[2] is None else py[2]], dtype=torch.float64),
        "numpy": torch.tensor(np.concatenate([np_state[1].astype(np.int64), [np_state[2], np_state[3]]]),
                              dtype=torch.int64),
        "numpy_gauss": torch.tensor([np_state[4]], dtype=torch.float64),
        "torch": torch.get_rng_state(),
    }
    if device.type == "cuda":
        out["device"] = torch.cuda.get_rng_state(device)
    elif device.type == "mps":
        out["device"] = torch.mps.get_rng_state()
    return out


def restore_rng(states: dict, device: torch.device) -> None:
    py = states["python"].tolist()
    random.setstate((int(py[0]), tuple(int(v) for v in py[1:-1]), None if py[-1] == -1 else py[-1]))
    n = states["numpy"].numpy()
    np.random.set_state(("MT19937", n[:-2].astype(np.uint32), int(n[-2]), int(n[-1]),
                         float(states["numpy_gauss"].item())))
    torch.set_rng_state(states["torch"])
    if "device" in states:
        if device.type == "cuda":
            torch.cuda.set_rng_state(states["device"], device)
        elif device.type == "mps":
            torch.mps.set_rng_state(states["device"])


# ---------------------------------------------------------------- save, verify, load

def save_checkpoint(root: str, step: int, nets: dict, opts: dict, arch: dict, state: dict,
                    rng_by_rank: dict, keep: int) -> str:
    """Write everything into a temporary directory, hash it, rename it whole; then rotate."""
    os.makedirs(root, exist_ok=True)
    final = os.path.join(root, step_dir_name(step))
    with atomic_dir(final) as tmp:
        for name, module in nets.items():
            save_network(module, os.path.join(tmp, f"{name}.safetensors"), arch)
        for name, opt in opts.items():
            save_optimizer(opt, os.path.join(tmp, f"{name}.safetensors"))
        save_file({f"rank{r}.{k}": v.contiguous() for r, d in rng_by_rank.items() for k, v in d.items()},
                  os.path.join(tmp, "rng.safetensors"))
        files = sorted(f for f in os.listdir(tmp))
        state = dict(state, step=step, architecture=arch, world_size=len(rng_by_rank),
                     sha256={f: sha256_file(os.path.join(tmp, f)) for f in files})
        write_json_atomic(os.path.join(tmp, STATE), state)
    rotate(root, keep)
    return final


def list_checkpoints(root: str) -> list:
    if not os.path.isdir(root):
        return []
    return sorted((os.path.join(root, d) for d in os.listdir(root) if d.startswith(PREFIX)), reverse=True)


def rotate(root: str, keep: int) -> None:
    """Keep the newest `keep`; also clear temporaries left by a run killed mid-write."""
    for old in list_checkpoints(root)[keep:]:
        shutil.rmtree(old, ignore_errors=True)
    remove_stale_temps(root)


def verify(path: str) -> dict:
    """state.json of a checkpoint whose every file matches its recorded sha256; else UserError."""
    state_path = os.path.join(path, STATE)
    if not os.path.isfile(state_path):
        raise UserError(f"{path}: not a checkpoint (no {STATE})")
    state = read_json(state_path, "checkpoint state")
    for name, digest in state.get("sha256", {}).items():
        fpath = os.path.join(path, name)
        if not os.path.isfile(fpath):
            raise UserError(f"{path}: missing {name}")
        if sha256_file(fpath) != digest:
            raise UserError(f"{fpath}: checksum mismatch (damaged checkpoint)")
    missing = [n for n in NETWORKS + OPTIMIZERS if f"{n}.safetensors" not in state.get("sha256", {})]
    if missing:
        raise UserError(f"{path}: incomplete checkpoint (missing {', '.join(missing)})")
    return state


def find_resumable(root: str, log=None):
    """Newest checkpoint that verifies; a damaged one is passed over with a warning, said through
    log(text) (default: facegan's logger)."""
    log = log or get_logger().info  # stdout, where it has always gone
    for path in list_checkpoints(root):
        try:
            return path, verify(path)
        except UserError as err:
            log(f"warning: passing over damaged checkpoint: {err}")
    return None, None


def arch_mismatch(saved: dict, wanted: dict) -> list:
    """Keys whose values differ, after each side gets its architecture's defaults for keys added
    after it was written."""
    saved, wanted = with_defaults(saved), with_defaults(wanted)
    return sorted(k for k in set(saved) | set(wanted) if saved.get(k) != wanted.get(k))


def check_architecture(path: str, state: dict, arch: dict) -> None:
    """UserError naming every model key where checkpoint `path` (its state.json) and `arch` differ."""
    diff = arch_mismatch(state.get("architecture", {}), arch)
    if diff:
        detail = ", ".join(f"model.{k}: checkpoint {state.get('architecture', {}).get(k)} vs config {arch.get(k)}"
                           for k in diff)
        raise UserError(f"{path}: architecture differs from the config ({detail})")


def load_checkpoint(path: str, state: dict, nets: dict, opts: dict, arch: dict) -> None:
    """Load a verified checkpoint (state: verify(path)) into nets {name: module} and opts {name:
    optimizer}, in place, on the CPU. UserError when its architecture differs from `arch`,
    naming each differing model.* key."""
    check_architecture(path, state, arch)
    for name, module in nets.items():
        load_network(module, os.path.join(path, f"{name}.safetensors"))
    for name, opt in opts.items():
        load_optimizer(opt, os.path.join(path, f"{name}.safetensors"))


def load_rng(path: str, rank: int) -> dict:
    prefix = f"rank{rank}."
    tensors = load_file(os.path.join(path, "rng.safetensors"))
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
