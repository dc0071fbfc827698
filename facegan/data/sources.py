"""Image sources for the packer. Each yields Items in a stable order.

An Item names its image and says how to get its bytes. Workers fetch the bytes themselves where
that is cheap and random-access (files, zip members, synthetic faces); sequential formats (tar
streams, parquet, Hugging Face datasets) are read in order here and their bytes sent along.
"""

import csv
import os
import tarfile
import zipfile
from dataclasses import dataclass
from typing import Iterator, Optional

from ..errors import UserError
from .intake import Limits

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
CELEBA_SPLITS = {"0": "train", "1": "val", "2": "test"}


@dataclass(frozen=True)
class Item:
    name: str  # shown in the manifest and in skip reports
    kind: str  # "file" | "zip" | "bytes" | "synthetic"
    ref: object  # path, (archive, member), raw bytes, or (seed, index)
    split: Optional[str] = None  # set when the source has an official partition


class Source:
    kind = "?"
    default_crop = "center"
    has_splits = False
    max_bytes = Limits.max_bytes  # the packer sets its --max-file-mb here, for sources that read bytes
    notes: tuple = ()  # what the user should know about how the source was read (printed by the packer)

    def __len__(self) -> int:  # a count for the progress bar; 0 when unknown
        return 0

    def items(self) -> Iterator[Item]:
        raise NotImplementedError


def _walk(root: str):
    """Every file below root, following symlinked folders once each (a link cycle ends)."""
    seen = set()
    for d, dirs, files in os.walk(root, followlinks=True):
        real = os.path.realpath(d)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs.sort()
        yield from (os.path.join(d, f) for f in files)


def stem(name: str) -> str:
    """'img_align_celeba/000001.jpg' -> '000001': how partition and label files match images."""
    return os.path.splitext(os.path.basename(name))[0]


def path_item(name: str, path: str, base_dir: str, max_bytes: int) -> "Item":
    """An image that a parquet or datasets row gives by path instead of bytes (as
    `Dataset.cast_column(..., Image())` writes local files): absolute, or relative to base_dir."""
    full = path if os.path.isabs(path) else os.path.join(base_dir, path)
    if not os.path.isfile(full):
        return Item(name, "error", f"missing file: {path} (named by the row, not found)")
    size = os.path.getsize(full)
    if size > max_bytes:
        return Item(name, "error", f"file too large: {size / 2**20:.0f} MB, over --max-file-mb {max_bytes >> 20}")
    return Item(name, "file", full)


def _is_image_name(name: str) -> bool:
    base = os.path.basename(name)
    return name.lower().endswith(IMAGE_EXTS) and not base.startswith(("._", "."))


class FolderSource(Source):
    """A directory searched recursively, in sorted order (ImageFolder trees, Kaggle SFHQ)."""

    kind = "folder"

    def __init__(self, root):
        self.root = root
        self.paths = sorted(p for p in _walk(root) if _is_image_name(p))

    def __len__(self):
        return len(self.paths)

    def items(self):
        for p in self.paths:
            yield Item(os.path.relpath(p, self.root), "file", p)


class CelebASource(Source):
    """The CelebA layout: img_align_celeba/ (possibly nested, as Kaggle ships it) and an
    optional list_eval_partition.txt or .csv giving the official train/val/test split."""

    kind = "celeba"
    default_crop = "celeba"

    def __init__(self, root):
        img_dir = os.path.join(root, "img_align_celeba")
        nested = os.path.join(img_dir, "img_align_celeba")
        self.img_dir = nested if os.path.isdir(nested) else img_dir
        self.names = sorted(f for f in os.listdir(self.img_dir) if _is_image_name(f))
        path, partition = self._read_partition(root)
        # By stem: the partition file names 000001.jpg, and CelebA's PNG release (and re-encoded
        # copies) hold 000001.png; the stem is what identifies the image.
        covered = sum(1 for n in self.names if stem(n) in partition)
        notes = []
        if partition and covered == 0:
            notes.append(f"warning: {path} names none of the {len(self.names)} images in {self.img_dir}; "
                         f"ignoring it and holding out --val-fraction instead")
            partition = {}
        elif partition and covered < len(self.names):
            notes.append(f"warning: {path} covers {covered} of {len(self.names)} images; the other "
                         f"{len(self.names) - covered} go to train")
        self.partition, self.notes = partition, tuple(notes)
        self.has_splits = bool(self.partition)

    @staticmethod
    def _read_partition(root):
        """(path, {image stem: split}) of the official partition file, or (None, {})."""
        for fname in ("list_eval_partition.txt", "list_eval_partition.csv"):
            path = os.path.join(root, fname)
            if not os.path.exists(path):
                continue
            with open(path, newline="") as f:
                if fname.endswith(".csv"):
                    rows = [r for r in csv.reader(f)][1:]
                else:
                    rows = [line.split() for line in f if line.strip()]
            try:
                return path, {stem(name): CELEBA_SPLITS[part] for name, part in rows}
            except (ValueError, KeyError) as err:
                raise UserError(f"{path}: unreadable partition line ({err})") from None
        return None, {}

    def __len__(self):
        return len(self.names)

    def items(self):
        for n in self.names:
            split = self.partition.get(stem(n), "train") if self.partition else None
            yield Item(n, "file", os.path.join(self.img_dir, n), split)


