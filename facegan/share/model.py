"""FaceGenerator: facegan's DCGAN generator as a Hugging Face Hub model.

    from facegan import FaceGenerator
    G = FaceGenerator.from_pretrained("USER/REPO")      # or a Hub folder, run, checkpoint, export
    images = G.sample(16, seed=0)                       # (16, H, W, 3) uint8 numpy

Built on huggingface_hub's PyTorchModelHubMixin (save_pretrained / from_pretrained / push_to_hub,
config.json from the constructor's arguments). Two things differ from the mixin's defaults, both
for safety: weights load from `model.safetensors` only (the mixin falls back to a pickled
`pytorch_model.bin`), and strictly (the mixin's default, strict=False, would leave a mismatched
layer at its random initial value without a word).
"""

import json
import os

import numpy as np
import torch
from huggingface_hub import PyTorchModelHubMixin

from ..conditions import Condition
from ..errors import UserError
from ..models import Generator
from ..sampling import parse_request, sample_images, seed_walk, toggle_images

WEIGHTS = "model.safetensors"  # huggingface_hub.constants.SAFETENSORS_SINGLE_FILE
CONFIG = "config.json"
TAGS = ["gan", "dcgan", "unconditional-image-generation", "faces", "facegan"]


def is_hub_folder(path: str) -> bool:
    """A directory holding model.safetensors and config.json (what save_pretrained writes)."""
    return os.path.isfile(os.path.join(path, WEIGHTS)) and os.path.isfile(os.path.join(path, CONFIG))


def looks_like_repo_id(source: str) -> bool:
    """'user/repo' that is not a local path: resolved on the Hub."""
    parts = source.split("/")
    return len(parts) == 2 and all(parts) and not os.path.exists(source) and not source.startswith((".", "~"))


