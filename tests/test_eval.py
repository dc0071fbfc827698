"""facegan-sample / export / eval / report on a tiny trained run; FID/KID plumbing in closed form."""

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import ROOT, run_cli
from facegan.eval.metrics import fid_kid, reference_features
from facegan.data.loader import resolve_shards

@pytest.fixture(scope="module")
def random_inception(tmp_path_factory):
    """The FID Inception architecture with random weights, saved as a plain tensor file: the
    real extractor code path, without the published weights (no network here)."""
    import torch_fidelity.feature_extractor_inceptionv3 as fe

    orig = fe.FeatureExtractorInceptionV3.load_state_dict
    fe_url = fe.load_state_dict_from_url
    fe.load_state_dict_from_url = lambda *a, **k: {}
    fe.FeatureExtractorInceptionV3.load_state_dict = lambda self, sd, strict=True: None
    try:
        torch.manual_seed(0)
        net = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    finally:
        fe.FeatureExtractorInceptionV3.load_state_dict = orig
        fe.load_state_dict_from_url = fe_url
    path = str(tmp_path_factory.mktemp("weights") / "inception-random.pth")
    torch.save(net.state_dict(), path)
    return path


def tool(name, *args, **kw):
    return run_cli("-m", f"facegan.cli.{name}", *args, **kw)


def test_sample_grid_folder_and_interpolation(tiny_run, tmp_path):
    from facegan.cli.sample import main as sample  # the command itself runs once, below

    r = tool("sample", tiny_run, "--n", "16", "--out", str(tmp_path / "grid.png"))
    assert r.returncode == 0, r.stderr
    grid = Image.open(tmp_path / "grid.png")
    assert grid.size == (4 * 34 + 2, 4 * 34 + 2)  # 4x4 images of 32px with 2px padding
    assert sample([tiny_run, "--n", "5", "--outdir", str(tmp_path / "many"), "--raw", "--seed", "3"]) == 0
    files = sorted(os.listdir(tmp_path / "many"))
    assert len(files) == 5 and Image.open(tmp_path / "many" / files[0]).size == (32, 32)
    assert sample([tiny_run, "--interpolate", "4", "--n", "3", "--out", str(tmp_path / "walk.gif")]) == 0
    assert Image.open(tmp_path / "walk.gif").n_frames == 9
    # same seed, same images (here and from the command above); EMA and raw differ
    assert sample([tiny_run, "--n", "16", "--out", str(tmp_path / "a.png")]) == 0
    assert sample([tiny_run, "--n", "16", "--out", str(tmp_path / "b.png"), "--raw"]) == 0
    assert open(tmp_path / "a.png", "rb").read() == open(tmp_path / "grid.png", "rb").read()
    assert open(tmp_path / "a.png", "rb").read() != open(tmp_path / "b.png", "rb").read()


def test_export_loads_with_facegan_alone(tiny_run, tmp_path):
    out = str(tmp_path / "generator.safetensors")
    r = tool("export", tiny_run, "--out", out)
    assert r.returncode == 0, r.stderr
    from facegan.eval.generator_io import load_generator

    g, info = load_generator(out)
    assert info["architecture"]["resolution"] == 32 and info["summary"]["kimg"] == 0.128
    ema, _ = load_generator(tiny_run)
    z = torch.randn(2, 16, 1, 1)
    assert torch.equal(g(z), ema(z))
    r = tool("sample", out, "--n", "4", "--out", str(tmp_path / "g.png"))
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("case", ["not_checkpoint", "empty_run", "other_arch", "ref_resolution"])
def test_bad_sources_exit_2(tiny_run, tmp_path, cartoon_shards, case):
    if case == "not_checkpoint":
        (tmp_path / "x.txt").write_text("hello")
        r = tool("sample", str(tmp_path / "x.txt"), "--out", str(tmp_path / "o.png"))
    elif case == "empty_run":
        (tmp_path / "run" / "checkpoints").mkdir(parents=True)
        (tmp_path / "run" / "config.yaml").write_text("{}")
        r = tool("sample", str(tmp_path / "run"), "--out", str(tmp_path / "o.png"))
    elif case == "other_arch":
        from safetensors.torch import save_file

        save_file({"w": torch.zeros(2)}, str(tmp_path / "g.safetensors"),
                  metadata={"architecture": json.dumps({"arch": "stylegan2"})})
        r = tool("sample", str(tmp_path / "g.safetensors"), "--out", str(tmp_path / "o.png"))
    else:
        from facegan.data.shard import PackOptions, pack
        from facegan.data.sources import open_source

        ref = str(tmp_path / "ref16")
        pack(open_source("synthetic:cartoon", limit=20), ref, PackOptions(size=16, workers=1, val_fraction=0.5))
        r = tool("eval", tiny_run, "--ref", ref, "--n", "10")
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr


@pytest.mark.slow
def test_eval_end_to_end_and_reference_cache(tiny_run, cartoon_shards, random_inception, tmp_path, capsys):
    args = [tiny_run, "--ref", cartoon_shards, "--n", "24", "--batch-size", "12",
            "--inception-weights", random_inception, "--json", str(tmp_path / "r.json")]
    r = tool("eval", *args)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.load(open(tmp_path / "r.json"))
    assert res["n_real"] == res["n_fake"] == 24 and res["extractor"] == "inception-v3-compat-2048"
    assert np.isfinite(res["fid"]) and res["fid"] > 0 and "kid" in res
    assert "n_real 24, n_fake 24" in r.stdout
    assert os.path.exists(os.path.join(cartoon_shards, "fid-ref-inception-v3-compat-2048-val-24.safetensors"))
    from facegan.cli.eval import main as evaluate  # the second time in this process

    assert evaluate(args) == 0
    said = capsys.readouterr()
    assert "from cache" in said.out + said.err
    assert json.load(open(tmp_path / "r.json"))["fid"] == pytest.approx(res["fid"], rel=1e-6)


class FirstPixels(torch.nn.Module):
    """A custom extractor: the first d values of each image, as floats."""

    extractor_id = "first-pixels"

    def __init__(self, d):
        super().__init__()
        self.num_features = d

    def forward(self, x):
        return x.flatten(1)[:, : self.num_features].float()


def test_fid_kid_closed_form_two_gaussians():
    g = torch.Generator().manual_seed(0)
    d, n = 4, 4000
    x = torch.randn(n, d, generator=g)
    shift = torch.tensor([1.0, 2.0, 0.0, 0.0])
    y = torch.randn(n, d, generator=g) + shift
    same = fid_kid(x, x)
    assert abs(same["fid"]) < 1e-3 and abs(same["kid"]) < 3 * same["kid_std"] + 1e-4
    # FID between N(0, I) and N(mu, I) is |mu|^2 = 5 (trace terms cancel)
    assert fid_kid(x, y, ("fid",))["fid"] == pytest.approx(5.0, abs=0.3)
    # scaled covariance: N(0, I) vs N(0, 4I): FID = d * (1 + 4 - 2*2) = d
    z = 2 * torch.randn(n, d, generator=g)
    assert fid_kid(x, z, ("fid",))["fid"] == pytest.approx(d, abs=0.4)
    assert fid_kid(x, y)["kid"] > 0.1


def test_reference_features_cached_with_custom_extractor(cartoon_shards):
    shards = resolve_shards(cartoon_shards, "val", 32)
    ext = FirstPixels(8)
    calls = []
    first = reference_features(shards, cartoon_shards, "val", 30, ext, "cpu", 7, log=calls.append)
    path = os.path.join(cartoon_shards, "fid-ref-first-pixels-val-30.safetensors")
    assert os.path.exists(path) and first.shape == (30, 8) and not calls
    second = reference_features(shards, cartoon_shards, "val", 30, ext, "cpu", 7, log=calls.append)
    assert torch.equal(first, second) and "from cache" in calls[0]
    os.remove(path)


def test_report_images(tiny_run):
    r = tool("report", tiny_run)
    assert r.returncode == 0, r.stderr
    loss = Image.open(os.path.join(tiny_run, "losses.png"))
    assert loss.size == (1200, 400)
    arr = np.asarray(loss.convert("L"))
    assert arr.std() > 10  # not blank
    gif = Image.open(os.path.join(tiny_run, "progress.gif"))
    assert gif.n_frames >= 3
    html = open(os.path.join(tiny_run, "report.html")).read()
    assert "losses.png" in html and "progress.gif" in html
    assert tool("report", os.path.join(tiny_run, "samples")).returncode == 2


@pytest.mark.slow
def test_fid_during_training_keeps_best_checkpoint(cartoon_shards, random_inception, tmp_path):
    r = run_cli(os.path.join(ROOT, "launch", "train.py"), f"data.shards={cartoon_shards}", f"run.dir={tmp_path}",
                *TINY, "eval.every_kimg=0.064", "eval.n=16", f"eval.inception_weights={random_inception}",
                "train.keep_checkpoints=1")
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    fids = [row for row in rows if "fid" in row]
    assert len(fids) == 2 and all(np.isfinite(row["fid"]) for row in fids)
    best = json.load(open(tmp_path / "checkpoints" / "best" / "best.json"))
    assert best["fid"] == min(row["fid"] for row in fids)
    assert os.path.exists(tmp_path / "checkpoints" / "best" / "G_ema.safetensors")
    assert os.path.exists(tmp_path / "fid.png")