class ZipSource(Source):
    kind = "zip"

    def __init__(self, path):
        self.path = path
        try:
            with zipfile.ZipFile(path) as zf:
                self.members = sorted(i.filename for i in zf.infolist()
                                      if not i.is_dir() and _is_image_name(i.filename))
        except zipfile.BadZipFile as err:
            raise UserError(f"{path}: not a readable zip archive ({err})") from None

    def __len__(self):
        return len(self.members)

    def items(self):
        for m in self.members:
            yield Item(m, "zip", (self.path, m))


class TarSource(Source):
    """A .tar, .tar.gz, .tgz, .tar.bz2 or .tar.xz, read as one sequential stream."""

    kind = "tar"

    def __init__(self, path):
        self.path = path
        try:
            with tarfile.open(path, "r:*"):
                pass
        except (tarfile.TarError, OSError) as err:
            raise UserError(f"{path}: not a readable tar archive ({err})") from None

    def items(self):
        n = 0
        try:
            with tarfile.open(self.path, "r|*") as tf:
                for member in tf:
                    if not (member.isfile() and _is_image_name(member.name)):
                        continue
                    n += 1
                    if member.size > self.max_bytes:  # left unread: tarfile skips over it
                        yield Item(member.name, "error", f"file too large: {member.size / 2**20:.0f} MB, "
                                                         f"over --max-file-mb {self.max_bytes >> 20}")
                        continue
                    yield Item(member.name, "bytes", tf.extractfile(member).read())
        except (tarfile.TarError, OSError, EOFError, zlib_error()) as err:
            # A damaged archive: keep what came before, and report the rest as one skip.
            yield Item(f"{self.path} (after {n} images)", "error", f"archive damaged: {type(err).__name__}: {err}")


def _image_column(schema, path):
    """The column holding images: a Hugging Face Image struct (bytes, path), or raw binary."""
    import pyarrow as pa

    for field in schema:
        if pa.types.is_struct(field.type) and field.type.get_field_index("bytes") >= 0:
            return field.name
    for field in schema:
        if pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type):
            return field.name
    raise UserError(f"{path}: no image column (a struct with 'bytes', or a binary column)")


class ParquetSource(Source):
    """Parquet files as the Hugging Face hub serves them (a file or a directory of them)."""

    kind = "parquet"

    def __init__(self, path):
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise UserError("reading parquet needs pyarrow: pip install 'facegan[hf]'") from None
        self.files = ([path] if os.path.isfile(path) else sorted(
            os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs if f.endswith(".parquet")))
        self.rows = 0
        for f in self.files:
            try:
                self.rows += pq.ParquetFile(f).metadata.num_rows
            except Exception as err:
                raise UserError(f"{f}: not a readable parquet file ({err})") from None

    def __len__(self):
        return self.rows

    def items(self):
        import pyarrow.parquet as pq

        for f in self.files:
            pf = pq.ParquetFile(f)
            col = _image_column(pf.schema_arrow, f)
            base = os.path.basename(f)
            row = 0
            try:
                for batch in pf.iter_batches(columns=[col], batch_size=256):
                    for value in batch.column(0).to_pylist():
                        data, name = value, None
                        if isinstance(value, dict):
                            data, name = value.get("bytes"), value.get("path")
                        label = f"{base}#{row}" + (f":{name}" if name else "")
                        if data is None and name:  # a row that points at a file, as hf: reads it
                            yield path_item(label, name, os.path.dirname(os.path.abspath(f)), self.max_bytes)
                        else:
                            yield Item(label, "bytes", data or b"")
                        row += 1
            except Exception as err:  # a damaged file: keep earlier rows, report the rest, go on
                yield Item(f"{base} (after row {row})", "error", f"parquet damaged: {type(err).__name__}: {err}")