class FaceGenerator(Generator, PyTorchModelHubMixin, library_name="facegan", tags=TAGS,
                    pipeline_tag="unconditional-image-generation"):
    """The DCGAN generator (facegan.models.Generator: z (N, nz, 1, 1) -> images (N, 3, H, W) in
    [-1, 1]) with Hub loading and saving and a uint8 sampler. The constructor's arguments are the
    architecture and become config.json."""

    def __init__(self, resolution: int = 64, nz: int = 100, ngf: int = 64, channels: int = 3,
                 condition: dict = None, g_condition: str = "embed"):
        super().__init__(resolution, nz, ngf, channels, Condition.from_json(condition, "config.json"), g_condition)
        self.ngf, self.channels, self.g_condition = ngf, channels, g_condition
        self.info = {}  # training summary when known (kimg, dataset, fid)

    # ------------------------------------------------------------ architecture and saving

    def architecture(self) -> dict:
        """The generator's part of facegan's architecture dict (as in checkpoints and exports)."""
        arch = {"arch": "dcgan", "resolution": self.resolution, "nz": self.nz, "ngf": self.ngf,
                "channels": self.channels}
        if self.condition is not None:
            arch.update(condition=self.condition.to_json(), g_condition=self.g_condition)
        return arch

    def _save_pretrained(self, save_directory) -> None:
        """model.safetensors with facegan's export metadata (architecture, summary), so the file is
        also a facegan export that facegan-sample / -eval / -app read; config.json written here."""
        from ..eval.generator_io import EXPORT_FORMAT
        from ..io import write_json_atomic
        from ..train.checkpoint import save_network

        save_network(self, os.path.join(str(save_directory), WEIGHTS), self.architecture(),
                     {"summary": self.info.get("summary", {}), "format_version": EXPORT_FORMAT})
        config = {"resolution": self.resolution, "nz": self.nz, "ngf": self.ngf, "channels": self.channels,
                  "arch": "dcgan", "library": "facegan"}
        if self.condition is not None:
            config.update(condition=self.condition.to_json(), g_condition=self.g_condition)
        write_json_atomic(os.path.join(str(save_directory), CONFIG), config)

    # ------------------------------------------------------------ loading

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs) -> "FaceGenerator":
        """Load from a Hub repo id ("user/repo"), a Hub folder (config.json + model.safetensors),
        or any generator facegan reads (run directory: its newest checkpoint; checkpoint
        directory; exported .safetensors) through facegan.eval.generator_io. Hub keyword
        arguments (revision, token, cache_dir, local_files_only, ...) pass to huggingface_hub.
        Returns the model in eval mode on the CPU (map_location="cuda" moves it).

        Raises UserError for a path that is none of these or weights that do not fit."""
        source = str(pretrained_model_name_or_path)
        if os.path.exists(source) and not is_hub_folder(source):
            from ..eval.generator_io import load_generator

            g, info = load_generator(source)
            arch = info["architecture"]
            model = cls(arch["resolution"], arch["nz"], arch["ngf"], arch.get("channels", 3), arch.get("condition"),
                        arch.get("g_condition", "embed"))
            model.load_state_dict(g.state_dict())
            model.info = {"summary": info.get("summary") or {}, "source": info["source"]}
            return model.to(kwargs.get("map_location", "cpu")).eval()
        if os.path.exists(source):
            return super().from_pretrained(source, **kwargs)
        if not looks_like_repo_id(source):
            raise UserError(f"{source}: no such file or directory, and not a Hub repo id (user/name)")
        try:
            return super().from_pretrained(source, **kwargs)
        except UserError:
            raise
        except Exception as err:  # offline, no such repo, no permission: one line
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            raise UserError(f"{source}: could not load it from the Hugging Face Hub ({type(err).__name__}: "
                            f"{first[:200]})") from None

    @classmethod
    def _from_pretrained(cls, *, model_id, revision, cache_dir, force_download, local_files_only, token,
                         map_location="cpu", strict=True, **model_kwargs):
        if os.path.isdir(model_id):
            weights = os.path.join(model_id, WEIGHTS)
        else:
            from huggingface_hub import hf_hub_download

            weights = hf_hub_download(model_id, WEIGHTS, revision=revision, cache_dir=cache_dir,
                                      force_download=force_download, token=token, local_files_only=local_files_only)
        model = cls(**{k: v for k, v in model_kwargs.items()
                       if k in ("resolution", "nz", "ngf", "channels", "condition", "g_condition")})
        from safetensors.torch import load_file

        from ..train.checkpoint import read_metadata

        try:
            model.load_state_dict(load_file(weights, device="cpu"), strict=strict)
        except RuntimeError as err:
            raise UserError(f"{weights}: weights do not fit config.json ({str(err).splitlines()[0]})") from None
        meta = read_metadata(weights)
        model.info = {"summary": json.loads(meta["summary"]) if "summary" in meta else {}, "source": weights}
        return model.to(map_location).eval()

    # ------------------------------------------------------------ sampling

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0, truncation: float = 1.0, start: int = 0, batch_size: int = 256,
               as_tensor: bool = False, attrs=None, klass=None):
        """n images for `seed`: samples start..start+n-1 of facegan.sampling.sample_images (codes
        from facegan.sampling.latents), so sample i of a seed is the same face here, in
        facegan-sample and in facegan-app.

        Returns uint8 images: a numpy array (n, H, W, 3) (the layout of PIL and Gradio), or with
        as_tensor=True a torch tensor (n, 3, H, W) on the CPU. truncation (psi in (0, 1]) scales
        z toward 0 (see latents()); ValueError outside it. A conditional generator draws each
        image's labels as its training data has them; attrs ({"eyeglasses": 1} or
        "eyeglasses=1,wearing_hat=0") or klass (index or name) fix those asked (UserError for a
        name it does not know), as facegan-sample --attr / --class."""
        asked = parse_request(self.condition, _attr_text(attrs), klass)
        images = sample_images(self, n, seed, truncation, start, batch_size, asked)
        return images if as_tensor else images.permute(0, 2, 3, 1).numpy()

    @torch.no_grad()
    def toggle(self, name: str, n: int = 8, seed: int = 0, attrs=None):
        """The same n faces (codes and drawn labels of `seed`) once per state of label `name`:
        attribute off, then on; a class label, every class (as facegan-sample --toggle). Returns
        (uint8 numpy (states, n, H, W, 3), captions such as ["glasses=0", "glasses=1"]).
        UserError for an unconditional generator or a label it does not know."""
        if self.condition is None:
            raise UserError("toggle: this generator is unconditional (trained with model.condition=none)")
        images, captions = toggle_images(self, [name], n, seed, asked=parse_request(self.condition, _attr_text(attrs)))
        return images.permute(0, 2, 3, 1).numpy().reshape(len(captions), n, *images.shape[2:], 3), captions

    @torch.no_grad()
    def interpolate(self, seed_a: int, seed_b: int, frames: int, truncation: float = 1.0) -> np.ndarray:
        """(frames, H, W, 3) uint8: a spherical walk (slerp, as facegan-sample --interpolate) from
        sample 0 of seed_a to sample 0 of seed_b, both ends included (frames >= 2; ValueError
        otherwise). See facegan.sampling.seed_walk."""
        return seed_walk(self, seed_a, seed_b, frames, truncation).permute(0, 2, 3, 1).numpy()


def _attr_text(attrs):
    """attrs as --attr text: {"eyeglasses": 1} -> "eyeglasses=1"; a string or None as given."""
    return ",".join(f"{k}={int(v)}" for k, v in attrs.items()) if isinstance(attrs, dict) else attrs
