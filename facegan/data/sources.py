"""Image sources for the packer. Each yields Items in a stable order.

An Item names its image and says how to get its bytes. Workers fetch the bytes themselves where
that is cheap and random-access (files, zip members, synthetic faces); sequential formats (tar
streams, parquet, Hugging Face datasets) are read in order here and their bytes sent along.

A source may be labeled (labels.py): it then names its label fields, and each Item carries its
values, except synthetic faces, whose attributes the worker that draws them reports. An image a
labeled source has no labels for is an "unlabeled: ..." skip.
"""

import csv
import dataclasses
import json
import os
import tarfile
import zipfile
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

from ..errors import UserError
from .intake import Limits
from .labels import BINARY, CLASS, LabelField, label_name
from .synthetic import LABEL_FIELDS as CARTOON_LABEL_FIELDS

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
CELEBA_SPLITS = {"0": "train", "1": "val", "2": "test"}
# CelebA's aligned images as its official archives unpack: img_align_celeba.zip (JPEGs) and
# img_align_celeba_png.7z (the same images, lossless).
CELEBA_IMAGE_DIRS = ("img_align_celeba", "img_align_celeba_png")
CELEBA_PARTITIONS = ("list_eval_partition.txt", "list_eval_partition.csv")
CELEBA_ATTRIBUTES = ("list_attr_celeba.txt", "list_attr_celeba.csv")
CELEBA_VALUES = {"-1": 0, "1": 1}
LABEL_MODES = ("auto", "none", "folders")


@dataclass(frozen=True)
class Item:
    name: str  # shown in the manifest and in skip reports
    kind: str  # "file" | "zip" | "bytes" | "synthetic"
    ref: object  # path, (archive, member), raw bytes, or (seed, index)
    split: Optional[str] = None  # set when the source has an official partition
    labels: Optional[dict] = None  # {field name: int} of a labeled source's image


def unlabeled(name: str, why: str) -> Item:
    """An image of a labeled source that has no labels: skipped, with the reason."""
    return Item(name, "error", f"unlabeled: {why}")


class Source:
    kind = "?"
    default_crop = "center"
    has_splits = False
    max_bytes = Limits.max_bytes  # the packer sets its --max-file-mb here, for sources that read bytes
    notes: tuple = ()  # what the user should know about how the source was read (printed by the packer)
    label_fields: Optional[tuple] = None  # the LabelFields every packed image carries; None: unlabeled
    label_source: str = ""  # where the labels come from, for the manifest and the summary
    split_source: str = ""  # where the source's own split comes from (has_splits), for the summary
    split_details: tuple = ()  # what matching that split to the images showed
    no_split_reason: str = "the source has no split"  # why a val split is held out instead

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
    """A directory searched recursively, in sorted order (ImageFolder trees, Kaggle SFHQ).
    With folder_labels, labeled as ImageFolder is: the class is the sub-folder of the root that
    holds the image (sorted names, index order); images directly in the root are skipped."""

    kind = "folder"

    def __init__(self, root, folder_labels=False):
        self.root = root
        self.paths = sorted(p for p in _walk(root) if _is_image_name(p))
        parent = os.path.dirname(os.path.abspath(root))
        if os.path.basename(os.path.abspath(root)) in CELEBA_IMAGE_DIRS \
                and any(os.path.exists(os.path.join(parent, f)) for f in CELEBA_PARTITIONS):
            self.notes = (f"note: {root} is CelebA's image folder: packed as a plain folder; pass {parent} "
                          f"instead for the official partition and the face crop",)
        self.classes = {}
        if folder_labels:
            tops = sorted({_top_folder(os.path.relpath(p, root)) for p in self.paths} - {None})
            if len(tops) < 2:
                raise UserError(f"--labels folders: {root} has {len(tops)} sub-folder(s) with images"
                                + (f" ({tops[0]})" if tops else "") + "; classes need at least 2")
            self.classes = {c: i for i, c in enumerate(tops)}
            self.label_fields = (LabelField("class", CLASS, tuple(tops)),)
            self.label_source = f"class sub-folders of {root}"

    def __len__(self):
        return len(self.paths)

    def items(self):
        for p in self.paths:
            name = os.path.relpath(p, self.root)
            if not self.classes:
                yield Item(name, "file", p)
            elif _top_folder(name) is None:
                yield unlabeled(name, "not in a class sub-folder")
            else:
                yield Item(name, "file", p, labels={"class": self.classes[_top_folder(name)]})