class HubSource(Source):
    """hf:NAME[:SPLIT] through the datasets library (a hub name, or a local dataset folder)."""

    kind = "hf"

    def __init__(self, spec):
        try:
            import datasets
        except ImportError:
            raise UserError("hf: sources need the datasets library: pip install 'facegan[hf]'") from None
        name, _, split = spec[len("hf:"):].partition(":")
        if not name:
            raise UserError(f"{spec}: expected hf:NAME[:SPLIT]")
        self.name, self.split = name, split or "train"
        try:
            ds = datasets.load_dataset(name, split=self.split)
        except Exception as err:
            raise UserError(f"{spec}: cannot load dataset ({type(err).__name__}: {err})".splitlines()[0]) from None
        col = next((k for k, f in ds.features.items() if isinstance(f, datasets.Image)), None)
        if col is None:  # parquet written without the hub's feature metadata: a {bytes, path} struct
            col = next((k for k, f in ds.features.items() if isinstance(f, dict) and "bytes" in f), None)
        if col is None:
            raise UserError(f"{spec}: no image column in features {list(ds.features)}")
        self.col = col
        self.ds = ds.cast_column(col, datasets.Image(decode=False)).select_columns([col])

    def __len__(self):
        return len(self.ds)

    def items(self):
        base = self.name if os.path.isdir(self.name) else os.getcwd()
        for i, row in enumerate(self.ds):
            value = row[self.col] or {}
            data = value.get("bytes")
            if data is None and value.get("path"):
                yield path_item(f"{self.name}#{i}:{value['path']}", value["path"], base, self.max_bytes)
            else:
                yield Item(f"{self.name}#{i}", "bytes", data or b"")


class SyntheticSource(Source):
    """synthetic:cartoon: procedural cartoon faces; the count comes from --limit."""

    kind = "synthetic"
    DEFAULT_COUNT = 10000

    def __init__(self, spec, seed=0, limit=None):
        style = spec.partition(":")[2]
        if style != "cartoon":
            raise UserError(f"{spec}: unknown synthetic source; available: synthetic:cartoon")
        self.seed, self.count = seed, limit or self.DEFAULT_COUNT

    def __len__(self):
        return self.count

    def items(self):
        for i in range(self.count):
            yield Item(f"cartoon-{i:08d}", "synthetic", (self.seed, i))


def zlib_error():
    import zlib

    return zlib.error


def open_source(spec: str, seed: int = 0, limit: Optional[int] = None) -> Source:
    """Recognize what SPEC names and open it; one clear UserError if it is nothing we read."""
    if spec.startswith("synthetic:"):
        return SyntheticSource(spec, seed, limit)
    if spec.startswith("hf:"):
        return HubSource(spec)
    if not os.path.exists(spec):
        raise UserError(f"{spec}: no such file or directory")
    low = spec.lower()
    if os.path.isdir(spec):
        if os.path.isdir(os.path.join(spec, "img_align_celeba")):
            return CelebASource(spec)
        has_parquet = any(f.endswith(".parquet") for _, _, fs in os.walk(spec) for f in fs)
        has_images = any(_is_image_name(f) for _, _, fs in os.walk(spec) for f in fs)
        if has_parquet and not has_images:
            return ParquetSource(spec)
        return FolderSource(spec)
    if low.endswith(".zip"):
        return ZipSource(spec)
    if low.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")):
        return TarSource(spec)
    if low.endswith(".parquet"):
        return ParquetSource(spec)
    raise UserError(f"{spec}: unknown source kind (expected a directory, .zip, .tar[.gz], "
                    ".parquet, hf:NAME or synthetic:cartoon)")
