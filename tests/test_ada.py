"""Adaptive discriminator augmentation: the controller, the pipeline's transforms, that only D's
inputs are augmented, and ADA as part of a run (exact resume, status, metrics, report, DDP)."""

import json
import math
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from accelerate import Accelerator

from conftest import ROOT
from facegan.config import ModelConfig
from facegan.models import build_models
from facegan.train import checkpoint as ckpt
from facegan.train.ada import ADA_INTERVAL, P_MAX, AdaController, small_data_note
from facegan.train.augment_pipe import SYM6, TRANSFORMS, AugmentPipe, _downsample2x, _upsample2x
from facegan.train.ema import EmaSchedule, make_ema
from facegan.train.step import GANStep
from test_train import TINY, kimg, train_cli, weights


def only(*names):
    return AugmentPipe(**{t: t in names for t in TRANSFORMS})


def smooth(n=8, size=16):
    """Smooth images with no symmetry (a flip or a quarter turn changes them a lot)."""
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    img = torch.stack([torch.sin(2 * xx + 1) * torch.cos(yy), 0.8 * xx + 0.1 * yy, 0.5 * torch.cos(3 * yy) * xx])
    return img[None].repeat(n, 1, 1, 1)


def blob(n=16, size=32, sx=3.0, sy=3.0):
    """A Gaussian blob on a black (-1) background, centred."""
    yy, xx = torch.meshgrid(torch.arange(size) - (size - 1) / 2, torch.arange(size) - (size - 1) / 2, indexing="ij")
    g = torch.exp(-(xx ** 2 / (2 * sx ** 2) + yy ** 2 / (2 * sy ** 2)))
    return (g * 2 - 1)[None, None].repeat(n, 3, 1, 1)


def moments(images):
    """Per image: centroid (x, y) and second moments (xx, yy, xy) of the brightness above black,
    inside the disc the frame holds at any angle (ADA's reflection padding mirrors a blob's tails
    into the corners)."""
    size = images.shape[-1]
    yy, xx = torch.meshgrid(torch.arange(size, dtype=images.dtype), torch.arange(size, dtype=images.dtype),
                            indexing="ij")
    disc = ((xx - (size - 1) / 2) ** 2 + (yy - (size - 1) / 2) ** 2) < (size * 0.4) ** 2
    w = ((images[:, 0] + 1) / 2).clamp(min=0) * disc
    m = w.sum((1, 2))
    cx, cy = (w * xx).sum((1, 2)) / m, (w * yy).sum((1, 2)) / m
    dx, dy = xx - cx[:, None, None], yy - cy[:, None, None]
    return cx, cy, (w * dx * dx).sum((1, 2)) / m, (w * dy * dy).sum((1, 2)) / m, (w * dx * dy).sum((1, 2)) / m


# ---------------------------------------------------------------- the controller


def feed(ada, sign, steps):
    for _ in range(steps):
        ada.accumulate(torch.full((16,), float(sign)))
        ada.step()


def test_p_rises_above_target_falls_below_and_stays_in_range():
    ada = AdaController(target=0.6, ada_kimg=1.0, images_per_step=16, device="cpu")
    feed(ada, +1, ADA_INTERVAL - 1)
    assert ada.p == 0.0  # adjusted only every ADA_INTERVAL steps
    feed(ada, +1, 1)
    assert ada.rt == 1.0 and ada.p == pytest.approx(16 * ADA_INTERVAL / 1000)  # ada_kimg=1: 0 -> 1 in 1000 images
    feed(ada, -1, ADA_INTERVAL)
    assert ada.rt == -1.0 and ada.p == 0.0
    feed(ada, -1, 10 * ADA_INTERVAL)
    assert ada.p == 0.0  # never below 0
    feed(ada, +1, 1000)
    assert ada.p == P_MAX < 1  # never 1 or above (stylegan2-ada-pytorch #175: p reached 21.8)
    rec = ada.record()
    assert rec["ada_p"] == P_MAX and 0.9 < rec["ada_rt"] <= 1