def _top_folder(relpath: str) -> Optional[str]:
    """'cats/a/1.jpg' -> 'cats'; None for a file directly in the root."""
    head, sep, _ = relpath.partition(os.sep)
    return head if sep else None


def celeba_image_dir(root: str):
    """(image folder, what else was there) of a CelebA layout at root, or (None, None): the
    JPEG (img_align_celeba/) or PNG (img_align_celeba_png/) release, either possibly nested in a
    folder of the same name (as Kaggle ships it). With both, the lossless PNGs are packed."""
    found = []
    for name in CELEBA_IMAGE_DIRS:
        d = os.path.join(root, name)
        if os.path.isdir(d):
            nested = os.path.join(d, name)
            found.append(nested if os.path.isdir(nested) else d)
    if not found:
        return None, None
    return found[-1], (found[0] if len(found) > 1 else None)


class CelebASource(Source):
    """The CelebA layout: img_align_celeba/ or img_align_celeba_png/ (possibly nested, as Kaggle
    ships it), an optional list_eval_partition.txt or .csv giving the official train/val/test
    split, and an optional list_attr_celeba.txt or .csv giving the 40 binary attributes
    (with_labels: use them). Each is checked against the images there, and what does not match
    is said (notes) and left out."""

    kind = "celeba"
    default_crop = "celeba"
    no_split_reason = "no partition file (list_eval_partition.txt)"

    def __init__(self, root, with_labels=True):
        self.img_dir, other = celeba_image_dir(root)
        self.names = sorted(f for f in os.listdir(self.img_dir) if _is_image_name(f))
        notes = []
        if other:
            notes.append(f"note: both {other} and {self.img_dir}: packing the lossless {self.img_dir}")
        if not self.names:
            raise UserError(f"{self.img_dir}: no images in CelebA's image folder")
        path, partition, named_exts = self._read_partition(root)
        # By stem: the partition file names 000001.jpg, and CelebA's PNG release (and re-encoded
        # copies) hold 000001.png; the stem is what identifies the image.
        covered = sum(1 for n in self.names if stem(n) in partition)
        if partition and covered == 0:
            notes.append(f"warning: {path} names none of the {len(self.names)} images in {self.img_dir}; "
                         f"ignoring it and holding out --val-fraction instead")
            partition = {}
            self.no_split_reason = f"{os.path.basename(path)} names none of these images"
        elif partition and covered < len(self.names):
            notes.append(f"warning: {path} covers {covered} of {len(self.names)} images; the other "
                         f"{len(self.names) - covered} go to train")
        self.partition = partition
        self.has_splits = bool(self.partition)
        if self.has_splits:
            self.split_source = f"the official partition in {os.path.basename(path)}"
            details = []
            image_exts = sorted({os.path.splitext(n)[1].lower() for n in self.names})
            if named_exts and named_exts != image_exts:
                details.append(f"it names {'/'.join(named_exts)} files and the images are {'/'.join(image_exts)}: "
                               f"matched by number")
            self.split_details = tuple(details)  # (partial coverage is a warning note of its own)
        self.attrs, self.attr_names = {}, ()
        path, names, attrs = read_celeba_attributes(root) if with_labels else (None, (), {})
        labeled = sum(1 for n in self.names if stem(n) in attrs)
        if path and labeled == 0:
            notes.append(f"warning: {path} labels none of the {len(self.names)} images in {self.img_dir}; "
                         f"packing without labels")
        elif path:
            if labeled < len(self.names):
                notes.append(f"warning: {path} labels {labeled} of {len(self.names)} images; the other "
                             f"{len(self.names) - labeled} are skipped as unlabeled (--labels none keeps them)")
            self.attrs, self.attr_names, self.attr_file = attrs, names, os.path.basename(path)
            self.label_fields = tuple(LabelField(n, BINARY) for n in names)
            self.label_source = path
        self.notes = tuple(notes)

    @staticmethod
    def _read_partition(root):
        """(path, {image stem: split}, [extensions it names]) of the official partition file, or
        (None, {}, [])."""
        for fname in CELEBA_PARTITIONS:
            path = os.path.join(root, fname)
            if not os.path.exists(path):
                continue
            with open(path, newline="") as f:
                if fname.endswith(".csv"):
                    rows = [r for r in csv.reader(f)][1:]
                else:
                    rows = [line.split() for line in f if line.strip()]
            try:
                partition = {stem(name): CELEBA_SPLITS[part] for name, part in rows}
            except (ValueError, KeyError) as err:
                raise UserError(f"{path}: unreadable partition line ({err})") from None
            return path, partition, sorted({os.path.splitext(row[0])[1].lower() for row in rows})
        return None, {}, []

    def __len__(self):
        return len(self.names)

    def items(self):
        for n in self.names:
            split = self.partition.get(stem(n), "train") if self.partition else None
            labels = None
            if self.label_fields:
                values = self.attrs.get(stem(n))
                if values is None:
                    yield unlabeled(n, f"not in {self.attr_file}")
                    continue
                labels = dict(zip(self.attr_names, values))
            yield Item(n, "file", os.path.join(self.img_dir, n), split, labels)


