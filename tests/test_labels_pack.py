"""facegan-shard with labels: CelebA attributes, class sub-folders, parquet and hf: columns,
synthetic attributes; stored in each sample's .json and summed up in dataset.json."""

import hashlib
import json
import os

import pytest

from conftest import encoded, face_like, make_celeba, make_folder, make_zip, read_manifest, shard
from facegan.data.labels import BINARY, CLASS, fields_from_json
from facegan.data.manifest import label_fields
from facegan.errors import UserError
from test_shard import all_samples

CELEBA_ATTRS = ("5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose "
                "Black_Hair Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee "
                "Gray_Hair Heavy_Makeup High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard "
                "Oval_Face Pale_Skin Pointy_Nose Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair "
                "Wavy_Hair Wearing_Earrings Wearing_Hat Wearing_Lipstick Wearing_Necklace Wearing_Necktie "
                "Young").split()

# sha256 (first 16 hex digits) of cartoon_face(i, 0, 32).tobytes() for i in 0..20, as drawn
# before cartoon_face could report its attributes: reporting them must not change a pixel.
CARTOON_HASHES = ["e1ee2aa32321607d", "99512a88d0b628c0", "f43276202df1a01c", "7911db0f1b744e49",
                  "ea1b69e9e30e8bc8", "7b5c820bc6b40965", "7935abf2df29e154", "1e43aff3ca23587f",
                  "843f2e34738ac22e", "c7c3cb93cbafc2c9", "9da144f6fa454e2b", "74f884cad3faf2a6",
                  "5bd1ac9184fd2653", "b867f31a24a50988", "e56268cbad952647", "32952d1d8c7c3cfa",
                  "845b30f8263284dd", "70000cc7eda70c27", "f35d85a38045878c", "5f10541e63ae3173",
                  "dc49b7bd2bda4390"]


def pack_here(capsys, *args):
    """facegan-shard in this process with one worker (UserError raised, not printed):
    (stdout, stderr)."""
    from facegan.cli.shard import main

    capsys.readouterr()
    assert main.__wrapped__([*args, "--workers", "1"]) == 0
    return capsys.readouterr()


def sample_metas(out, splits=("train", "val", "test")):
    """{source name: sample json} over every split."""
    metas = {}
    for split in splits:
        for s in all_samples(out, split).values():
            meta = json.loads(s["json"])
            metas[meta["source"]] = meta
    return metas


def expected_counts(fields, labels):
    return {f["name"]: (sum(v[f["name"]] for v in labels) if f["kind"] == BINARY
                        else [sum(v[f["name"]] == k for v in labels) for k in range(len(f["classes"]))])
            for f in fields}


def check_counts(manifest, metas):
    """The manifest's labels entry sums up exactly the written samples' labels."""
    labels = [m["labels"] for m in metas.values()]
    entry = manifest["labels"]
    assert entry["labeled"] == len(labels) == manifest["count"]
    assert entry["counts"] == expected_counts(entry["fields"], labels)
    fields_from_json(entry)  # well-formed for everything that reads it


# ---- CelebA


def celeba_value(i, j):
    return 1 if (i * 7 + j * 3) % 5 == 0 else -1


def write_celeba_attrs(root, numbers, fmt="txt", bad_line=None):
    """list_attr_celeba.txt (official: count, names, aligned rows) or .csv (Kaggle) naming the
    images numbered `numbers`; bad_line: the row (0-based) given a 0 instead of -1/1."""
    rows = []
    for k, i in enumerate(numbers):
        values = [str(celeba_value(i, j)) for j in range(len(CELEBA_ATTRS))]
        if k == bad_line:
            values[2] = "0"
        rows.append((f"{i:06d}.jpg", values))
    path = os.path.join(root, f"list_attr_celeba.{fmt}")
    with open(path, "w") as f:
        if fmt == "txt":
            f.write(f"{len(rows)}\n" + " ".join(CELEBA_ATTRS) + " \n")
            for name, values in rows:
                f.write(name + " " + " ".join(f"{v:>2}" for v in values) + "\n")
        else:
            f.write(",".join(["image_id", *CELEBA_ATTRS]) + "\n")
            for name, values in rows:
                f.write(",".join([name, *values]) + "\n")
    return path