def test_controller_state_round_trip_continues_identically():
    a = AdaController(0.6, 0.5, 16, "cpu")
    feed(a, +1, 6)  # two steps past an adjustment: their statistics are in the state
    b = AdaController(0.6, 0.5, 16, "cpu")
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    for ada in (a, b):
        ada.accumulate(torch.tensor([1.0, -1.0, 1.0, 1.0]))
        ada.step()
        feed(ada, -1, 1)
    assert a.p == b.p and a.rt == b.rt and a.steps == b.steps == 8
    other_rank = AdaController(0.6, 0.5, 16, "cpu")
    other_rank.load_state_dict(a.state_dict(), rank=1)
    assert other_rank.signs.sum() == 0  # rank 0 alone carries the summed statistics


def test_small_data_note():
    assert small_data_note(None, "none") is None and small_data_note(5000, "none") is None
    off = small_data_note(576, "none")
    assert "576 training images" in off and "train.augment=ada" in off
    assert "ADA" in small_data_note(576, "ada") and "DiffAugment color" in small_data_note(576, "color")


# ---------------------------------------------------------------- the pipeline


def test_auto_turns_ada_on_for_a_small_training_set_only():
    from facegan.config.augment_policy import SMALL_DATASET, parse_policy, resolve_auto

    assert resolve_auto("auto", 1000) == ("ada", None)  # the small-dataset note says it
    augment, note = resolve_auto("AUTO", SMALL_DATASET)
    assert augment == "none" and f"{SMALL_DATASET} training images" in note
    assert resolve_auto("auto", None)[0] == "none"  # a count nobody knows: nothing switched on unasked
    augment, note = resolve_auto("auto", 10000, 400)  # 40 passes: D overfits 10k images too
    assert augment == "ada" and "each seen about 40.0 times in 400 kimg" in note
    augment, note = resolve_auto("auto", 9000, 120)  # the demo: 13 passes, left alone
    assert augment == "none" and "each seen about 13.3 times in 120 kimg" in note and "20 passes" in note
    assert resolve_auto("auto", 5880, 117)[0] == "none" and "19.9 times" in resolve_auto("auto", 5880, 117)[1]
    assert resolve_auto("color,cutout", 10) == ("color,cutout", None) and resolve_auto("none", 10) == ("none", None)
    with pytest.raises(ValueError, match="give it alone"):
        parse_policy("auto,color")
    with pytest.raises(ValueError, match="none means no augmentation"):
        parse_policy("none,color")


def test_p_zero_is_the_identity_bit_for_bit_and_draws_nothing():
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    rng = torch.get_rng_state()
    assert AugmentPipe()(x, 0.0) is x
    assert torch.equal(torch.get_rng_state(), rng)


def test_images_a_coin_spares_pass_through_unchanged():
    torch.manual_seed(0)
    x = torch.rand(64, 3, 16, 16) * 2 - 1
    y = AugmentPipe()(x, 0.05)
    same = sum(torch.equal(y[i], x[i]) for i in range(64))
    assert 10 < same < 64  # per image: most untouched at p = 0.05 (13 chances), bit for bit
    z = only("brightness")(x, 0.5)
    assert 16 < sum(torch.equal(z[i], x[i]) for i in range(64)) < 48


def test_gradients_flow_to_the_input_and_r1_double_backward_works():
    torch.manual_seed(0)
    x = (torch.rand(8, 3, 16, 16) * 2 - 1).requires_grad_(True)
    y = AugmentPipe()(x, 0.9)
    (g,) = torch.autograd.grad((y * torch.randn_like(y)).sum(), x)
    assert torch.isfinite(g).all() and g.abs().sum() > 0
    conv = torch.nn.Conv2d(3, 1, 3)
    out = conv(AugmentPipe()(x, 0.9)).sum()
    (gx,) = torch.autograd.grad(out, x, create_graph=True)  # R1 through the augmentation
    gx.square().sum().backward()
    assert conv.weight.grad.abs().sum() > 0