def read_celeba_attributes(root):
    """(path, attribute names, {image stem: bytes of 0/1 values}) of CelebA's attribute file,
    or (None, (), {}) when there is none. Official .txt: the image count, the attribute names,
    then `000001.jpg -1  1 ...`; Kaggle .csv: `image_id,5_o_Clock_Shadow,...` then rows. Values
    are -1 (0) or 1 (1); anything else is a UserError naming the file and line."""
    for fname in CELEBA_ATTRIBUTES:
        path = os.path.join(root, fname)
        if not os.path.exists(path):
            continue
        is_csv = fname.endswith(".csv")
        header, names, attrs = None, (), {}
        with open(path, newline="") as f:
            lines = csv.reader(f) if is_csv else (line.split() for line in f)
            for lineno, row in enumerate(lines, 1):
                row = [v.strip() for v in row]
                if not any(row):
                    continue
                if header is None:
                    if not is_csv and lineno == 1 and len(row) == 1 and row[0].isdigit():
                        continue  # the image count
                    header = row[1:] if is_csv else row
                    if not header:
                        raise UserError(f"{path}, line {lineno}: no attribute names")
                    continue
                if not names:  # a .txt header that names the image column too
                    if not is_csv and len(row) == len(header):
                        header = header[1:]
                    names = tuple(label_name(h) for h in header)
                    if len(set(names)) < len(names):
                        raise UserError(f"{path}: attribute names repeat after normalising: {', '.join(names)}")
                if len(row) != len(names) + 1:
                    raise UserError(f"{path}, line {lineno}: expected an image name and {len(names)} values, "
                                    f"found {len(row) - 1} values")
                try:
                    attrs[stem(row[0])] = bytes(CELEBA_VALUES[v] for v in row[1:])
                except KeyError:
                    bad = next(k for k, v in enumerate(row[1:]) if v not in CELEBA_VALUES)
                    raise UserError(f"{path}, line {lineno}: {header[bad]} is {row[1 + bad]!r}, "
                                    f"expected -1 or 1") from None
        if header is None:
            raise UserError(f"{path}: no attribute names (an empty file?)")
        return path, names or tuple(label_name(h) for h in header), attrs
    return None, (), {}


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


def check_label_columns(where: str, columns, available, image: str) -> None:
    """UserError naming `where` when a --label-columns column is missing or is the image column."""
    for column in columns:
        if column not in available:
            raise UserError(f"{where}: no column {column!r} for --label-columns (columns: {', '.join(available)})")
        if column == image:
            raise UserError(f"{where}: --label-columns {column}: that is the image column")