@pytest.mark.parametrize("fmt", ["txt", "csv"])
def test_celeba_attributes_are_packed(tmp_path, capsys, fmt):
    src = make_celeba(str(tmp_path / "celeba"), n=15)
    write_celeba_attrs(src, range(1, 16), fmt)
    out = str(tmp_path / "out")
    stdout, stderr = pack_here(capsys, src, "--out", out, "--size", "16")
    m = read_manifest(out)
    assert {k: v["count"] for k, v in m["splits"].items()} == {"train": 9, "val": 3, "test": 3}
    fields = label_fields(m, out)
    assert [f.name for f in fields][:3] == ["5_o_clock_shadow", "arched_eyebrows", "attractive"]
    assert len(fields) == 40 and all(f.kind == BINARY for f in fields) and fields[35].name == "wearing_hat"
    assert m["labels"]["source"].endswith(f"list_attr_celeba.{fmt}")
    metas = sample_metas(out)
    assert len(metas) == 15
    for name, meta in metas.items():
        i = int(name[:6])
        assert meta["labels"] == {f.name: int(celeba_value(i, j) == 1) for j, f in enumerate(fields)}, name
    check_counts(m, metas)
    assert "labels: 40 fields (binary: 5_o_clock_shadow, arched_eyebrows," in stdout
    assert f"young) from {src}" in stdout and "warning" not in stderr


def test_celeba_attribute_file_that_misses_images(tmp_path, capsys):
    src = make_celeba(str(tmp_path / "celeba"), n=15)
    write_celeba_attrs(src, range(1, 13))  # 13..15 are not named
    out = str(tmp_path / "out")
    stdout, stderr = pack_here(capsys, src, "--out", out, "--size", "16")
    assert "list_attr_celeba.txt labels 12 of 15 images; the other 3 are skipped as unlabeled " \
           "(--labels none keeps them)" in stderr
    m = read_manifest(out)
    assert m["count"] == 12 and m["labels"]["labeled"] == 12
    assert {s["source"]: s["reason"] for s in m["skipped"]} == {
        f"{i:06d}.jpg": "unlabeled: not in list_attr_celeba.txt" for i in (13, 14, 15)}
    assert "skipped: 3 (unlabeled: 3)" in stdout
    metas = sample_metas(out)
    assert set(metas) == {f"{i:06d}.jpg" for i in range(1, 13)}
    check_counts(m, metas)

    # --labels none: every image, no labels anywhere
    out2 = str(tmp_path / "none")
    stdout, stderr = pack_here(capsys, src, "--out", out2, "--size", "16", "--labels", "none")
    m = read_manifest(out2)
    assert m["count"] == 15 and not m["skipped"] and "labels" not in m and label_fields(m) is None
    assert not any("labels" in meta for meta in sample_metas(out2).values())
    assert "labels: none" in stdout and "warning" not in stderr


def test_celeba_attribute_file_that_names_no_image(tmp_path, capsys):
    src = make_celeba(str(tmp_path / "celeba"), n=6)
    write_celeba_attrs(src, range(900, 905), "csv")
    out = str(tmp_path / "out")
    stdout, stderr = pack_here(capsys, src, "--out", out, "--size", "16")
    assert "list_attr_celeba.csv labels none of the 6 images" in stderr and "packing without labels" in stderr
    m = read_manifest(out)
    assert m["count"] == 6 and "labels" not in m and not m["skipped"]
    assert "labels: none" in stdout


def test_celeba_bad_attribute_value_is_one_error_line(tmp_path):
    src = make_celeba(str(tmp_path / "celeba"), n=4)
    path = write_celeba_attrs(src, range(1, 5), bad_line=1)  # the 4th line of the file
    out = str(tmp_path / "out")
    r = shard(src, "--out", out, "--size", "16", "--workers", "1")
    assert r.returncode == 2, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert lines == [f"facegan-shard: error: {path}, line 4: Attractive is '0', expected -1 or 1"], r.stderr
    assert not os.path.exists(os.path.join(out, "dataset.json"))