def test_dtype_and_memory_format_kept():
    x = (torch.rand(4, 3, 16, 16) * 2 - 1).contiguous(memory_format=torch.channels_last)
    y = AugmentPipe()(x, 0.8)
    assert y.is_contiguous(memory_format=torch.channels_last) and y.dtype == x.dtype
    assert AugmentPipe()(x.bfloat16(), 0.8).dtype == torch.bfloat16


def _upfirdn_ref(x, f, up=1, down=1, pad=(0, 0, 0, 0), flip=False, gain=1.0):
    """stylegan2-ada-pytorch torch_utils/ops/upfirdn2d._upfirdn2d_ref, separable filter."""
    n, c, h, w = x.shape
    x = F.pad(x.reshape(n, c, h, 1, w, 1), [0, up - 1, 0, 0, 0, up - 1]).reshape(n, c, h * up, w * up)
    x = F.pad(x, [max(pad[0], 0), max(pad[1], 0), max(pad[2], 0), max(pad[3], 0)])
    x = x[:, :, max(-pad[2], 0): x.shape[2] - max(-pad[3], 0), max(-pad[0], 0): x.shape[3] - max(-pad[1], 0)]
    f = f * gain ** 0.5
    f = (f if flip else f.flip(0)).view(1, 1, -1).repeat(c, 1, 1)
    x = F.conv2d(F.conv2d(x, f.unsqueeze(2), groups=c), f.unsqueeze(3), groups=c)
    return x[:, :, ::down, ::down]


def test_resampling_matches_adas_reference_and_round_trips():
    torch.manual_seed(0)
    f = torch.tensor(SYM6)
    f = f / f.sum()
    x = torch.randn(2, 3, 20, 20)
    # upsample2d(x, f, up=2) and downsample2d(x, f, down=2, padding=-6, flip_filter=True), as ADA
    # calls them, by convolutions and as matrices
    for matmul in (False, True):
        assert torch.allclose(_upsample2x(x, f, matmul), _upfirdn_ref(x, f, up=2, pad=(6, 5, 6, 5), gain=4.0),
                              atol=1e-5)
        assert torch.allclose(_downsample2x(x, f, 6, matmul),
                              _upfirdn_ref(x, f, down=2, pad=(-1, -1, -1, -1), flip=True), atol=1e-5)
    # an identity or an integer shift through the warp gives the image back (orthogonal filter)
    pipe = AugmentPipe()
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    assert torch.allclose(pipe._warp(x, torch.eye(3).repeat(4, 1, 1)), x, atol=1e-4)
    G = torch.eye(3).repeat(4, 1, 1)
    G[:, 0, 2] = -1.0  # out(x) = in(x - 1), reflected at the border
    assert torch.allclose(pipe._warp(x, G), F.pad(x, [1, 1, 1, 1], mode="reflect")[:, :, 1:-1, :16], atol=1e-4)


def close(a, b, tol):
    return (a - b).abs().max().item() < tol


def test_xflip_rotate90_and_integer_translation_at_p1():
    torch.manual_seed(0)
    x = smooth(16)
    # ADA resamples once through its asymmetric sym6 filter: a flip is a mirror to within ~0.03 on smooth images
    y = only("xflip")(x, 1.0)
    kinds = [0 if close(y[i], x[i], 1e-4) else 1 if close(y[i], x[i].flip(2), 0.05) else None for i in range(16)]
    assert None not in kinds and 0 < sum(kinds) < 16
    y = only("rotate90")(x, 1.0)
    turns = [next((k for k in range(4) if close(y[i], torch.rot90(x[i], k, (1, 2)), 0.05)), None) for i in range(16)]
    assert None not in turns and len(set(turns)) >= 3
    y = only("xint")(x, 1.0)
    padded = F.pad(x, [2, 2, 2, 2], mode="reflect")  # at most 1/8 of 16 pixels, reflected in
    shifts = [next(((dx, dy) for dx in range(-2, 3) for dy in range(-2, 3)
                    if close(y[i], padded[i, :, 2 - dy:18 - dy, 2 - dx:18 - dx], 1e-4)), None) for i in range(16)]
    assert None not in shifts and len(set(shifts)) > 4


