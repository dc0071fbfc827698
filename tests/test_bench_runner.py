"""bench/runner.py, the loop quality.py and conditional.py share with small_data.py, end to end in
--quick mode (tiny pack, model and budget; numbers meaningless): runs trained and scored, rows
measured earlier kept under the same setup and dropped under another, finished runs scored again."""

import json
import os

import pytest

from conftest import ROOT, load_bench, run_cli


def bench(script, tmp_path, weights, *args):
    r = run_cli(os.path.join(ROOT, "bench", script), "--quick", "--shards", str(tmp_path / "pack"),
                "--workdir", str(tmp_path / "runs"), "--inception-weights", weights, *args, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


@pytest.mark.slow
def test_quality_keeps_rows_measured_earlier_under_the_same_setup(tmp_path, random_inception):
    out = tmp_path / "quality.json"
    bench("quality.py", tmp_path, random_inception, "--variants", "classic", "--out", str(out))
    r = bench("quality.py", tmp_path, random_inception, "--variants", "ema2", "--out", str(out))
    result = json.loads(out.read_text())
    assert set(result["variants"]) == {"classic", "ema2"} and result["benchmark"] == "quality"
    for row in result["variants"].values():
        assert row["seeds"] == [0] and row["runs"][0]["fid"] == row["fid"] and row["train_wall_s"] > 0
    assert "| classic |" in r.stdout and "| ema2 |" in r.stdout  # the table of both runs
    assert result["data"] == "pack (32x32)"  # outside the repository: no machine's directories


def test_rows_are_kept_only_under_the_same_setup(tmp_path):
    runner = load_bench("runner")
    out = str(tmp_path / "r.json")
    setup = {"kimg": 100, "n": 1000, "set": []}
    runner.write_result(out, dict(setup, benchmark="b", variants={"a": {"fid": 1.0}}))
    assert runner.start("b", out, setup)["variants"] == {"a": {"fid": 1.0}}
    assert runner.start("b", out, dict(setup, n=500))["variants"] == {}
    assert runner.start("b", str(tmp_path / "none.json"), setup)["variants"] == {}
    assert [name for name, _ in runner.ordered({"z": 1, "b": 2, "a": 3}, ["b", "x"])] == ["b", "a", "z"]


@pytest.mark.slow
def test_conditional_trains_then_rescores_with_another_judge(tmp_path, random_inception):
    out, again = tmp_path / "cond.json", tmp_path / "cond-judge1.json"
    r = bench("conditional.py", tmp_path, random_inception, "--variants", "cond-cbn-aux,uncond", "--out", str(out))
    result = json.loads(out.read_text())
    cond, uncond = result["variants"]["cond-cbn-aux"], result["variants"]["uncond"]
    assert set(cond["match_one"]) == {"glasses", "hat", "beard"} and "match_one" not in uncond
    assert cond["train_wall_s"] > 0 and result["classifier_aug"] == "flip"
    assert "| cond-cbn-aux | conditional BatchNorm in G" in r.stdout
    bench("conditional.py", tmp_path, random_inception, "--variants", "cond-cbn-aux", "--rescore",
          "--classifier-seed", "1", "--out", str(again))
    rescored = json.loads(again.read_text())["variants"]["cond-cbn-aux"]
    assert rescored["train_wall_s"] is None and rescored["fid"] == cond["fid"]  # the same run, judged again
    r = run_cli(os.path.join(ROOT, "bench", "conditional.py"), "--panel", str(out), str(again))
    assert "| cond-cbn-aux | 0 |" in r.stdout and "judges 0 / 1" in r.stdout


def test_size_other_than_the_recipes_sets_the_models_resolution():
    """--size 64 on a 32x32 recipe builds the model for 64x64 images; the recipe's own size adds nothing."""
    import argparse

    runner = load_bench("runner")
    at = lambda size: runner._resolution(argparse.Namespace(config="configs/demo.yaml", size=size))  # noqa: E731
    assert at(32) == [] and at(64) == ["model.resolution=64"]
    assert at(64) == runner._resolution(argparse.Namespace(config=os.path.join(ROOT, "configs", "demo.yaml"), size=64))