# ---- class sub-folders


def test_folder_classes(tmp_path, capsys):
    src = make_folder(str(tmp_path / "imgs"), n=12)  # class0/ class1/ class2/, 4 images each
    os.makedirs(os.path.join(src, "class1", "deeper"))
    face_like(50).save(os.path.join(src, "class1", "deeper", "nested.png"))
    face_like(51).save(os.path.join(src, "loose.png"))
    out = str(tmp_path / "out")
    stdout, _ = pack_here(capsys, src, "--out", out, "--size", "8", "--labels", "folders", "--val-fraction", "0.2")
    m = read_manifest(out)
    assert m["labels"]["fields"] == [{"name": "class", "kind": CLASS, "classes": ["class0", "class1", "class2"]}]
    assert m["skipped"] == [{"source": "loose.png", "reason": "unlabeled: not in a class sub-folder"}]
    metas = sample_metas(out)
    assert len(metas) == 13 and m["count"] == 13
    for name, meta in metas.items():
        assert meta["labels"] == {"class": int(name.split(os.sep)[0][-1])}, name
    assert m["labels"]["counts"] == {"class": [4, 5, 4]}
    check_counts(m, metas)
    assert f"labels: 1 field (class: class (3)) from class sub-folders of {src}" in stdout

    # Without --labels folders a folder is unlabeled, root images and all.
    out2 = str(tmp_path / "plain")
    stdout, _ = pack_here(capsys, src, "--out", out2, "--size", "8")
    m = read_manifest(out2)
    assert m["count"] == 14 and "labels" not in m and "labels: none" in stdout
    assert not any("labels" in meta for meta in sample_metas(out2).values())


def test_folder_labels_refusals(tmp_path, capsys):
    one = make_folder(str(tmp_path / "one"), n=3, nested=False)
    os.makedirs(os.path.join(one, "only"))
    face_like(7).save(os.path.join(one, "only", "a.png"))
    with pytest.raises(UserError, match=r"1 sub-folder\(s\) with images \(only\); classes need at least 2"):
        pack_here(capsys, one, "--out", str(tmp_path / "o1"), "--labels", "folders")
    with pytest.raises(UserError, match="--labels folders: only for a folder .* is a zip source"):
        pack_here(capsys, make_zip(str(tmp_path / "f.zip")), "--out", str(tmp_path / "o2"), "--labels", "folders")
    with pytest.raises(UserError, match="--labels folders: only for a folder .* is a synthetic source"):
        pack_here(capsys, "synthetic:cartoon", "--out", str(tmp_path / "o3"), "--labels", "folders")
    assert not os.path.exists(tmp_path / "o1") and not os.path.exists(tmp_path / "o3")


# ---- parquet and hf:

HAIR = ["black", "blond", "brown"]
N_ROWS = 12