def test_scale_rotate_aniso_and_fractional_translation_at_p1():
    torch.manual_seed(0)
    x = blob()
    _, _, xx0, yy0, _ = moments(x)
    _, _, xx, yy, xy = moments(only("scale")(x, 1.0))
    size = (xx * yy).sqrt() / (xx0 * yy0).sqrt()
    assert size.log().std() > 0.1 and torch.allclose(xx / yy, torch.ones(16), atol=0.05)  # isotropic
    _, _, xx, yy, xy = moments(only("aniso")(x, 1.0))
    assert (xx / yy).log().std() > 0.2 and torch.allclose((xx * yy).sqrt() / (xx0 * yy0).sqrt(), torch.ones(16),
                                                           atol=0.1)  # stretched one way, squeezed the other
    long = blob(sx=4.0, sy=1.5)  # its tails stay inside the frame at any angle
    _, _, xx0, yy0, _ = moments(long)
    _, _, xx, yy, xy = moments(only("rotate")(long, 1.0))
    angle = 0.5 * torch.atan2(2 * xy, xx - yy)  # principal axis; 0 for the unrotated blob
    assert angle.abs().max() > math.radians(20) and torch.allclose(xx + yy, xx0 + yy0, rtol=0.1)
    cx0, cy0, *_ = moments(x)
    cx, cy, *_ = moments(only("xfrac")(x, 1.0))
    frac = torch.cat([cx - cx0, cy - cy0])
    assert (frac - frac.round()).abs().max() > 0.1 and frac.abs().max() < 16


def luma_chroma(x):
    luma = x.mean(1, keepdim=True)
    return luma, x - luma


def test_color_transforms_at_p1():
    torch.manual_seed(0)
    x = torch.rand(16, 3, 8, 8) * 1.6 - 0.8
    luma, chroma = luma_chroma(x)
    d = only("brightness")(x, 1.0) - x  # one offset per image, on every pixel and channel
    assert torch.allclose(d, d[:, :1, :1, :1].expand_as(d), atol=1e-5) and (d[:, 0, 0, 0].abs() > 0).all()
    r = only("contrast")(x, 1.0) / x  # one factor per image
    assert torch.allclose(r, r[:, :1, :1, :1].expand_as(r), rtol=1e-3) and (r[:, 0, 0, 0] != 1).all()
    y = only("lumaflip")(x, 1.0)
    yl, yc = luma_chroma(y)
    flipped = [not torch.equal(y[i], x[i]) for i in range(16)]
    assert 0 < sum(flipped) < 16
    for i in (i for i in range(16) if flipped[i]):  # luma negated, colour kept
        assert torch.allclose(yl[i], -luma[i], atol=1e-5) and torch.allclose(yc[i], chroma[i], atol=1e-5)
    yl, yc = luma_chroma(only("hue")(x, 1.0))  # turns colour about the grey axis
    assert torch.allclose(yl, luma, atol=1e-5)
    assert torch.allclose(yc.norm(dim=1), chroma.norm(dim=1), atol=1e-4) and not torch.allclose(yc, chroma, atol=0.1)
    yl, yc = luma_chroma(only("saturation")(x, 1.0))  # scales colour, one factor per image
    s = yc.norm(dim=1) / chroma.norm(dim=1)
    assert torch.allclose(yl, luma, atol=1e-5) and torch.allclose(s, s[:, :1, :1].expand_as(s), rtol=1e-3)


