"""What facegan-eval can score, on either side: a generator (checkpoint, run directory, exported
file), a facegan shard dataset (one split) or a plain folder of images. Each gives Inception
features; datasets and folders cache theirs, so a reference is computed once.
"""

import contextlib
import hashlib
import os
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from safetensors.torch import load_file

from ..errors import UserError, shown_path
from ..io import file_digest, save_safetensors_atomic
from ..log import get_logger
from ..train.distributed import rank_world
from .features import extractor_id
from .inception_weights import cache_dir
from .metrics import blocks_of, extract, merge_blocks, reference_features

from ..data.sources import IMAGE_EXTS as IMAGE_EXTENSIONS

logger = get_logger()


def is_generator(path: str) -> bool:
    if os.path.isfile(path):
        return path.endswith(".safetensors")
    markers = ("state.json", "checkpoints", "config.yaml", "model.safetensors")  # the last: a Hub folder
    return any(os.path.exists(os.path.join(path, f)) for f in markers)


def is_shard_dataset(path: str) -> bool:
    if os.path.isdir(path):
        return os.path.isfile(os.path.join(path, "dataset.json"))
    return any(t in path for t in ("{", "::", "pipe:", "://")) or path.endswith(".tar")


@dataclass
class ImageSet:
    kind: str  # generator | shards | folder
    path: str
    resolution: int = None  # known for generators and shard datasets
    describe: str = ""

    def features(self, n, extractor, device, accelerator=None, batch_size=100, seed=12345, log=None):
        raise NotImplementedError


class GeneratorSet(ImageSet):
    def __init__(self, path, raw, device):
        from .generator_io import load_generator

        self.G, self.info = load_generator(path, raw=raw, device=device)
        super().__init__("generator", path, self.G.resolution, f"generator {self.info['source']}")

    def features(self, n, extractor, device, accelerator=None, batch_size=100, seed=12345, log=None):
        from .scoring import generated_features

        return generated_features(self.G, n, extractor, device, seed, batch_size, accelerator)


class DatasetSet(ImageSet):
    def __init__(self, path, split, resolution=None):
        from .scoring import open_reference

        self.shards, self.cache_dir = open_reference(path, split, resolution)
        self.split = split
        super().__init__("shards", path, self.shards.resolution, f"shards {path}:{split}")

    def features(self, n, extractor, device, accelerator=None, batch_size=100, seed=12345, log=None):
        return reference_features(self.shards, self.cache_dir, self.split, n, extractor, device, batch_size,
                                  accelerator, log)


class FolderSet(ImageSet):
    """Every image below a folder, in sorted path order; the first n are used."""

    def __init__(self, path):
        files = []
        for root, dirs, names in os.walk(path, followlinks=False):
            dirs.sort()
            files += [os.path.join(root, f) for f in sorted(names) if f.lower().endswith(IMAGE_EXTENSIONS)]
        if not files:
            raise UserError(f"{path}: no images ({', '.join(IMAGE_EXTENSIONS)}) in this folder")
        self.files = files
        super().__init__("folder", path, None, f"folder {path} ({len(files)} images)")

    def _cache_path(self, files, extractor) -> str:
        """Keyed by the images' bytes (names, sizes and times do not prove the content is the
        same: an image replaced in place keeps all three). Hashing reads each file once, far
        cheaper than the Inception pass it saves. The folder's path prefixes the name so that a
        changed folder's old entry can be found and dropped."""
        h = hashlib.sha256()
        for f in files:
            # os.fsencode: a file name is bytes in any encoding (a Latin-1 `caf\xe9.png` reaches us as
            # a lone surrogate, which str.encode refuses); UTF-8 names hash as they always did.
            h.update(os.fsencode(os.path.relpath(f, self.path)) + f"\0{file_digest(f, 'blake2b')}\n".encode())
        ext_id = extractor_id(extractor)
        where = hashlib.sha256(os.fsencode(os.path.abspath(self.path))).hexdigest()[:12]
        return os.path.join(cache_dir(), "fid-ref", f"{ext_id}-{where}-{len(files)}-{h.hexdigest()[:24]}.safetensors")

    def features(self, n, extractor, device, accelerator=None, batch_size=100, seed=12345, log=None):
        log = log or logger.info
        files = self.files[:n]
        path = self._cache_path(files, extractor)
        if os.path.exists(path):
            try:
                feats = load_file(path)["features"]
            except Exception:  # a damaged cache is recomputed, never trusted
                feats = None
            if feats is not None:
                log(f"features of {self.path} from cache {path}")
                return feats
        prefix = os.path.basename(path).rsplit("-", 1)[0] + "-"
        stale = [f for f in os.listdir(os.path.dirname(path)) if f.startswith(prefix)] \
            if os.path.isdir(os.path.dirname(path)) else []
        if stale:
            log(f"note: the images in {self.path} changed since their features were cached; recomputing")
            for f in stale:
                with contextlib.suppress(OSError):
                    os.remove(os.path.join(os.path.dirname(path), f))
        rank, world = rank_world(accelerator)
        skipped = []
        mine = [f for a, b in blocks_of(len(files), batch_size, rank, world) for f in files[a:b]]
        feats = extract(extractor, _batches(mine, batch_size, skipped), device, accelerator,
                        desc=f"images {shown_path(os.path.basename(os.path.normpath(self.path)))}",
                        merge=merge_blocks(len(files), batch_size), total=len(mine))
        if skipped:
            # each rank reads its own share of the folder: each says what it could not read
            logger.warning(f"skipped {len(skipped)} unreadable image(s) in {shown_path(self.path)}, "
                           f"e.g. {shown_path(skipped[0])}", extra={"all_ranks": True})
        if feats.shape[0] == 0:
            raise UserError(f"{self.path}: none of its images could be read")
        if not skipped and (accelerator is None or accelerator.is_main_process):
            save_safetensors_atomic(path, {"features": feats.contiguous()},
                                    metadata={"folder": shown_path(os.path.abspath(self.path))})
        return feats


def _batches(files, batch_size, skipped):
    """uint8 (B, 3, H, W) batches; a batch ends early where the image size changes."""
    batch, shape = [], None
    for f in files:
        try:
            with Image.open(f) as im:
                arr = np.asarray(im.convert("RGB"))
        except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
            skipped.append(f)
            continue
        if batch and (arr.shape != shape or len(batch) == batch_size):
            yield torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2)
            batch = []
        batch.append(arr)
        shape = arr.shape
    if batch:
        yield torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2)


def open_image_set(path: str, split: str = "val", raw: bool = False, device="cpu", resolution=None) -> ImageSet:
    """Whatever the path holds, as an ImageSet; one clear error when it is none of them."""
    if not is_shard_dataset(path) and not os.path.exists(path):
        raise UserError(f"{path}: no such file or directory")
    if is_generator(path):
        return GeneratorSet(path, raw, device)
    if is_shard_dataset(path):
        return DatasetSet(path, split, resolution)
    if os.path.isdir(path):
        return FolderSet(path)
    raise UserError(f"{path}: not a generator, a shard dataset or a folder of images")
