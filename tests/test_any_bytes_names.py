"""Every path facegan meets is bytes it must survive: file names that are not UTF-8 (Latin-1
`caf\\xe9.png` from old archives and Windows copies) in every tool that walks a folder."""

import json
import os

from conftest import face_like, run_cli, shard

LATIN1 = b"caf\xe9.png"  # not valid UTF-8: Python holds it as 'caf\udce9.png'


def _folder_with_latin1_names(root, n=6):
    raw = os.fsencode(str(root))
    os.makedirs(raw, exist_ok=True)
    for i in range(n):
        name = LATIN1 if i == 0 else b"gar\xe7on-%d.png" % i
        face_like(i, (32, 32)).save(os.path.join(raw, name), format="PNG")
    with open(os.path.join(raw, b"d\xe9fectueux.png"), "wb") as f:  # a damaged image, named in Latin-1 too
        f.write(b"not an image")
    return str(root)


def test_eval_scores_a_folder_whose_names_are_not_utf8(cartoon_shards, random_inception, tmp_path):
    """The reported case: facegan-eval FOLDER --ref SHARDS ended in UnicodeEncodeError from the
    folder cache's key; now it scores, caches and finds the cache again."""
    folder = _folder_with_latin1_names(tmp_path / "faces")
    args = ["-m", "facegan.cli.eval", folder, "--ref", cartoon_shards, "--n", "6", "--metrics", "fid,kid",
            "--inception-weights", random_inception, "--json", str(tmp_path / "r.json")]
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr[-1500:]
    assert "UnicodeEncodeError" not in first.stderr
    assert "d\\xe9fectueux.png" in first.stderr  # the damaged one, named with its byte escaped
    fid = json.load(open(tmp_path / "r.json"))["fid"]
    again = run_cli(*args)
    assert again.returncode == 0, again.stderr[-1500:]
    assert "from cache" in again.stdout + again.stderr
    assert json.load(open(tmp_path / "r.json"))["fid"] == fid


def test_eval_of_two_latin1_folders_against_each_other(random_inception, tmp_path):
    a = _folder_with_latin1_names(tmp_path / "a")
    b = _folder_with_latin1_names(tmp_path / "b\udce9")  # the folder's own name too
    r = run_cli("-m", "facegan.cli.eval", a, "--ref", b, "--n", "6", "--metrics", "fid,kid",
                "--inception-weights", random_inception)
    assert r.returncode == 0, r.stderr[-1500:]
    assert "fid" in r.stdout.lower()


def test_packing_a_latin1_folder_names_the_skipped_file_readably(tmp_path):
    folder = _folder_with_latin1_names(tmp_path / "faces")
    out = tmp_path / "shards"
    r = shard(folder, "--out", str(out), "--size", "16", "--val-fraction", "0.2")
    assert r.returncode == 0, r.stderr[-1500:]
    manifest = json.load(open(out / "dataset.json"))
    assert sum(s["count"] for sp in manifest["splits"].values() for s in sp["shards"]) == 6
    skipped = json.dumps(manifest.get("skipped", manifest))
    assert "fectueux" in skipped


def test_a_missing_latin1_path_is_one_line(tmp_path):
    missing = os.fsdecode(os.path.join(os.fsencode(str(tmp_path)), b"nul\xe9-part"))
    r = run_cli("-m", "facegan.cli.eval", missing, "--ref", missing)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "nul\\xe9-part" in r.stderr
