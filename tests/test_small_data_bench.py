"""bench/small_data.py end to end in its --quick mode: the pack's nested training sets, runs
trained and scored against the one val split, ADA's final p, the img/s cost; the hat split behind
its fine-tuning row; and small_data_figure.py's pooling of result files into the README's table."""

import json
import os

import pytest

from conftest import ROOT, load_bench, run_cli


def test_training_sets_are_the_packs_first_shards(cartoon_shards):
    bench = load_bench("small_data")
    first = bench.training_shards(cartoon_shards, 64)  # the fixture's shards hold 64 images each
    assert first.count("::") == 0 and first.endswith(".tar")
    two = bench.training_shards(cartoon_shards, 128)
    assert two.startswith(first + "::") and two.count("::") == 1
    try:
        bench.training_shards(cartoon_shards, 100)
    except SystemExit as err:
        assert "exactly 100" in str(err)
    else:
        raise AssertionError("100 images are not whole shards of 64")


def test_quick_mode_runs_end_to_end(tmp_path, random_inception):
    out = tmp_path / "small.json"
    r = run_cli(os.path.join(ROOT, "bench", "small_data.py"), "--quick", "--sizes", "32", "--augment", "none,ada",
                "--shards", str(tmp_path / "pack"), "--workdir", str(tmp_path / "runs"), "--out", str(out),
                "--inception-weights", random_inception, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(out.read_text())
    assert set(result["rows"]) == {"32-none", "32-ada"}  # diffaug runs the same way (two runs keep it short)
    for row in result["rows"].values():
        assert row["images"] == 32 and all(k in row for k in ("fid", "kid", "precision", "recall", "img_per_s"))
    assert result["rows"]["32-ada"]["ada_p"] is not None and result["rows"]["32-none"]["ada_p"] is None
    assert result["rows"]["32-ada"]["img_s_cost"] is not None and result["rows"]["32-none"]["img_s_cost"] is None
    assert "| 32 | ada |" in r.stdout


def test_hat_split_is_disjoint_and_true_to_the_labels(tmp_path):
    """The fine-tuning row's two sets: every face drawn lands in exactly one folder, the one its
    hat label says, and a second call finds the split done."""
    from PIL import Image

    from facegan.data.synthetic import cartoon_face

    split = load_bench("cartoon_split")
    out = split.render_split(str(tmp_path / "split"), 40, "hat", size=16)
    with_hat, without = (sorted(os.listdir(os.path.join(out, d))) for d in ("with-hat", "without-hat"))
    assert with_hat and without and not set(with_hat) & set(without)
    assert sorted(with_hat + without) == [f"face-{i:06d}.png" for i in range(40)]
    for name in with_hat[:3] + without[:3]:
        i = int(name[5:11])
        image, labels = cartoon_face(i, size=16, attributes=True)
        assert (name in with_hat) == bool(labels["hat"])
        assert list(Image.open(os.path.join(out, "with-hat" if labels["hat"] else "without-hat", name)).getdata()) \
            == list(image.getdata())
    os.remove(os.path.join(out, "with-hat", with_hat[0]))
    assert split.render_split(out, 40, "hat", size=16) == out  # the marker: not drawn again
    assert not os.path.exists(os.path.join(out, "with-hat", with_hat[0]))
    try:
        split.render_split(str(tmp_path / "bad"), 2, "tail", size=16)
    except KeyError as err:
        assert "tail" in str(err) and "hat" in str(err)
    else:
        raise AssertionError("a label the faces do not have must be refused")


def _result(path, seeds, fid, **setup):
    runs = [{"seed": s, "fid": fid + s, "kid": 0.01, "precision": 0.1, "recall": 0.2, "img_per_s": 100.0,
             "ada_p": 0.3, "D_train": 0.9, "D_val": 0.8} for s in seeds]
    result = dict({"data": "bench/out/avatars32-small (32x32, shards of 500)", "kimg": 400.0, "set": [],
                   "rows": {"1000-ada": {"images": 1000, "augment": "ada", "runs": runs}}}, **setup)
    path.write_text(json.dumps(result))
    return str(path)


def test_figure_pools_seeds_across_files_and_keeps_fine_tuning_apart(tmp_path):
    fig = load_bench("small_data_figure")
    files = [_result(tmp_path / "a.json", [0], 50.0), _result(tmp_path / "b.json", [1, 2], 50.0),
             _result(tmp_path / "c.json", [0], 90.0, set=["run.init=runs/x", "train.freeze_d=2"])]
    cells = fig.pooled(files)
    scratch = cells[("avatars", 32, 400.0, 1000, "ada", "")]
    assert [r["seed"] for r in scratch] == [0, 1, 2]
    assert fig.stat(scratch, "fid") == (51.0, 1.0)  # 50, 51, 52
    tuned = cells[("avatars", 32, 400.0, 1000, "ada", "run.init=runs/x train.freeze_d=2")]
    assert [r["fid"] for r in tuned] == [90.0]
    table = fig.markdown(cells)
    assert "| 3 (0,1,2) | 51.00 +- 1.00 |" in table and "ADA, fine-tuned (freeze_d=2) | 1 (0) | 90.00 |" in table
    fig.figure(cells, str(tmp_path / "f.png"), 400.0)
    assert (tmp_path / "f.png").stat().st_size > 1000
    other = _result(tmp_path / "d.json", [3], 50.0, n=500)
    with pytest.raises(ValueError, match="d.json"):
        fig.pooled(files + [other])
    (tmp_path / "e.json").write_text("not json")
    with pytest.raises(ValueError, match="e.json: not JSON"):
        fig.pooled([str(tmp_path / "e.json")])
    with pytest.raises(ValueError, match="no run trained from scratch at 123 kimg"):
        fig.figure(cells, str(tmp_path / "g.png"), 123.0)


def test_speed_is_a_range_when_a_rows_runs_ran_at_different_speeds():
    fig = load_bench("small_data_figure")
    assert fig.speed_text([{"img_per_s": 100.0}, {"img_per_s": 110.0}]) == "105"
    assert fig.speed_text([{"img_per_s": 200.0}, {"img_per_s": 970.0}, {"img_per_s": 950.0}]) == "200-970"
    assert fig.speed_text([{"img_per_s": None}]) == "-"
