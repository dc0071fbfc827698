"""Feature extractors for FID/KID: torch-fidelity's Inception (through torchmetrics), whose
numbers match the standard TensorFlow FID, or any module mapping uint8 images to features.
Where the weights come from: see inception_weights.py."""

import contextlib
import io
import os
import socket
import tempfile

import torch
from torch import nn

from ..errors import UserError
from .inception_weights import EXTRA_HINT, converted_weights

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{INCEPTION_FILE}"


def extractor_id(extractor) -> str:
    """The name caches and results record for an extractor: its `extractor_id`, else its class."""
    return getattr(extractor, "extractor_id", type(extractor).__name__)


def inception_cache_path() -> str:
    return os.path.join(torch.hub.get_dir(), "checkpoints", INCEPTION_FILE)


def _load_user_weights(path: str) -> str:
    """Read user-given weights without unpickling code (safetensors, or torch.load with
    weights_only=True), and hand the library a tensor-only copy we wrote ourselves."""
    if not os.path.isfile(path):
        raise UserError(f"--inception-weights {path}: no such file")
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            state = load_file(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise UserError(f"--inception-weights {path}: not a readable weights file ({type(err).__name__})") from None
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise UserError(f"--inception-weights {path}: expected a dict of tensors")
    fd, clean = tempfile.mkstemp(suffix=".pth", prefix="facegan-inception-")
    os.close(fd)
    torch.save(state, clean)
    return clean


class InceptionFeatures(nn.Module):
    """2048-d pool features of the FID Inception-v3; input uint8 (N, 3, H, W), any H, W."""

    extractor_id = "inception-v3-compat-2048"
    num_features = 2048

    def __init__(self, weights_path=None, log=None):
        super().__init__()
        from torchmetrics.image.fid import NoTrainInceptionV3

        if not weights_path and not os.path.isfile(inception_cache_path()):
            weights_path = converted_weights(log)  # offline weights from the fid extra, if installed
        clean = _load_user_weights(weights_path) if weights_path else None
        if clean is None:
            old = socket.getdefaulttimeout()
            socket.setdefaulttimeout(20)
        chatter = io.StringIO()  # the library's download notice; we say it in one line ourselves
        try:
            with contextlib.redirect_stderr(chatter):
                self.net = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"],
                                              feature_extractor_weights_path=clean)
            # channels_last: 1.5x faster on CPU; features agree with the default layout to ~1e-5
            self.net = self.net.to(memory_format=torch.channels_last)
        except UserError:
            raise
        except Exception as err:
            raise UserError(
                f"Inception weights {INCEPTION_FILE} are missing and could not be downloaded "
                f"({type(err).__name__}); {EXTRA_HINT}, or put the file at {inception_cache_path()} "
                f"or pass --inception-weights PATH (it is published at {INCEPTION_URL})") from None
        finally:
            if clean:
                os.remove(clean)
            else:
                socket.setdefaulttimeout(old)

    @torch.no_grad()
    def forward(self, images_uint8: torch.Tensor) -> torch.Tensor:
        return self.net(images_uint8).float()


class Passthrough(nn.Module):
    """Hands precomputed features to torchmetrics (which then does the FID/KID math)."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, features):
        return features