class LabelColumns:
    """--label-columns: how the values of each named column become a label field's ints.

    bool: binary. Integer with a ClassLabel feature: its classes. Other integers: binary when the
    values are within {0, 1} or {-1, 1} (-1 is 0), else one class per distinct value (sorted).
    String: one class per distinct value (sorted). `kinds` gives each column's kind ("bool",
    "int", "str" or a description of anything else) and ClassLabel names (or None); `distinct`
    returns a column's distinct non-null values, asked only when they decide the field."""

    def __init__(self, where: str, columns: Sequence[str], kinds: dict, distinct):
        self.columns, self.specs = list(columns), []
        for column in self.columns:
            kind, names = kinds[column]
            self.specs.append(self._spec(where, column, kind, names, distinct))
        fields = [field for field, _ in self.specs]
        seen = {}
        for column, field in zip(self.columns, fields):
            if field.name in seen:
                raise UserError(f"--label-columns: {seen[field.name]} and {column} are both "
                                f"labels called {field.name}")
            seen[field.name] = column
        self.fields = tuple(fields)

    @staticmethod
    def _spec(where, column, kind, names, distinct):
        name = label_name(column)
        if kind == "bool":
            return LabelField(name, BINARY), int
        if kind == "int" and names is not None:
            if len(names) < 2:
                raise UserError(f"{where}: label column {column!r} is a ClassLabel of fewer than 2 classes")
            n = len(names)
            return LabelField(name, CLASS, tuple(str(c) for c in names)), \
                lambda v: v if 0 <= v < n else f"{column} {v} is not one of its {n} classes"
        if kind not in ("int", "str"):
            raise UserError(f"{where}: label column {column!r} holds {kind}; label columns must hold "
                            f"bool, integer or string values")
        values = sorted(v for v in distinct(column) if v is not None)
        if kind == "int" and (set(values) <= {0, 1} or set(values) <= {-1, 1}):
            return LabelField(name, BINARY), lambda v: int(v > 0)
        if len(values) < 2:
            raise UserError(f"{where}: label column {column!r} has {len(values)} distinct value(s); "
                            f"a class label needs at least 2")
        index = {v: i for i, v in enumerate(values)}
        return LabelField(name, CLASS, tuple(str(v) for v in values)), index.__getitem__

    def row(self, values: Sequence):
        """One row's {field name: int}, or why the row is unlabeled (a str)."""
        out = {}
        for column, (field, convert), v in zip(self.columns, self.specs, values):
            if v is None:
                return f"null {column}"
            v = convert(v)
            if isinstance(v, str):
                return v
            out[field.name] = v
        return out


def _arrow_kind(t) -> str:
    import pyarrow as pa

    if pa.types.is_dictionary(t):
        return _arrow_kind(t.value_type)
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "str"
    return f"{t} values"


def _hf_class_names(schema, column) -> Optional[list]:
    """The class names of a ClassLabel column in the features the hub writes into the schema
    metadata (b"huggingface": {"info": {"features": ...}}); None for any other column."""
    try:
        features = json.loads((schema.metadata or {})[b"huggingface"])["info"]["features"]
        feature = features[column]
    except (KeyError, TypeError, ValueError):
        return None
    if not isinstance(feature, dict) or feature.get("_type") != "ClassLabel":
        return None
    return list(feature.get("names") or [str(i) for i in range(int(feature.get("num_classes") or 0))])


def _with_labels(item: Item, labels) -> Item:
    """item with its row's labels, or the row skipped as unlabeled (`labels` a reason)."""
    if item.kind == "error":
        return item
    if isinstance(labels, str):
        return unlabeled(item.name, labels)
    return dataclasses.replace(item, labels=labels) if labels is not None else item