def test_cutout_at_p1_zeroes_one_square_of_half_the_side():
    torch.manual_seed(0)
    x = torch.rand(16, 3, 16, 16) * 0.9 + 0.1  # no zeros of its own
    y = only("cutout")(x, 1.0)
    for i in range(16):
        cut = (y[i] == 0).all(0)
        rows, cols = cut.any(1).nonzero().flatten(), cut.any(0).nonzero().flatten()
        assert 0 < len(rows) <= 8 and 0 < len(cols) <= 8
        assert cut.sum() == len(rows) * len(cols) and (rows.diff() == 1).all() and (cols.diff() == 1).all()
        assert torch.equal(y[i][:, ~cut], x[i][:, ~cut])


# ---------------------------------------------------------------- ADA in the GAN step


def test_only_ds_inputs_go_through_the_pipeline():
    """Every image D sees is augmented (reals, fakes in D's step, fakes in G's step); G_ema and the
    sample grids never are: G learns the augmentations only through D, so with an invertible
    pipeline and p below ~0.8 nothing leaks into the samples (Karras et al. 2020, sec. 2)."""
    from facegan.sampling import generate, latents

    acc = Accelerator(cpu=True)
    G, D = build_models(ModelConfig(resolution=16, nz=8, ngf=4, ndf=4), seed=0)
    oG, oD = torch.optim.Adam(G.parameters(), 1e-3), torch.optim.Adam(D.parameters(), 1e-3)
    G, D, oG, oD = acc.prepare(G, D, oG, oD)
    ada = AdaController(0.6, 0.1, 4, "cpu")
    ada.p = 0.5
    seen, pipe = [], ada.pipe
    ada.pipe = lambda x, p: seen.append((x, p)) or pipe(x, p)
    step = GANStep(acc, G, D, oG, oD, make_ema(acc.unwrap_model(G)), EmaSchedule(0.5, 4), 8, augment=("ada",), ada=ada)
    real = torch.rand(4, 3, 16, 16) * 2 - 1
    step(real)
    assert len(seen) == 3 and seen[0][0] is real and all(p == 0.5 for _, p in seen)
    assert not seen[1][0].requires_grad and seen[2][0].requires_grad  # D's step: detached fakes; G's: through G
    generate(step.G_ema, latents(8, 8, 0))
    assert len(seen) == 3  # the EMA generator's grids: no augmentation
    for _ in range(ADA_INTERVAL - 1):
        step(real)
    assert ada.rt is not None and ada.p != 0.5  # moved by r_t after ADA_INTERVAL steps
    with pytest.raises(ValueError, match="ADA controller"):
        GANStep(acc, G, D, oG, oD, None, EmaSchedule(0.5, 4), 8, augment=("ada",))


# ---------------------------------------------------------------- ADA in a run

ADA = ["train.augment=ada", "train.ada_kimg=0.2", "train.ada_target=0.1", "train.lr_d=2e-3",
       "train.r1_gamma=1", "train.r1_every=3"]


