"""A smoke run of the benchmark suite at tiny sizes: it runs and reports figures and ratios."""

import json
import os

import pytest

from conftest import ROOT, run_cli


@pytest.mark.slow
def test_bench_train_smoke(tmp_path):
    r = run_cli(os.path.join(ROOT, "bench", "bench_train.py"), "--images", "120", "--steps", "4", "--warmup", "2",
                "--ngf", "8", "--batch", "16", "--workers", "1", "--workdir", str(tmp_path),
                env={"FACEGAN_BENCH_RESULTS": str(tmp_path / "results")}, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "speedup_vs_classic_loop" in r.stdout
    res = json.load(open(tmp_path / "results" / "train-cpu.json"))
    f = res["figures"]
    for key in ("classic_images_per_s", "facegan_images_per_s", "bound_images_per_s", "loader_images_per_s"):
        assert f[key] > 0
    assert res["machine"]["device"] == "cpu" and res["machine"]["torch"]


def test_bench_pack_and_loader_smoke(tmp_path):
    env = {"FACEGAN_BENCH_RESULTS": str(tmp_path / "results")}
    r = run_cli(os.path.join(ROOT, "bench", "bench_pack.py"), "--images", "60", "--workdir", str(tmp_path), env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    r = run_cli(os.path.join(ROOT, "bench", "bench_loader.py"), "--images", "60", "--batch", "8", "--batches", "3",
                "--workers", "1", "--workdir", str(tmp_path), env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.load(open(tmp_path / "results" / "pack-cpu.json"))["speedup_vs_single_process_loop"] > 0
    assert json.load(open(tmp_path / "results" / "loader-png-cpu.json"))["figures"]["facegan_images_per_s"] > 0