class ParquetSource(Source):
    """Parquet files as the Hugging Face hub serves them (a file or a directory of them);
    label_columns: columns read as labels alongside the image (LabelColumns)."""

    kind = "parquet"

    def __init__(self, path, label_columns: Sequence[str] = ()):
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise UserError("reading parquet needs pyarrow: pip install 'facegan[hf]'") from None
        self.files = ([path] if os.path.isfile(path) else sorted(
            os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs if f.endswith(".parquet")))
        self.rows = 0
        schemas = []
        for f in self.files:
            try:
                pf = pq.ParquetFile(f)
                self.rows += pf.metadata.num_rows
                schemas.append(pf.schema_arrow)
            except Exception as err:
                raise UserError(f"{f}: not a readable parquet file ({err})") from None
        self.labels = None
        if label_columns and self.files:
            for f, schema in zip(self.files, schemas):
                check_label_columns(f, label_columns, schema.names, _image_column(schema, f))
            first = schemas[0]
            kinds = {c: (_arrow_kind(first.field(c).type), _hf_class_names(first, c)) for c in label_columns}
            self.labels = LabelColumns(path, label_columns, kinds, self._distinct)
            self.label_fields = self.labels.fields
            self.label_source = f"parquet columns {', '.join(label_columns)}"

    def _distinct(self, column):
        """Distinct values of one column over all files (reading only that column)."""
        import pyarrow.parquet as pq

        values = set()
        for f in self.files:
            try:
                values.update(pq.read_table(f, columns=[column]).column(column).unique().to_pylist())
            except Exception as err:
                raise UserError(f"{f}: cannot read label column {column!r} ({type(err).__name__}: {err})"
                                .splitlines()[0]) from None
        return values

    def __len__(self):
        return self.rows

    def items(self):
        import pyarrow.parquet as pq

        label_columns = self.labels.columns if self.labels else []
        for f in self.files:
            pf = pq.ParquetFile(f)
            col = _image_column(pf.schema_arrow, f)
            base = os.path.basename(f)
            row = 0
            try:
                for batch in pf.iter_batches(columns=[col, *label_columns], batch_size=256):
                    label_values = list(zip(*(batch.column(c).to_pylist() for c in label_columns)))
                    for k, value in enumerate(batch.column(col).to_pylist()):
                        data, name = value, None
                        if isinstance(value, dict):
                            data, name = value.get("bytes"), value.get("path")
                        label = f"{base}#{row}" + (f":{name}" if name else "")
                        if data is None and name:  # a row that points at a file, as hf: reads it
                            item = path_item(label, name, os.path.dirname(os.path.abspath(f)), self.max_bytes)
                        else:
                            item = Item(label, "bytes", data or b"")
                        yield _with_labels(item, self.labels.row(label_values[k]) if self.labels else None)
                        row += 1
            except Exception as err:  # a damaged file: keep earlier rows, report the rest, go on
                yield Item(f"{base} (after row {row})", "error", f"parquet damaged: {type(err).__name__}: {err}")


class HubSource(Source):
    """hf:NAME[:SPLIT] through the datasets library (a hub name, or a local dataset folder);
    label_columns: columns read as labels alongside the image (LabelColumns)."""

    kind = "hf"

    def __init__(self, spec, label_columns: Sequence[str] = ()):
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
        self.labels = None
        if label_columns:
            check_label_columns(spec, label_columns, list(ds.features), col)
            kinds = {c: _hf_kind(ds.features[c], datasets) for c in label_columns}
            self.labels = LabelColumns(spec, label_columns, kinds, ds.unique)
            self.label_fields = self.labels.fields
            self.label_source = f"{spec} columns {', '.join(label_columns)}"
        self.ds = ds.cast_column(col, datasets.Image(decode=False)).select_columns([col, *(label_columns or ())])

    def __len__(self):
        return len(self.ds)

    def items(self):
        base = self.name if os.path.isdir(self.name) else os.getcwd()
        for i, row in enumerate(self.ds):
            value = row[self.col] or {}
            data = value.get("bytes")
            if data is None and value.get("path"):
                item = path_item(f"{self.name}#{i}:{value['path']}", value["path"], base, self.max_bytes)
            else:
                item = Item(f"{self.name}#{i}", "bytes", data or b"")
            labels = self.labels.row([row[c] for c in self.labels.columns]) if self.labels else None
            yield _with_labels(item, labels)