def test_ada_run_resumes_exactly_and_reports_p(cartoon_shards, tmp_path):
    """10 steps straight == 5, stop, resume to 10, with p moving (adjusted at steps 4 and 8, so the
    checkpoint at 5 carries a step of statistics) and lazy R1 through the augmentation."""
    from facegan.eval.report import write_report

    straight, split = tmp_path / "straight", tmp_path / "split"
    r = train_cli(cartoon_shards, straight, kimg(10), *ADA)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "small dataset: 576 training images; augmentation for D: ADA" in r.stdout
    assert train_cli(cartoon_shards, split, kimg(5), *ADA).returncode == 0
    r2 = train_cli(cartoon_shards, split, kimg(10), *ADA)
    assert r2.returncode == 0 and "resumed from" in r2.stdout, r2.stderr[-2000:]
    paths = [ckpt.list_checkpoints(str(d / "checkpoints"))[0] for d in (straight, split)]
    a, b = (weights(p) for p in paths)
    for net in a:
        for k in a[net]:
            assert torch.equal(a[net][k], b[net][k]), (net, k)
    sa, sb = (ckpt.verify(p)["ada"] for p in paths)
    assert sa == sb and sa["steps"] == 10 and 0 < sa["p"] < 1
    lines = [line for line in r.stdout.splitlines() if line.startswith("kimg")]
    assert lines and all("  p 0." in line for line in lines)
    rows = [json.loads(line) for line in open(straight / "metrics.jsonl")]
    assert all("ada_p" in row for row in rows) and any("ada_rt" in row for row in rows)
    out = write_report(str(straight), mp4=False)
    assert os.path.getsize(out["ada"]) > 0 and "ada.png" in open(out["html"]).read()


def test_auto_on_576_images_runs_ada_and_keeps_the_choice(cartoon_shards, tmp_path):
    run = tmp_path / "auto"
    r = train_cli(cartoon_shards, run, kimg(4), "train.augment=auto", "train.ada_kimg=0.2")
    assert r.returncode == 0, r.stderr[-2000:]
    said = [line for line in r.stdout.splitlines() if "augmentation for D" in line]
    assert said == ["facegan: note: small dataset: 576 training images; augmentation for D: ADA (p steered to "
                    "r_t = 0.6), chosen by train.augment=auto"]  # said once
    assert all("ada_p" in json.loads(line) for line in open(run / "metrics.jsonl"))
    text = open(run / "config.yaml").read()  # what auto chose, and why, kept with the run
    assert "augment: ada" in text and "# facegan: note: small dataset: 576" in text


def test_auto_counts_passes_of_the_runs_budget(cartoon_shards, tmp_path, monkeypatch):
    """The trainer hands auto its budget: with the small-data line below these 576 images, the
    same data gets ADA when total_kimg shows it often enough and none when not, kept in config.yaml."""
    from facegan.config import augment_policy, load_config
    from facegan.train.loop import train

    monkeypatch.setattr(augment_policy, "SMALL_DATASET", 100)
    monkeypatch.setattr(augment_policy, "LONG_RUN_PASSES", 0.1)  # 57.6 images' worth
    chose = {}
    for total in (0.064, 0.032):  # 0.11 and 0.06 passes
        run = tmp_path / f"r{total}"
        train(load_config(None, [f"data.shards={cartoon_shards}", f"run.dir={run}", *TINY, "data.workers=0",
                                 f"train.total_kimg={total}", "train.augment=auto"]))
        chose[total] = load_config(str(run / "config.yaml")).train.augment
    assert chose == {0.064: "ada", 0.032: "none"}


@pytest.mark.slow
def test_two_ranks_agree_on_p(cartoon_shards, tmp_path):
    prefix = str(tmp_path / "rank")
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           os.path.join(ROOT, "tests", "helpers", "ddp_train.py"), prefix, f"data.shards={cartoon_shards}",
           f"run.dir={tmp_path / 'run'}", *TINY, "data.workers=0", kimg(8), *ADA]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT,
                       env=dict(os.environ, PYTHONPATH=ROOT))
    assert r.returncode == 0, r.stderr[-3000:]
    ranks = [json.load(open(f"{prefix}{i}.json")) for i in range(2)]
    assert ranks[0]["ada_p"] == ranks[1]["ada_p"] and ranks[0]["ada_p"] > 0  # one r_t, summed over ranks
    assert ranks[0]["D"] == ranks[1]["D"] and ranks[0]["G"] == ranks[1]["G"]
    state = ckpt.verify(ckpt.list_checkpoints(str(tmp_path / "run" / "checkpoints"))[0])
    assert state["ada"]["p"] == ranks[0]["ada_p"]
