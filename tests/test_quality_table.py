"""bench/quality.py's table over several seeds: means, spreads, and differences called real only
beyond the spread (the runs themselves take tens of minutes; this checks the bookkeeping)."""

import pytest

from conftest import load_bench


@pytest.fixture(scope="module")
def quality():
    return load_bench("quality")


@pytest.fixture(scope="module")
def runner():
    return load_bench("runner")  # a row's means and spreads over its seeds


def run(seed, fid, precision=0.5, recall=0.4):
    return {"seed": seed, "fid": fid, "kid": fid / 1000, "kid_std": 0.0, "precision": precision, "recall": recall,
            "density": 0.8, "coverage": 0.6, "train_wall_s": 100.0, "img_per_s": 900.0, "score_s": 50.0}


def row(what, *runs, runner):
    r = {"what": what, "overrides": [], "runs": list(runs)}
    r.update(runner.aggregate(r["runs"]))
    return r


def test_mean_std_and_real_differences(quality, runner):
    best = row("b", run(0, 100.0), run(1, 104.0), run(2, 102.0), runner=runner)
    assert best["fid"] == pytest.approx(102.0) and best["fid_std"] == pytest.approx(2.0)
    assert best["seeds"] == [0, 1, 2] and best["precision_std"] == 0.0
    close = row("c", run(0, 103.0), run(1, 107.0), run(2, 105.0), runner=runner)  # +3, spread 4
    far = row("f", run(0, 120.0), run(1, 124.0), run(2, 122.0), runner=runner)  # +20, spread 4
    single = row("s", run(0, 150.0), runner=runner)
    assert quality.versus(best, best) == "best"
    assert quality.versus(close, best) == "+3.0 (within spread 4.0)"
    assert quality.versus(far, best) == "+20.0 (real)"
    assert "1 seed" in quality.versus(single, best)
    table = quality.markdown({"machine": {"device": "cpu", "cpu": "x", "cores": 2}, "kimg": 100, "n": 1000,
                              "data": "d", "seed": 0,
                              "variants": {"classic": single, "best": best, "close": close, "far": far}})
    lines = {line.split(" | ")[0][2:]: line for line in table.splitlines() if line.startswith("| ")}
    assert "102.00 ± 2.00 | best" in lines["best"] and "0.500 ± 0.000" in lines["best"]
    assert "(within spread" in lines["close"] and "(real)" in lines["far"]


def test_committed_results_are_in_the_current_format(quality, runner):
    """Every quality result in bench/results has a runs list per row (one run per seed), whose
    numbers are the row's: the tables read them as written, with no upgrade on reading."""
    import glob
    import json
    import os

    from conftest import ROOT

    paths = [p for p in glob.glob(os.path.join(ROOT, "bench", "results", "*.json"))
             if json.load(open(p)).get("benchmark") == "quality"]
    assert paths
    for path in paths:
        result = json.load(open(path))
        for name, row in result["variants"].items():
            assert row["seeds"] == [r["seed"] for r in row["runs"]], (path, name)
            assert row["fid"] == runner.aggregate(row["runs"])["fid"], (path, name)
        assert "| variant | what | seeds | FID |" in quality.markdown(result)
