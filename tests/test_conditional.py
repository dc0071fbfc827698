"""Conditional DCGAN: conditioning layers, training on labels (finite, exact resume, DDP), and
sampling by attribute and by class through the CLI, the Python API and the app's handler."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import ROOT, read_manifest, run_cli, shard
from facegan.data.labels import LabelField
from facegan.errors import UserError
from facegan.conditions import Condition, balanced_conditions, select_condition
from facegan.models.layers import CondBatchNorm2d, adc_width
from facegan.sampling import apply_request, bank_conditions, parse_request, toggle_conditions
from facegan.train.losses import adc_loss, aux_loss
from facegan.models.dcgan import Discriminator, Generator, init_weights

TINY = ["model.resolution=32", "model.ngf=8", "model.ndf=8", "model.nz=16", "train.batch_size=16",
        "data.workers=0", "log.every_steps=2", "train.sample_every_kimg=0.064", "train.ema=0.9"]
ATTRS = Condition("attributes", (LabelField("glasses", "binary"), LabelField("hat", "binary")))
HAIR = Condition("class", (LabelField("hair", "class", ("short", "long", "bald")),))


def train_cli(shards, run_dir, *extra, **kw):
    return run_cli(os.path.join(ROOT, "launch", "train.py"), f"data.shards={shards}", f"run.dir={run_dir}",
                   *TINY, *extra, **kw)


def kimg(steps, batch=16):
    return f"train.total_kimg={steps * batch / 1000}"


def sample(*args):
    return run_cli("-m", "facegan.cli.sample", *args)


# ------------------------------------------------------------------ layers


@pytest.mark.parametrize("g_cond", ["embed", "cbn"])
@pytest.mark.parametrize("d_cond", ["projection", "concat", "aux", "projection+aux", "adc", "projection+adc"])
@pytest.mark.parametrize("cond", [ATTRS, HAIR], ids=["attributes", "class"])
def test_conditional_networks_use_the_condition(cond, g_cond, d_cond):
    torch.manual_seed(0)
    G, D = Generator(32, 16, 8, condition=cond, g_condition=g_cond), Discriminator(32, 8, condition=cond,
                                                                                   d_condition=d_cond)
    init_weights(G), init_weights(D)
    z = torch.randn(4, 16)
    c0 = torch.zeros(4, cond.dim) - (1 if cond.kind == "attributes" else 0)
    c1 = apply_request(cond, c0, {cond.names[0]: 1})
    if g_cond == "cbn":  # starts as plain BatchNorm: the condition enters once trained
        for m in G.modules():
            if isinstance(m, CondBatchNorm2d):
                m.gain.weight.data.normal_(0, 0.5)
    x0, x1 = G(z, c0), G(z, c1)
    assert x0.shape == (4, 3, 32, 32) and not torch.allclose(x0, x1)
    D.eval()
    assert D(x0, c0).logits.shape == (4,)
    # D's real/fake score reads c unless the labels reach it only through the classifier (aux)
    assert torch.allclose(D(x0, c0).logits, D(x0, c1).logits) == (d_cond in ("aux", "adc"))
    if "aux" in d_cond:  # AC-GAN's head: label logits beside the real/fake logit
        logits, labels = D(x0, c0, labels=True)
        assert torch.equal(logits, D(x0, c0).logits) and labels.shape == (4, cond.dim)
        assert aux_loss(cond, labels, c0).ndim == 0
    if "adc" in d_cond:  # ADC-GAN's head: (label, real/fake) logits
        logits, labels = D(x0, c0, labels=True)
        assert torch.equal(logits, D(x0, c0).logits) and labels.shape == (4, adc_width(cond))
        assert adc_loss(cond, labels, c0, real=True).ndim == 0
    with pytest.raises(ValueError, match="needs c"):
        G(z)
    with pytest.raises(ValueError, match="needs c"):
        D(x0)
    with pytest.raises(ValueError, match="condition c"):
        G(z, torch.zeros(4, cond.dim + 1))


def test_conditional_batchnorm_starts_as_batchnorm():
    torch.manual_seed(0)
    cbn, bn = CondBatchNorm2d(6, 3), torch.nn.BatchNorm2d(6, affine=False)
    init_weights(cbn)
    x, c = torch.randn(8, 6, 4, 4), torch.randn(8, 3)
    assert torch.allclose(cbn(x, c), bn(x), atol=1e-6)


def test_unconditional_networks_keep_their_state_dict_keys():
    # checkpoints written before conditioning existed load into today's networks
    keys_g = set(Generator(32, 16, 8).state_dict())
    keys_d = set(Discriminator(32, 8).state_dict())
    assert all(k.startswith("main.") for k in keys_g | keys_d)


def test_requests_are_parsed_and_refused_by_name():
    assert parse_request(ATTRS, "glasses=1, hat=off") == {"glasses": 1, "hat": 0}
    assert parse_request(ATTRS, "Glasses=true") == {"glasses": 1}
    assert parse_request(HAIR, klass="bald") == {"hair": 2} == parse_request(HAIR, klass="2")
    for bad, match in (("beard=1", "no label called 'beard'"), ("glasses", "expected NAME=0"),
                       ("glasses=2", "expected NAME=0")):
        with pytest.raises(UserError, match=match):
            parse_request(ATTRS, bad)
    with pytest.raises(UserError, match="class name"):
        parse_request(HAIR, klass="mohawk")
    with pytest.raises(UserError, match="use --class"):
        parse_request(HAIR, "hair=1")
    with pytest.raises(UserError, match="unconditional"):
        parse_request(None, "glasses=1")


def test_select_condition_names_what_the_data_lacks():
    fields = ATTRS.fields + HAIR.fields
    assert select_condition("attributes", fields, [], "d").names == ["glasses", "hat"]
    assert select_condition("attributes", fields, ["hat"], "d").names == ["hat"]
    assert select_condition("class", fields, [], "d").names == ["hair"]
    assert select_condition("none", fields, [], "d") is None
    with pytest.raises(UserError, match="has no labels"):
        select_condition("attributes", None, [], "data.shards x")
    with pytest.raises(UserError, match="hair is not a binary label"):
        select_condition("attributes", fields, ["hair"], "d")
    with pytest.raises(UserError, match="no label called 'beard'"):
        select_condition("attributes", fields, ["beard"], "d")


def test_bank_draws_depend_on_seed_and_index_only():
    G = Generator(32, 16, 8, condition=ATTRS)
    G.label_bank.copy_(torch.where(torch.rand(len(G.label_bank), 2) < 0.3, 1.0, -1.0))
    whole = bank_conditions(G, 50, seed=3)
    assert torch.equal(whole[20:30], bank_conditions(G, 10, seed=3, start=20))
    assert not torch.equal(whole, bank_conditions(G, 50, seed=4))
    rows, captions = toggle_conditions(ATTRS, whole[:5], "glasses")
    assert captions == ["glasses=0", "glasses=1"] and rows.shape == (10, 2)
    assert (rows[:5, 0] == -1).all() and (rows[5:, 0] == 1).all() and torch.equal(rows[:5, 1], whole[:5, 1])


def test_adc_loss_reads_label_and_source():
    """ADC-GAN: the target is the (label, real/fake) pair; a head sure of the right pair has ~0
    loss, and the same logits taken as the other source cost a lot."""
    c = torch.tensor([[1.0, -1.0], [-1.0, 1.0]])
    sure = torch.full((2, 2, 4), -20.0)  # (N, C, 4): off-real, on-real, off-fake, on-fake
    sure[0, 0, 1] = sure[0, 1, 0] = sure[1, 0, 0] = sure[1, 1, 1] = 20.0  # real, with c's values
    logits = sure.reshape(2, 8)
    assert adc_loss(ATTRS, logits, c, real=True) < 1e-6
    assert adc_loss(ATTRS, logits, c, real=False) > 10
    k = torch.tensor([[0.0, 0.0, 1.0]])
    klogits = torch.full((1, 6), -20.0)
    klogits[0, 3 + 2] = 20.0  # class 2, fake
    assert adc_loss(HAIR, klogits, k, real=False) < 1e-6 and adc_loss(HAIR, klogits, k, real=True) > 10


def test_balanced_fake_labels_have_even_rates():
    torch.manual_seed(0)
    c = balanced_conditions(ATTRS, 4000)
    assert c.shape == (4000, 2) and set(c.unique().tolist()) == {-1.0, 1.0}
    assert ((c > 0).float().mean(0) - 0.5).abs().max() < 0.03
    assert abs(((c[:, 0] > 0) & (c[:, 1] > 0)).float().mean().item() - 0.25) < 0.03  # independent
    k = balanced_conditions(HAIR, 3000)
    assert k.shape == (3000, 3) and torch.equal(k.sum(1), torch.ones(3000))
    assert ((k.mean(0) - 1 / 3).abs() < 0.03).all()


# ------------------------------------------------------------------ training


@pytest.fixture(scope="module")
def attr_run(cartoon_shards, tmp_path_factory):
    """8 steps of an attribute-conditional run on the labeled synthetic faces."""
    run = tmp_path_factory.mktemp("attr-run")
    r = train_cli(cartoon_shards, run, kimg(8), "model.condition=attributes", "model.labels=[glasses,hat,beard]")
    assert r.returncode == 0, r.stderr[-3000:]
    return run


def test_conditional_training_is_finite_and_records_its_condition(cartoon_shards, attr_run):
    from facegan.eval.generator_io import load_generator
    from facegan.train import checkpoint as ckpt

    path = ckpt.list_checkpoints(str(attr_run / "checkpoints"))[0]
    state = json.load(open(os.path.join(path, "state.json")))
    cond = state["architecture"]["condition"]
    assert cond["kind"] == "attributes" and [f["name"] for f in cond["fields"]] == ["glasses", "hat", "beard"]
    G, _ = load_generator(str(attr_run))
    assert G.condition.names == ["glasses", "hat", "beard"]
    assert torch.isfinite(torch.cat([p.flatten() for p in G.parameters()])).all()
    # the bank holds the data's label combinations, at about the data's rates
    bank = G.label_bank
    counts = read_manifest(cartoon_shards)["labels"]["counts"]
    total = read_manifest(cartoon_shards)["count"]
    assert set(bank.unique().tolist()) <= {-1.0, 1.0}
    assert abs((bank[:, 0] > 0).float().mean().item() - counts["glasses"] / total) < 0.1
    rows = [json.loads(line) for line in open(attr_run / "metrics.jsonl")]
    assert all(np.isfinite(r["loss_D"]) and np.isfinite(r["loss_G"]) for r in rows if "loss_D" in r)
    grid = Image.open(sorted((attr_run / "samples").glob("fakes-*.png"))[-1])
    assert grid.height > grid.width * 0.9  # 8 condition rows of 8


HAIR_RUN = ["model.condition=class", "model.labels=[hair]", "model.g_condition=embed", "model.d_condition=projection",
            "train.fake_labels=balanced"]


@pytest.fixture(scope="module")
def hair_run(cartoon_shards, tmp_path_factory):
    """6 steps of a class-conditional run (hair style), the non-default G and D options and
    balanced fake labels (drawn from the RNG that resume restores)."""
    run = tmp_path_factory.mktemp("hair-run")
    r = train_cli(cartoon_shards, run, kimg(6), *HAIR_RUN)
    assert r.returncode == 0, r.stderr[-3000:]
    return run


def test_conditional_resume_is_exact(cartoon_shards, hair_run, tmp_path):
    from test_train import weights

    from facegan.train import checkpoint as ckpt

    extra = HAIR_RUN
    straight, split = hair_run, tmp_path / "split"
    assert train_cli(cartoon_shards, split, kimg(3), *extra).returncode == 0
    r = train_cli(cartoon_shards, split, kimg(6), *extra)
    assert r.returncode == 0 and "resumed from" in r.stdout, r.stderr[-2000:]
    a = weights(ckpt.list_checkpoints(str(straight / "checkpoints"))[0])
    b = weights(ckpt.list_checkpoints(str(split / "checkpoints"))[0])
    for net in a:
        for k in a[net]:
            assert torch.equal(a[net][k], b[net][k]), (net, k)
    # the same run directory with another condition is refused, naming the key
    r = train_cli(cartoon_shards, split, kimg(8), "model.condition=attributes")
    assert r.returncode == 2 and "model.condition" in r.stderr


def test_conditioning_on_unlabeled_shards_is_one_clear_error(tmp_path):
    out = tmp_path / "plain"
    assert shard("synthetic:cartoon", "--out", str(out), "--size", "32", "--limit", "40", "--labels", "none",
                 "--workers", "1").returncode == 0
    assert "labels" not in read_manifest(out)
    r = train_cli(out, tmp_path / "run", kimg(1), "model.condition=attributes")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith("facegan-train: error: model.condition=attributes: data.shards")
    assert "has no labels" in r.stderr and not (tmp_path / "run" / "config.yaml").exists()
    r = train_cli(out, tmp_path / "run2", kimg(2))  # unlabeled shards train unconditionally as before
    assert r.returncode == 0, r.stderr[-2000:]


@pytest.mark.slow
def test_two_process_ddp_conditional(cartoon_shards, tmp_path):
    prefix = str(tmp_path / "rank")
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           os.path.join(ROOT, "tests", "helpers", "ddp_train.py"), prefix, f"data.shards={cartoon_shards}",
           f"run.dir={tmp_path / 'run'}", *TINY, "data.workers=1", kimg(4), "model.condition=attributes",
           "model.labels=[glasses,hat]"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT,
                       env=dict(os.environ, PYTHONPATH=ROOT), start_new_session=True)
    assert r.returncode == 0, r.stderr[-3000:]
    ranks = [json.load(open(f"{prefix}{i}.json")) for i in range(2)]
    assert ranks[0]["step"] == ranks[1]["step"] == 4
    for net in ("G", "D", "G_ema"):
        assert ranks[0][net] == ranks[1][net], net
    assert not set(ranks[0]["seen"]) & set(ranks[1]["seen"])


# ------------------------------------------------------------------ sampling


def test_sample_by_attribute_and_toggle(attr_run, tmp_path):
    from facegan import FaceGenerator

    G = FaceGenerator.from_pretrained(str(attr_run))
    on = G.sample(6, seed=1, attrs={"glasses": 1})
    off = G.sample(6, seed=1, attrs="glasses=0")
    assert on.shape == (6, 32, 32, 3) and not np.array_equal(on, off)
    assert np.array_equal(on, G.sample(6, seed=1, attrs={"glasses": 1}))

    r = sample(str(attr_run), "--n", "6", "--seed", "1", "--attr", "glasses=1", "--out", str(tmp_path / "on.png"))
    assert r.returncode == 0, r.stderr
    grid = np.array(Image.open(tmp_path / "on.png"))
    from facegan.sampling import grid_uint8

    want = grid_uint8(torch.from_numpy(on).permute(0, 3, 1, 2), nrow=2).permute(1, 2, 0).numpy()
    assert np.array_equal(grid, want)  # the CLI and the API give the same faces for the same request

    import facegan.api as fg  # the Python entry point draws the labels of the seed asked, too
    assert np.array_equal(fg.sample(str(attr_run), n=6, seed=1).permute(0, 2, 3, 1).numpy(), G.sample(6, seed=1))

    rows, captions = G.toggle("glasses", n=3, seed=1)
    assert captions == ["glasses=0", "glasses=1"] and rows.shape == (2, 3, 32, 32, 3)
    assert not np.array_equal(rows[0], rows[1])
    r = sample(str(attr_run), "--n", "5", "--toggle", "hat", "--out", str(tmp_path / "toggle.png"))
    assert r.returncode == 0 and "hat=0, hat=1" in r.stdout, r.stderr
    t = np.array(Image.open(tmp_path / "toggle.png"))
    assert t.shape == (2 + 2 * 34, 2 + 5 * 34, 3)
    r = sample(str(attr_run), "--n", "5", "--toggle", "hat", "--zoom", "3", "--out", str(tmp_path / "big.png"))
    assert r.returncode == 0, r.stderr
    big = np.array(Image.open(tmp_path / "big.png"))  # each pixel a 3 x 3 block of the same faces
    assert big.shape == (3 * t.shape[0], 3 * t.shape[1], 3) and np.array_equal(big[1::3, 2::3], t)
    r = sample(str(attr_run), "--n", "5", "--zoom", "0", "--out", str(tmp_path / "z.png"))
    assert r.returncode == 2 and "--zoom 0" in r.stderr and not (tmp_path / "z.png").exists()
    r = sample(str(attr_run), "--n", "4", "--attr", "mohawk=1", "--out", str(tmp_path / "x.png"))
    assert r.returncode == 2 and "no label called 'mohawk'" in r.stderr and not (tmp_path / "x.png").exists()
    r = sample(str(attr_run), "--n", "4", "--class", "1", "--out", str(tmp_path / "x.png"))
    assert r.returncode == 2 and "use --attr" in r.stderr


def test_sample_by_class_and_the_app_handler(cartoon_shards, hair_run, tmp_path):
    run = hair_run
    r = train_cli(cartoon_shards, tmp_path / "two", kimg(2), "model.condition=class")  # two class labels: name one
    assert r.returncode == 2 and "model.labels" in r.stderr and "hair, mouth" in r.stderr
    from facegan import FaceGenerator
    from facegan.app.ui import make_grid

    G = FaceGenerator.from_pretrained(str(run))
    assert G.condition.kind == "class" and G.condition.names == ["hair"]
    classes = G.condition.fields[0].classes
    r = sample(str(run), "--n", "4", "--class", classes[1], "--out", str(tmp_path / "c.png"))
    assert r.returncode == 0, r.stderr
    assert np.array_equal(G.sample(4, klass=classes[1]), G.sample(4, klass="1"))
    _, notes = make_grid(G, 0, 4, 1.0, classes[0])
    assert f"labels {classes[0]}" in notes
    _, notes = make_grid(G, 0, 4, 1.0, "no-such-class")
    assert "labels ignored" in notes
    # a Hub folder keeps the condition (config.json) and gives the same faces
    G.save_pretrained(str(tmp_path / "hub"))
    H = FaceGenerator.from_pretrained(str(tmp_path / "hub"))
    assert H.condition == G.condition
    assert np.array_equal(H.sample(4, seed=2, klass=1), G.sample(4, seed=2, klass=1))