def _hf_kind(feature, datasets):
    """(kind, ClassLabel names or None) of a datasets feature, as LabelColumns takes them."""
    if isinstance(feature, datasets.ClassLabel):
        return "int", list(feature.names)
    dtype = getattr(feature, "dtype", None) if isinstance(feature, datasets.Value) else None
    if dtype == "bool":
        return "bool", None
    if dtype and dtype.startswith(("int", "uint")):
        return "int", None
    if dtype in ("string", "large_string"):
        return "str", None
    return f"{dtype or type(feature).__name__} values", None


class SyntheticSource(Source):
    """synthetic:cartoon: procedural cartoon faces; the count comes from --limit. Labeled (unless
    with_labels is False) with the attributes each face is drawn with, which the worker that
    draws it reports."""

    kind = "synthetic"
    DEFAULT_COUNT = 10000

    def __init__(self, spec, seed=0, limit=None, with_labels=True):
        style = spec.partition(":")[2]
        if style != "cartoon":
            raise UserError(f"{spec}: unknown synthetic source; available: synthetic:cartoon")
        self.seed, self.count = seed, limit or self.DEFAULT_COUNT
        if with_labels:
            self.label_fields, self.label_source = CARTOON_LABEL_FIELDS, f"{spec} attributes"

    def __len__(self):
        return self.count

    def items(self):
        for i in range(self.count):
            yield Item(f"cartoon-{i:08d}", "synthetic", (self.seed, i))


def zlib_error():
    import zlib

    return zlib.error


def source_kind(spec: str) -> str:
    """The kind of source SPEC names; one clear UserError if it is nothing we read."""
    if spec.startswith("synthetic:"):
        return SyntheticSource.kind
    if spec.startswith("hf:"):
        return HubSource.kind
    if not os.path.exists(spec):
        raise UserError(f"{spec}: no such file or directory")
    low = spec.lower()
    if os.path.isdir(spec):
        if celeba_image_dir(spec)[0]:
            return CelebASource.kind
        has_parquet = any(f.endswith(".parquet") for _, _, fs in os.walk(spec) for f in fs)
        has_images = any(_is_image_name(f) for _, _, fs in os.walk(spec) for f in fs)
        return ParquetSource.kind if has_parquet and not has_images else FolderSource.kind
    if low.endswith(".zip"):
        return ZipSource.kind
    if low.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")):
        return TarSource.kind
    if low.endswith(".parquet"):
        return ParquetSource.kind
    raise UserError(f"{spec}: unknown source kind (expected a directory, .zip, .tar[.gz], "
                    ".parquet, hf:NAME or synthetic:cartoon)")


def open_source(spec: str, seed: int = 0, limit: Optional[int] = None, labels: str = "auto",
                label_columns: Optional[Sequence[str]] = None) -> Source:
    """Recognize what SPEC names and open it; one clear UserError if it is nothing we read.

    labels: "auto" reads the labels the source has (CelebA's attribute file, the synthetic
    faces' attributes, the label_columns of parquet and hf:), "none" reads none, "folders"
    labels a folder of images by class sub-folder."""
    if labels not in LABEL_MODES:
        raise UserError(f"--labels {labels}: expected one of {', '.join(LABEL_MODES)}")
    label_columns = list(dict.fromkeys(label_columns or ()))
    if label_columns and labels != "auto":
        raise UserError(f"--label-columns: not with --labels {labels}")
    kind = source_kind(spec)
    if labels == "folders" and kind != FolderSource.kind:
        raise UserError(f"--labels folders: only for a folder of images in class sub-folders "
                        f"({spec} is a {kind} source)")
    if label_columns and kind not in (ParquetSource.kind, HubSource.kind):
        raise UserError(f"--label-columns: only for parquet and hf: sources ({spec} is a {kind} source)")
    with_labels = labels != "none"
    if kind == SyntheticSource.kind:
        return SyntheticSource(spec, seed, limit, with_labels=with_labels)
    if kind == HubSource.kind:
        return HubSource(spec, label_columns)
    if kind == CelebASource.kind:
        return CelebASource(spec, with_labels=with_labels)
    if kind == ParquetSource.kind:
        return ParquetSource(spec, label_columns)
    if kind == FolderSource.kind:
        return FolderSource(spec, folder_labels=labels == "folders")
    return ZipSource(spec) if kind == ZipSource.kind else TarSource(spec)
