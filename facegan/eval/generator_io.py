"""Load a generator from a checkpoint, a run directory or an exported file; export one.

An exported generator is one .safetensors holding the EMA generator's weights, with its
architecture and a training summary in the metadata: it loads with facegan alone.
"""

import json
import os

from safetensors.torch import load_file

from ..errors import UserError
from ..models import build_generator
from ..models.registry import spec_of
from ..train import checkpoint as ckpt

EXPORT_FORMAT = "facegan-generator-1"
HUB_WEIGHTS = "model.safetensors"  # in a Hub folder: an export under the Hub's file name


def _arch_of(path: str) -> dict:
    arch, meta = ckpt.architecture_in(path)
    spec_of(arch, path)  # a UserError naming the file for an architecture no entry builds
    return arch, meta


def resolve_source(source: str, raw: bool = False):
    """(weights file, checkpoint dir or None) for a checkpoint dir, run dir, Hub folder or exported file."""
    if not os.path.exists(source):
        raise UserError(f"{source}: no such file or directory")
    name = "G.safetensors" if raw else "G_ema.safetensors"
    if os.path.isfile(source):
        if raw:
            raise UserError(f"{source}: an exported file holds only the EMA generator; drop --raw")
        return source, None
    if os.path.isfile(os.path.join(source, HUB_WEIGHTS)):  # a Hub folder (facegan-export --hub-dir)
        if raw:
            raise UserError(f"{source}: a Hub folder holds only the EMA generator; drop --raw")
        return os.path.join(source, HUB_WEIGHTS), None
    if os.path.isfile(os.path.join(source, ckpt.STATE)):
        ckpt.verify(source)
        return os.path.join(source, name), source
    ckpt_root = os.path.join(source, "checkpoints")
    if os.path.isdir(ckpt_root) or os.path.isfile(os.path.join(source, "config.yaml")):
        path, _ = ckpt.find_resumable(ckpt_root, log=lambda *a: None)
        if path is None:
            raise UserError(f"{source}: run directory has no usable checkpoint")
        return os.path.join(path, name), path
    raise UserError(f"{source}: not a checkpoint, a run directory or an exported generator")


def load_generator(source: str, raw: bool = False, device="cpu"):
    """(Generator in eval mode, info dict with architecture and training summary)."""
    weights, ckpt_dir = resolve_source(source, raw)
    arch, meta = _arch_of(weights)
    g = build_generator(arch, weights)
    try:
        g.load_state_dict(load_file(weights, device="cpu"))
    except RuntimeError as err:
        raise UserError(f"{weights}: weights do not fit the architecture in its metadata "
                        f"({str(err).splitlines()[0]})") from None
    info = {"architecture": arch, "source": weights}
    if "summary" in meta:
        info["summary"] = json.loads(meta["summary"])
    if ckpt_dir:
        with open(os.path.join(ckpt_dir, ckpt.STATE)) as f:
            state = json.load(f)
        info["summary"] = {"step": state["step"], "kimg": state["images_seen"] / 1000,
                           "dataset": state.get("dataset"), "resolution": arch["resolution"],
                           "fid": state.get("fid")}
    return g.to(device).eval(), info


def is_export(path: str) -> bool:
    """Whether `path` is a generator facegan exported (its metadata says so); never raises."""
    try:
        return json.loads(ckpt.read_metadata(path).get("format_version", "null")) == EXPORT_FORMAT
    except Exception:
        return False


def export_generator(source: str, out: str, fid=None) -> dict:
    g, info = load_generator(source)
    summary = dict(info.get("summary") or {})
    if fid is not None:
        summary["fid"] = fid
    ckpt.save_network(g, out, info["architecture"], {"summary": summary, "format_version": EXPORT_FORMAT})
    return {"architecture": info["architecture"], "summary": summary, "from": info["source"]}

