"""Exploring and judging a generator: truncation, latent walks as H.264, precision/recall/density/
coverage against the authors' prdc package, and the nearest-neighbour copy check."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from facegan.config import ModelConfig
from facegan.sampling import latents
from facegan.models import build_models
from facegan.models import architecture
from facegan.train import checkpoint as ckpt


@pytest.fixture(scope="module")
def generator_file(tmp_path_factory):
    """An exported (untrained, randomly initialised) 16x16 generator: sampling code paths only."""
    cfg = ModelConfig(resolution=16, nz=8, ngf=8, ndf=8)
    G, _ = build_models(cfg, seed=1)
    gen = torch.Generator().manual_seed(1)
    for p in G.parameters():  # weights larger than DCGAN's init, so images vary visibly with z
        if p.dim() == 4:
            p.data.normal_(0, 0.3, generator=gen)
    path = str(tmp_path_factory.mktemp("gen") / "G.safetensors")
    ckpt.save_network(G, path, architecture(cfg), {"summary": {}, "format_version": "facegan-generator-1"})
    return path


# ---- truncation ----------------------------------------------------------------------------------

def test_truncation_one_is_plain_sampling_and_smaller_psi_shrinks_z():
    plain = torch.randn(64, 100, 1, 1, generator=torch.Generator().manual_seed(7))  # facegan-sample before psi
    assert torch.equal(latents(64, 100, 7, 1.0), plain)
    spreads = [float(latents(64, 100, 7, psi).std()) for psi in (1.0, 0.7, 0.4)]
    assert spreads[0] > spreads[1] > spreads[2]
    assert spreads[2] == pytest.approx(0.4 * spreads[0], rel=1e-5)


def test_sample_truncation_and_truncation_row(generator_file, tmp_path, capsys):
    from facegan.cli.sample import main as sample

    assert sample([generator_file, "--n", "9", "--out", str(tmp_path / "plain.png")]) == 0
    assert sample([generator_file, "--n", "9", "--truncation", "1", "--out", str(tmp_path / "psi1.png")]) == 0
    assert sample([generator_file, "--n", "9", "--truncation", "0.3", "--out", str(tmp_path / "psi03.png")]) == 0
    plain = np.asarray(Image.open(tmp_path / "plain.png"), dtype=np.float64)
    assert np.array_equal(plain, np.asarray(Image.open(tmp_path / "psi1.png")))
    low = np.asarray(Image.open(tmp_path / "psi03.png"), dtype=np.float64)
    # cells of the 3x3 grid (16 px + 2 px padding): faces vary less across samples at small psi
    cells = lambda g: np.stack([g[2 + 18 * r:18 + 18 * r, 2 + 18 * c:18 + 18 * c] for r in range(3) for c in range(3)])  # noqa: E731
    assert cells(low).std(axis=0).mean() < cells(plain).std(axis=0).mean()
    assert sample([generator_file, "--n", "9", "--truncation-row", "1,0.5", "--out", str(tmp_path / "row.png")]) == 0
    row = Image.open(tmp_path / "row.png")
    assert row.size == (2 * 56 + 8, 56 + 16)  # two 3x3 grids of 16 px, a gap, a label strip
    first = np.asarray(row.convert("RGB"))[16:, :56]
    assert np.array_equal(first, np.asarray(Image.open(tmp_path / "plain.png").convert("RGB")))
    with pytest.raises(SystemExit) as exit_:
        sample([generator_file, "--truncation-row", "1,1.5", "--out", str(tmp_path / "x.png")])
    assert exit_.value.code == 2 and "--truncation-row 1,1.5" in capsys.readouterr().err


# ---- video -----------------------------------------------------------------------------------------

def test_interpolation_mp4_is_readable_with_the_right_frames(generator_file, tmp_path):
    from facegan.cli.sample import main as sample
    from facegan.sampling import walk_frames
    from facegan.eval.generator_io import load_generator
    from facegan.eval.video import read_mp4

    out = str(tmp_path / "walk.mp4")
    assert sample([generator_file, "--interpolate", "4", "--n", "3", "--out", out]) == 0
    frames, meta = read_mp4(out)
    assert meta["codec"] == "h264" and frames.shape == (9, 256, 256, 3)  # (3-1)*4+1 frames, 16 px x 16
    G, _ = load_generator(generator_file)
    want = walk_frames(G, 3, 0, 4).permute(0, 2, 3, 1).numpy().repeat(16, 1).repeat(16, 2)
    err = np.abs(frames.astype(np.float64) - want).mean(axis=(1, 2, 3))
    assert err.max() < 12, err  # lossy (crf 18, yuv420p), but the same frames in the same order
    assert sample([generator_file, "--interpolate", "4", "--n", "3", "--out", str(tmp_path / "walk.gif")]) == 0
    assert Image.open(tmp_path / "walk.gif").n_frames == 9


def test_report_progress_video(tmp_path):
    from facegan.eval.report import write_report
    from facegan.eval.video import read_mp4

    (tmp_path / "samples").mkdir()
    for i in range(3):
        Image.new("RGB", (38, 38), (80 * i, 0, 0)).save(tmp_path / "samples" / f"fakes-kimg{i:010.3f}.png")
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"kimg": 1, "step": 1, "loss_D": 1.0, "loss_G": 1.0,
                                                        "D_real": 0.5, "D_fake": 0.5}) + "\n")
    out = write_report(str(tmp_path))
    frames, _ = read_mp4(out["progress_mp4"])
    assert frames.shape[1:] == (266, 266, 3) and len(frames) >= 3  # 38 px x 7, last frame held
    assert abs(float(frames[0, ..., 0].mean()) - 0) < 8 and abs(float(frames[-1, ..., 0].mean()) - 160) < 8
    assert "progress.mp4" in open(out["html"]).read()


# ---- precision, recall, density, coverage ---------------------------------------------------------------

def test_prdc_hand_computable_cases():
    from facegan.eval.prdc import prdc

    x = torch.randn(50, 8, generator=torch.Generator().manual_seed(0))
    same = prdc(x, x.clone())
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0
    far = prdc(x, x + 1000.0)
    assert far == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}
    # half the generated set on top of the real one, half far away: precision and density halve
    half = prdc(x, torch.cat([x[:25], x[25:] + 1000.0]))
    assert half["precision"] == 0.5 and half["density"] == pytest.approx(same["density"] * 0.5, abs=0.2)
    with pytest.raises(ValueError, match="more than k = 5"):
        prdc(x[:5], x)


def test_prdc_matches_the_reference_package():
    prdc_ref = pytest.importorskip("prdc")
    from facegan.eval.prdc import prdc

    g = torch.Generator().manual_seed(1)
    for n_real, n_fake, shift in ((200, 150, 0.3), (120, 260, 1.0)):
        real = torch.randn(n_real, 32, generator=g)
        fake = torch.randn(n_fake, 32, generator=g) * 1.2 + shift
        ours = prdc(real, fake, chunk=64)  # several chunks
        ref = prdc_ref.compute_prdc(real.numpy().astype(np.float64), fake.numpy().astype(np.float64), nearest_k=5)
        for key in ours:
            assert ours[key] == pytest.approx(float(ref[key]), abs=1e-12), key


# ---- memorization --------------------------------------------------------------------------------

def test_copy_check_flags_copies_and_not_fresh_samples(tmp_path):
    from facegan.eval.nearest import beta_binomial_tail, copy_check, figure, verdict

    stats = pytest.importorskip("scipy.stats")
    for count, n, a, b in ((4, 40, 1, 40), (12, 1000, 10, 991), (0, 10, 1, 5)):
        assert beta_binomial_tail(count, n, a, b) == pytest.approx(stats.betabinom.sf(count - 1, n, a, b), rel=1e-9)

    g = torch.Generator().manual_seed(2)
    train, val = torch.randn(400, 16, generator=g), torch.randn(200, 16, generator=g)
    fresh = torch.randn(200, 16, generator=g)
    copies = torch.cat([train[:15] + 1e-3 * torch.randn(15, 16, generator=g), fresh[15:]])
    clean = copy_check(fresh, train, val, "features")
    copied = copy_check(copies, train, val, "features")
    assert not clean.copied and clean.flagged.sum() <= 5
    assert copied.copied and copied.flagged[:15].all() and copied.z_u < clean.z_u
    assert torch.equal(copied.gen_idx[:15, 0], torch.arange(15))
    assert verdict([clean]).startswith("memorization: nothing looks copied")
    assert "LOOKS COPIED in features space" in verdict([clean, copied])
    # a grey-blob generator: close to everything in L2, but no nearer one training image than others
    blob = copy_check(train.mean(0, keepdim=True).repeat(200, 1) + 0.01 * torch.randn(200, 16, generator=g),
                      train, val, "blob")
    assert blob.z_u < -5 and not blob.copied
    thumbs = torch.rand(400, 3, 8, 8, generator=g)
    img = figure(thumbs[:200], thumbs, [copied], rows=4)
    assert img.size == (4 * 66 + 10, 16 + 4 * 66)  # 8 px thumbnails x 8 (+2 px), generated + 3 neighbours


class Tiny(torch.nn.Module):
    """A cheap stand-in for Inception: 8x8 average-pooled pixels."""

    extractor_id = "tiny-pool8"
    num_features = 192

    def forward(self, x):
        return torch.nn.functional.adaptive_avg_pool2d(x.float() / 255, 8).flatten(1)


def _train_images(shards, n):
    from facegan.data.loader import eval_loader, resolve_shards

    return torch.cat(list(eval_loader(resolve_shards(shards, "train"), 32, limit=n)))


def test_nearest_on_image_sets_with_and_without_copies(cartoon_shards, tmp_path):
    from accelerate import Accelerator

    from facegan.data.synthetic import cartoon_face
    from facegan.eval.image_sets import open_image_set
    from facegan.eval.memorization import run_nearest

    train = _train_images(cartoon_shards, 20)
    for name, n_copies in (("copies", 20), ("clean", 0)):
        folder = tmp_path / name
        folder.mkdir()
        for i in range(40):
            im = (Image.fromarray(train[i].permute(1, 2, 0).numpy()) if i < n_copies else
                  cartoon_face(i, seed=977).resize((32, 32), Image.Resampling.LANCZOS))
            im.save(folder / f"{i:03d}.png")
    acc = Accelerator(cpu=True)
    results = {}
    for name in ("copies", "clean"):
        args = SimpleNamespace(n=40, nearest=str(tmp_path / f"{name}.png"), nearest_train=0, split="val",
                               batch_size=32, seed=0)
        results[name] = run_nearest(args, open_image_set(str(tmp_path / name)), open_image_set(cartoon_shards),
                                    Tiny(), acc, log=lambda *a: None)
    copies, clean = results["copies"], results["clean"]
    assert copies["copied"] and "LOOKS COPIED" in copies["verdict"]
    pixel = copies["spaces"]["pixel 32px"]
    assert set(range(20)) <= set(pixel["flagged_indices"]) and pixel["generated_to_train"]["p5"] < 1e-4
    assert not clean["copied"] and "nothing looks copied" in clean["verdict"], clean["verdict"]
    line = copies["distances"][1]  # half the set are copies: the generated p5 sits at ~0, val's does not
    assert line.startswith("nearest training image, pixel 32px distance p5/p50/p95: generated ")
    gen_p5, val_p5 = (float(part.split()[-1].split("/")[0]) for part in line.split(": ")[1].split(", "))
    assert gen_p5 < 1e-3 < 1 < val_p5, line
    assert clean["n_train"] == 576 and clean["n_val"] == 40 and clean["_fake"].shape == (40, 192)
    assert Image.open(tmp_path / "copies.png").size[1] == 16 + 8 * 66
    json.dumps({k: v for k, v in copies.items() if not k.startswith("_")})  # the JSON result


def test_eval_nearest_needs_a_shard_reference(generator_file, tmp_path, capsys):
    (tmp_path / "f").mkdir()
    Image.new("RGB", (16, 16)).save(tmp_path / "f" / "a.png")
    from facegan.cli.eval import main as evaluate

    with pytest.raises(SystemExit) as exit_:
        evaluate([generator_file, "--ref", str(tmp_path / "f"), "--nearest"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("must be a facegan shard dataset with train and val splits") and len(err.splitlines()) == 1


def test_a_sample_code_depends_on_seed_and_index_only():
    """Row i of a seed is the same code whatever n and start ask for it (the app's walk start,
    facegan-sample --n 1 and image 0 of a grid are one face)."""
    for nz in (100, 7, 16):
        full = latents(37, nz, 3)
        for start, n in ((0, 1), (0, 2), (0, 5), (1, 3), (5, 1), (10, 27), (0, 37)):
            assert torch.equal(latents(n, nz, 3, start=start), full[start:start + n]), (nz, start, n)
