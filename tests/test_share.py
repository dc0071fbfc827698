"""Sharing a generator: the Hub folder (weights, config, card, app.py), FaceGenerator.from_pretrained,
the push when offline, and the app's handlers given hostile values."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT

pytest.importorskip("huggingface_hub")
pytest.importorskip("gradio")


def export(*argv):
    from facegan.cli.export import main

    return main([str(a) for a in argv])


@pytest.fixture(scope="module")
def hub_dir(tiny_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("hub") / "tiny-faces"
    assert export(tiny_run, "--hub-dir", out, "--license", "mit") == 0
    return str(out)


def test_hub_folder_samples_equal_facegan_sample(tiny_run, hub_dir, tmp_path):
    from facegan import FaceGenerator
    from facegan.cli.sample import main as sample

    assert sorted(os.listdir(hub_dir)) == ["README.md", "app.py", "config.json", "model.safetensors",
                                           "requirements.txt", "samples.png"]
    assert json.load(open(os.path.join(hub_dir, "config.json")))["nz"] == 16
    assert sample([tiny_run, "--n", "6", "--seed", "5", "--outdir", str(tmp_path / "cli")]) == 0
    cli = np.stack([np.asarray(Image.open(tmp_path / "cli" / f"0005-{i:06d}.png")) for i in range(6)])
    G = FaceGenerator.from_pretrained(hub_dir)
    images = G.sample(6, seed=5)
    assert images.dtype == np.uint8 and images.shape == (6, 32, 32, 3)
    assert np.array_equal(images, cli)  # bit for bit, through the Hub folder
    assert np.array_equal(FaceGenerator.from_pretrained(tiny_run).sample(6, seed=5), cli)  # the run itself
    tensor = G.sample(6, seed=5, as_tensor=True)
    assert tuple(tensor.shape) == (6, 3, 32, 32) and np.array_equal(tensor.permute(0, 2, 3, 1).numpy(), cli)
    assert not np.array_equal(G.sample(6, seed=6), cli)
    # The folder (its weights are also a facegan export) is a SOURCE for facegan-sample too.
    assert sample([hub_dir, "--n", "6", "--seed", "5",
                   "--outdir", str(tmp_path / "hub")]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "hub" / "0005-000003.png")), cli[3])


def test_card_metadata_and_text(tiny_run, hub_dir, tmp_path):
    from huggingface_hub import ModelCard

    card = ModelCard.load(os.path.join(hub_dir, "README.md"))
    assert card.data.library_name == "facegan" and card.data.license == "mit"
    assert {"gan", "dcgan", "unconditional-image-generation", "faces"} <= set(card.data.tags)
    assert card.data.eval_results is None  # the tiny run logged no FID: no invented scores
    text = card.text
    assert "FaceGenerator.from_pretrained" in text and "![16 samples, seed 0](samples.png)" in text
    assert "total_kimg: 0.128" in text  # the resolved config
    assert "0.128 kimg (128 images), 8 steps" in text and "| device | cpu (1 process), precision fp32 |" in text
    assert "| training time | 0m " in text
    assert Image.open(os.path.join(hub_dir, "samples.png")).size == (4 * 32 + 5 * 2,) * 2

    # Scores from facegan-eval --json, as it writes them
    scores = tmp_path / "scores.json"
    scores.write_text(json.dumps({"fid": 123.456, "kid": 0.0789, "kid_std": 0.0012, "n_real": 500, "n_fake": 500,
                                  "extractor": "inception-v3-tf-2015-12-05", "source": "generator x",
                                  "ref": "shards /data/cartoon32:val"}))
    out = tmp_path / "scored"
    assert export(tiny_run, "--hub-dir", out, "--scores", scores) == 0
    card = ModelCard.load(out / "README.md")
    found = {r.metric_type: r for r in card.data.eval_results}
    assert found["fid"].metric_value == pytest.approx(123.456) and found["kid"].metric_value == pytest.approx(0.0789)
    assert found["fid"].dataset_split == "val" and found["fid"].metric_args["n_fake"] == 500
    assert found["kid"].metric_args["reference"] == "/data/cartoon32"
    assert "| FID | 123.456 | 500 / 500 | /data/cartoon32 | val |" in card.text

    # FID logged during training at the exported checkpoint's kimg (metrics.jsonl)
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    with open(run / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 8, "kimg": 0.128, "fid": 301.5, "n_real": 64, "n_fake": 64}) + "\n")
    assert export(run, "--hub-dir", tmp_path / "logged") == 0
    (result,) = ModelCard.load(tmp_path / "logged" / "README.md").data.eval_results
    assert (result.metric_type, result.metric_value, result.metric_args["n_real"]) == ("fid", 301.5, 64)
    assert ModelCard.load(tmp_path / "logged" / "README.md").data.license == "other"


def test_hub_dir_refuses_foreign_folders(tiny_run, hub_dir, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(SystemExit) as e:
        export(tiny_run, "--hub-dir", mine)
    assert e.value.code == 2 and "not a facegan Hub folder" in capsys.readouterr().err
    assert (mine / "notes.txt").read_text() == "keep me"
    copy = tmp_path / "copy"
    shutil.copytree(hub_dir, copy)
    with pytest.raises(SystemExit):
        export(tiny_run, "--hub-dir", copy)
    assert "--overwrite" in capsys.readouterr().err
    assert export(tiny_run, "--hub-dir", copy, "--overwrite") == 0


def test_push_offline_or_without_token_is_one_line(tiny_run, tmp_path, monkeypatch, capsys):
    import huggingface_hub
    from huggingface_hub import constants

    # HF_HUB_OFFLINE=1 as huggingface_hub reads it (into constants, when it is imported)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    folder = tmp_path / "push"
    with pytest.raises(SystemExit) as e:
        export(tiny_run, "--hub-dir", folder, "--push-to-hub", "me/faces")
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and "HF_HUB_OFFLINE" in err
    assert f"hf upload me/faces {folder} ." in err
    assert os.path.isfile(folder / "model.safetensors")  # left on disk to push later

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    with pytest.raises(SystemExit) as e:
        export(tiny_run, "--hub-dir", tmp_path / "push2", "--push-to-hub", "me/faces")
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and "no Hugging Face token" in err
    assert os.path.isfile(tmp_path / "push2" / "README.md")


def test_app_py_builds_from_the_folder_alone(hub_dir, tmp_path):
    space = tmp_path / "space"
    shutil.copytree(hub_dir, space)
    assert "facegan[app]==" in (space / "requirements.txt").read_text()
    code = ("import runpy; ns = runpy.run_path('app.py', run_name='__main__'); "
            "print(type(ns['demo']).__name__, ns['G'].resolution, sorted(ns['demo'].fns and "
            "[f.api_name for f in ns['demo'].fns.values()]))")
    env = dict(os.environ, PYTHONPATH=ROOT, FACEGAN_APP_BUILD_ONLY="1", HF_HUB_OFFLINE="1",
               GRADIO_ANALYTICS_ENABLED="False")
    r = subprocess.run([sys.executable, "-c", code], cwd=space, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Blocks 32 ['generate', 'interpolate']" in r.stdout


def test_app_handlers_bound_hostile_values(hub_dir):
    from facegan import FaceGenerator
    from facegan.app.ui import make_grid, make_walk

    G = FaceGenerator.from_pretrained(hub_dir)
    side = lambda n_per_row: n_per_row * 32 + (n_per_row + 1) * 2  # noqa: E731
    grid, notes = make_grid(G, 7, 4, 1.0)
    assert grid.size == (side(2), side(2)) and notes == "4 images, seed 7, truncation 1"
    assert np.asarray(grid).std() > 5  # not blank
    grid, notes = make_grid(G, 10 ** 100, 10 ** 9, 50)
    assert grid.size == (side(8), side(8)) and "used 64" in notes and "modulo 2**31" in notes
    assert "truncation: 50 is outside" in notes
    grid, notes = make_grid(G, -1, -5, -1)
    assert grid.size == (32, 32) and "seed 2147483647" in notes  # one image: no padding and "truncation 0.05" in notes
    grid, notes = make_grid(G, "drop table", "many", "x" * 10 ** 6)
    assert grid.size == (side(4), side(4)) and notes.count("is not a number") == 3
    grid, _ = make_grid(G, float("nan"), float("inf"), None)
    assert grid.size == (side(4), side(4))
    assert np.array_equal(np.asarray(make_grid(G, 2 ** 31 + 3, 4, 1)[0]), np.asarray(make_grid(G, 3, 4, 1)[0]))
    strip, gif, notes = make_walk(G, 1, 2, 10 ** 9, 0.7)
    assert strip.size == (side(32), side(1)) and "used 32" in notes
    assert gif.startswith('<div class="facegan-img"><img id="walk-gif" src="data:image/gif;base64,')
    strip, _, notes = make_walk(G, [1], {"a": 2}, "", 1)
    assert strip.size == (side(12), side(1)) and "a list is not a number" in notes


def test_app_cli_refuses_in_one_line(hub_dir, monkeypatch, capsys):
    from huggingface_hub import constants

    from facegan.cli.app import main as app

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SystemExit) as e:
        app([hub_dir, "--share"])  # checked before anything is loaded or served
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and "--share needs the internet" in err
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(SystemExit) as e:
        app(["nobody/no-such-model", "--port", "0"])
    err = capsys.readouterr().err.splitlines()  # a "loading" line, then one error line
    assert e.value.code == 2 and len(err) == 2 and "could not load it from the Hugging Face Hub" in err[1]
    with pytest.raises(SystemExit):
        app(["no/such/path"])
    assert "no such file or directory" in capsys.readouterr().err
