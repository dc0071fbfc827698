"""Fine-tuning: run.init from each kind of source (run, checkpoint, export, Hub folder, Hub repo
id through an offline cache), its refusals, train.freeze_d, and both in a real run."""

import os
import shutil

import pytest
import torch
from safetensors.torch import load_file

from conftest import EVAL_TINY, ROOT, run_cli
from facegan.config import ModelConfig
from facegan.errors import UserError
from facegan.models import architecture, build_models
from facegan.train import checkpoint as ckpt
from facegan.train.ema import make_ema
from facegan.train.finetune import check_init, d_blocks, freeze_d, load_init

TINY_MODEL = dict(resolution=32, nz=16, ngf=8, ndf=8)  # the tiny_run fixture's model
ARCH = architecture(ModelConfig(**TINY_MODEL))


@pytest.fixture(scope="module")
def sources(tiny_run, tmp_path_factory):
    """Every kind of source run.init takes, made from the shared tiny run."""
    from huggingface_hub import constants

    from facegan.eval.generator_io import export_generator
    from facegan.share.hub import write_hub_dir

    out = tmp_path_factory.mktemp("init")
    export = str(out / "g.safetensors")
    export_generator(tiny_run, export)
    hub = str(out / "hub")
    write_hub_dir(tiny_run, hub)
    # A Hub repo id as huggingface_hub finds it in its cache (no network here): refs/main -> snapshot
    cache = out / "hf-cache"
    snapshot = cache / "models--someone--faces" / "snapshots" / ("0" * 40)
    os.makedirs(snapshot)
    os.makedirs(cache / "models--someone--faces" / "refs")
    (cache / "models--someone--faces" / "refs" / "main").write_text("0" * 40)
    for name in os.listdir(hub):
        shutil.copy(os.path.join(hub, name), snapshot / name)
    saved = constants.HF_HUB_OFFLINE, constants.HF_HUB_CACHE
    constants.HF_HUB_OFFLINE, constants.HF_HUB_CACHE = True, str(cache)
    try:
        yield {"run": tiny_run, "checkpoint": ckpt.list_checkpoints(os.path.join(tiny_run, "checkpoints"))[0],
               "export": export, "hub": hub, "repo": "someone/faces"}
    finally:
        constants.HF_HUB_OFFLINE, constants.HF_HUB_CACHE = saved


def equal(module, tensors):
    sd = module.state_dict()
    return sd.keys() == tensors.keys() and all(torch.equal(sd[k], tensors[k]) for k in sd)


@pytest.mark.parametrize("kind", ["run", "checkpoint", "export", "hub", "repo"])
def test_init_loads_the_sources_weights(sources, kind):
    init = check_init(sources[kind], ARCH)
    G, D = build_models(ModelConfig(**TINY_MODEL), seed=5)
    G_ema, D_fresh = make_ema(G), {k: v.clone() for k, v in D.state_dict().items()}
    what = load_init(init, G, G_ema, D)
    newest = ckpt.list_checkpoints(os.path.join(sources["run"], "checkpoints"))[0]
    trained = {n: load_file(os.path.join(newest, f"{n}.safetensors")) for n in ("G", "G_ema", "D")}
    assert equal(G_ema, trained["G_ema"])
    if kind in ("run", "checkpoint"):
        assert what == "G, G_ema and D" and equal(G, trained["G"]) and equal(D, trained["D"])
    else:  # an export holds the EMA generator alone: G starts from it too, D starts fresh
        assert "D starts fresh" in what and equal(G, trained["G_ema"]) and equal(D, D_fresh)


def test_init_refusals_name_what_differs(sources, tmp_path):
    with pytest.raises(UserError, match=r"model\.ngf: source 8 vs config 16") as err:
        check_init(sources["run"], architecture(ModelConfig(**dict(TINY_MODEL, ngf=16))))
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match=r"model\.resolution: source 32 vs config 64"):
        check_init(sources["export"], architecture(ModelConfig(**dict(TINY_MODEL, resolution=64))))
    with pytest.raises(UserError, match=r"model\.ndf"):
        check_init(sources["checkpoint"], architecture(ModelConfig(**dict(TINY_MODEL, ndf=16))))
    check_init(sources["export"], architecture(ModelConfig(**dict(TINY_MODEL, ndf=16))))  # no D: G's keys only
    with pytest.raises(UserError, match="no such file or directory"):
        check_init(str(tmp_path / "nowhere"), ARCH)
    with pytest.raises(UserError, match="someone/other: .*Hugging Face Hub"):
        check_init("someone/other", ARCH)  # not in the (offline) cache
    with pytest.raises(UserError, match="not a run directory with a checkpoint"):
        check_init(str(tmp_path), ARCH)


def test_freeze_d_blocks():
    _, D = build_models(ModelConfig(**TINY_MODEL), seed=0)
    assert len(d_blocks(D)) == 3  # 32 -> 16 -> 8 -> 4, then the 4x4 logit
    assert freeze_d(D, 2) == ["main.0.weight", "main.2.weight", "main.3.weight", "main.3.bias"]
    assert [n for n, p in D.named_parameters() if p.requires_grad] == ["main.5.weight", "main.6.weight",
                                                                        "main.6.bias", "main.8.weight"]
    with pytest.raises(UserError, match=r"train.freeze_d: D has 3 blocks at this resolution, got 4 \(0 to 3\)"):
        freeze_d(D, 4)