def parquet_row_labels(i):
    """The labels row i is written with (None: a null in that row)."""
    return {"smiling": None if i == 5 else i % 2 == 0, "hair": i % 3, "male": 1 if i % 4 == 0 else -1,
            "age": [20, 35, 50][(i // 2) % 3], "mood": ["happy", "calm", "sad", "calm"][i % 4],
            "score": i * 0.5}


def make_labeled_parquet(path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [parquet_row_labels(i) for i in range(N_ROWS)]
    images = [{"bytes": encoded(face_like(600 + i)), "path": f"face_{i}.png"} for i in range(N_ROWS)]
    table = pa.table({
        "image": pa.array(images, pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
        **{col: pa.array([r[col] for r in rows], typ) for col, typ in (
            ("smiling", pa.bool_()), ("hair", pa.int64()), ("male", pa.int64()), ("age", pa.int32()),
            ("mood", pa.string()), ("score", pa.float64()))}})
    features = {"image": {"_type": "Image"}, "smiling": {"dtype": "bool", "_type": "Value"},
                "hair": {"names": HAIR, "_type": "ClassLabel"}, "male": {"dtype": "int64", "_type": "Value"},
                "age": {"dtype": "int32", "_type": "Value"}, "mood": {"dtype": "string", "_type": "Value"},
                "score": {"dtype": "float64", "_type": "Value"}}
    table = table.replace_schema_metadata({"huggingface": json.dumps({"info": {"features": features}})})
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pq.write_table(table, path)
    return path


EXPECTED_PARQUET_FIELDS = [
    {"name": "smiling", "kind": BINARY}, {"name": "hair", "kind": CLASS, "classes": HAIR},
    {"name": "male", "kind": BINARY}, {"name": "age", "kind": CLASS, "classes": ["20", "35", "50"]},
    {"name": "mood", "kind": CLASS, "classes": ["calm", "happy", "sad"]}]


def expected_parquet_labels(i):
    r = parquet_row_labels(i)
    return {"smiling": int(r["smiling"]), "hair": r["hair"], "male": int(r["male"] == 1),
            "age": [20, 35, 50].index(r["age"]), "mood": ["calm", "happy", "sad"].index(r["mood"])}


def check_parquet_pack(out, row_of):
    m = read_manifest(out)
    assert m["labels"]["fields"] == EXPECTED_PARQUET_FIELDS
    assert [s["reason"] for s in m["skipped"]] == ["unlabeled: null smiling"]
    assert row_of(m["skipped"][0]["source"]) == 5
    metas = sample_metas(out)
    assert len(metas) == N_ROWS - 1
    for name, meta in metas.items():
        assert meta["labels"] == expected_parquet_labels(row_of(name)), name
    check_counts(m, metas)


def test_parquet_label_columns(tmp_path, capsys):
    pq_path = make_labeled_parquet(str(tmp_path / "faces" / "data" / "train-00000-of-00001.parquet"))
    out = str(tmp_path / "out")
    stdout, _ = pack_here(capsys, pq_path, "--out", out, "--size", "8", "--val-fraction", "0",
                          "--label-columns", "smiling,hair,male,age,mood")
    check_parquet_pack(out, lambda name: int(name.split("#")[1].split(":")[0]))
    assert ("labels: 5 fields (binary: smiling, male; class: hair (3), age (3), mood (3)) "
            "from parquet columns smiling, hair, male, age, mood") in stdout


def test_label_column_refusals(tmp_path, capsys):
    pq_path = make_labeled_parquet(str(tmp_path / "faces" / "train.parquet"))
    with pytest.raises(UserError) as err:
        pack_here(capsys, pq_path, "--out", str(tmp_path / "o1"), "--label-columns", "smiling,nope")
    assert str(err.value) == (f"{pq_path}: no column 'nope' for --label-columns "
                              "(columns: image, smiling, hair, male, age, mood, score)")
    with pytest.raises(UserError, match="label column 'score' holds double values"):
        pack_here(capsys, pq_path, "--out", str(tmp_path / "o2"), "--label-columns", "score")
    with pytest.raises(UserError, match="--label-columns: only for parquet and hf: sources"):
        pack_here(capsys, "synthetic:cartoon", "--out", str(tmp_path / "o3"), "--label-columns", "hat")
    with pytest.raises(UserError, match="--label-columns: not with --labels none"):
        pack_here(capsys, pq_path, "--out", str(tmp_path / "o4"), "--label-columns", "hair", "--labels", "none")
    # Without --label-columns a parquet is unlabeled, null row and all.
    out = str(tmp_path / "plain")
    pack_here(capsys, pq_path, "--out", out, "--size", "8", "--val-fraction", "0")
    m = read_manifest(out)
    assert m["count"] == N_ROWS and "labels" not in m


def test_hf_label_columns(tmp_path):
    pytest.importorskip("datasets")
    make_labeled_parquet(str(tmp_path / "faces" / "data" / "train-00000-of-00001.parquet"))
    env = {"HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    spec = "hf:" + str(tmp_path / "faces")
    out = str(tmp_path / "out")
    r = shard(spec, "--out", out, "--size", "8", "--val-fraction", "0", "--workers", "2",
              "--label-columns", "smiling,hair,male,age,mood", env=env)
    assert r.returncode == 0, r.stderr
    check_parquet_pack(out, lambda name: int(name.split("#")[1].split(":")[0]))
    assert f"from {spec} columns smiling, hair, male, age, mood" in r.stdout
    r = shard(spec, "--out", str(tmp_path / "o2"), "--label-columns", "hair,nope", env=env)
    assert r.returncode == 2 and f"{spec}: no column 'nope' for --label-columns (columns: image, smiling," in r.stderr


# ---- synthetic


def test_cartoon_faces_are_unchanged_and_report_their_attributes():
    from facegan.data.synthetic import LABEL_FIELDS, cartoon_face

    for i, expected in enumerate(CARTOON_HASHES):
        img = cartoon_face(i, 0, 32)
        img2, attrs = cartoon_face(i, 0, 32, attributes=True)
        assert hashlib.sha256(img.tobytes()).hexdigest()[:16] == expected, i
        assert img2.tobytes() == img.tobytes()
        assert set(attrs) == {f.name for f in LABEL_FIELDS}
        assert all(f.check(attrs[f.name], f"face {i}") == attrs[f.name] for f in LABEL_FIELDS)
    # Every attribute varies over a few hundred faces (each is drawn by chance).
    seen = [cartoon_face(i, 3, 8, attributes=True)[1] for i in range(300)]
    for f in LABEL_FIELDS:
        assert len({s[f.name] for s in seen}) == (2 if f.kind == BINARY else len(f.classes)), f.name
    assert not any(s["beard"] and s["moustache"] for s in seen)  # a moustache is drawn only without a beard


def test_synthetic_labels(tmp_path, capsys):
    from facegan.data.synthetic import cartoon_face

    out = str(tmp_path / "out")
    r = shard("synthetic:cartoon", "--out", out, "--size", "16", "--limit", "40", "--seed", "2",
              "--shard-size", "8", "--workers", "2")
    assert r.returncode == 0, r.stderr
    m = read_manifest(out)
    assert [f["name"] for f in m["labels"]["fields"]] == ["glasses", "hat", "beard", "moustache", "blush",
                                                          "hair", "mouth"]
    assert m["labels"]["fields"][5]["classes"] == ["short", "long", "spiky", "bun", "bald", "mohawk"]
    metas = sample_metas(out)
    assert len(metas) == 40
    for name, meta in metas.items():
        assert meta["labels"] == cartoon_face(int(name.split("-")[1]), 2, 8, attributes=True)[1], name
    check_counts(m, metas)
    assert ("labels: 7 fields (binary: glasses, hat, beard, moustache, blush; class: hair (6), mouth (6)) "
            "from synthetic:cartoon attributes") in r.stdout

    # The same dataset from one worker, in this process: the same bytes.
    one = str(tmp_path / "one")
    pack_here(capsys, "synthetic:cartoon", "--out", one, "--size", "16", "--limit", "40", "--seed", "2",
              "--shard-size", "8")
    for f in sorted(os.listdir(out)):
        if f.endswith(".tar"):
            assert open(os.path.join(out, f), "rb").read() == open(os.path.join(one, f), "rb").read(), f
    assert read_manifest(one)["labels"] == m["labels"]

    none = str(tmp_path / "none")
    stdout, _ = pack_here(capsys, "synthetic:cartoon", "--out", none, "--size", "16", "--limit", "10",
                          "--labels", "none")
    assert "labels" not in read_manifest(none) and "labels: none" in stdout
    assert not any("labels" in meta for meta in sample_metas(none).values())


def test_unlabeled_sources_have_no_labels(tmp_path, capsys):
    out = str(tmp_path / "out")
    stdout, _ = pack_here(capsys, make_zip(str(tmp_path / "faces.zip")), "--out", out, "--size", "8")
    m = read_manifest(out)
    assert "labels" not in m and label_fields(m, out) is None and "labels: none" in stdout
    metas = sample_metas(out)
    assert len(metas) == 10 and all(set(meta) == {"source", "width", "height"} for meta in metas.values())