def test_freezing_a_d_that_starts_random_is_warned():
    """FreezeD keeps a trained D's features: without run.init, or from an export (G alone), the
    frozen blocks would be random ones, and the start of the run says so."""
    from facegan.train.finetune import InitSource, freeze_note

    assert freeze_note(2, 3, None).startswith("warning: train.freeze_d=2 with D starting from random weights "
                                              "(no run.init): its first 2 of 3 blocks stay random")
    export = InitSource("g.safetensors", "g.safetensors", "g.safetensors", None, {})
    assert "(run.init=g.safetensors holds no D)" in freeze_note(1, 3, export)
    run = InitSource("runs/a", "G", "G_ema", "D", {})
    assert freeze_note(1, 3, run) == "FreezeD: D's first 1 of 3 blocks keep run.init's weights (train.freeze_d=1)"


def train(cartoon_shards, run_dir, *extra):
    return run_cli(os.path.join(ROOT, "launch", "train.py"), f"data.shards={cartoon_shards}", f"run.dir={run_dir}",
                   *EVAL_TINY, *extra)


def test_fine_tune_run_with_frozen_d_blocks(cartoon_shards, tiny_run, tmp_path):
    """run.init from a run with train.freeze_d=1: step and optimizers fresh, D's first block
    bit-unchanged from the source, the rest of D and G moved a little from the source (not from a
    fresh initialisation: train.seed differs from the source's); a resume ignores run.init."""
    run = tmp_path / "ft"
    r = train(cartoon_shards, run, f"run.init={tiny_run}", "train.freeze_d=1", "train.seed=1",
              "train.total_kimg=0.048")
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"fine-tuning from {tiny_run}: G, G_ema and D" in r.stdout
    assert "FreezeD: D's first 1 of 3 blocks keep run.init's weights (train.freeze_d=1)" in r.stdout
    assert "small dataset: 576 training images and no augmentation" in r.stdout and "train.augment=ada" in r.stdout
    source = ckpt.list_checkpoints(os.path.join(tiny_run, "checkpoints"))[0]
    src = {n: load_file(os.path.join(source, f"{n}.safetensors")) for n in ("G", "D")}
    path = ckpt.list_checkpoints(str(run / "checkpoints"))[0]
    assert ckpt.verify(path)["step"] == 3
    new = {n: load_file(os.path.join(path, f"{n}.safetensors")) for n in ("G", "D", "opt_G")}
    assert new["opt_G"]["state.0.step"].item() == 3  # Adam's count started at 0
    assert torch.equal(new["D"]["main.0.weight"], src["D"]["main.0.weight"])  # frozen block 0
    assert not torch.equal(new["D"]["main.2.weight"], src["D"]["main.2.weight"])  # block 1 trained
    fresh_G, _ = build_models(ModelConfig(**TINY_MODEL), seed=1)
    w = "main.0.weight"
    assert (new["G"][w] - src["G"][w]).abs().max() < 0.01 < (new["G"][w] - fresh_G.state_dict()[w]).abs().max()
    r = train(cartoon_shards, run, f"run.init={tiny_run}", "train.freeze_d=1", "train.seed=1",
              "train.total_kimg=0.064")
    assert r.returncode == 0 and "resumed from" in r.stdout, r.stderr[-2000:]
    assert f"run.init={tiny_run} ignored" in r.stdout
    d = load_file(os.path.join(ckpt.list_checkpoints(str(run / "checkpoints"))[0], "D.safetensors"))
    assert torch.equal(d["main.0.weight"], src["D"]["main.0.weight"])  # still frozen after the resume


def test_mismatched_init_is_refused_before_anything_is_written(cartoon_shards, tiny_run, tmp_path):
    run = tmp_path / "refused"
    r = train(cartoon_shards, run, f"run.init={tiny_run}", "model.ngf=16")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "run.init" in lines[0] and "model.ngf: source 8 vs config 16" in lines[0]
    assert not run.exists() or not os.listdir(run)


def test_a_changed_freeze_d_on_resume_is_one_line(tmp_path):
    """D's optimizer holds only the unfrozen parameters: a checkpoint written with another
    train.freeze_d cannot be resumed, and says why instead of a traceback."""
    _, D = build_models(ModelConfig(**TINY_MODEL), seed=0)
    opt = torch.optim.Adam(D.parameters())
    D(torch.randn(2, 3, 32, 32)).logits.sum().backward()
    opt.step()
    ckpt.save_optimizer(opt, str(tmp_path / "opt_D.safetensors"))
    freeze_d(D, 1)
    fewer = torch.optim.Adam([p for p in D.parameters() if p.requires_grad])
    with pytest.raises(UserError, match="train.freeze_d must stay as it was"):
        ckpt.load_optimizer(fewer, str(tmp_path / "opt_D.safetensors"))
