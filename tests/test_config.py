"""Config values are read as users type them: against the type of the key they set."""

import dataclasses
import os
import re
import subprocess
import sys

import pytest

from facegan.config import Config, load_config
from facegan.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Every key of the README's table, with the values the README shows for it, typed bare on the
# command line, and what each must become.
README_VALUES = {
    "data.shards": [("shards/cartoon64", "shards/cartoon64"),
                    ("shards/celeba64/train-{000000..000099}.tar", "shards/celeba64/train-{000000..000099}.tar")],
    "data.workers": [("2", 2), ("0", 0)],
    "data.max_bad_fraction": [("0.01", 0.01)],
    "data.stall_s": [("120", 120.0)],
    "data.flip": [("true", True), ("false", False), ("off", False), ("yes", True)],
    "data.device_cache": [("false", False), ("on", True), ("no", False)],
    "model.arch": [("dcgan", "dcgan")],
    "model.resolution": [("64", 64), ("32", 32)],
    "model.nz": [("100", 100)],
    "model.ngf": [("64", 64)],
    "model.ndf": [("64", 64)],
    "model.d_norm": [("batch", "batch"), ("spectral", "spectral"), ("none", "none")],
    "model.condition": [("none", "none"), ("attributes", "attributes"), ("class", "class")],
    "model.labels": [("[glasses, hat]", ["glasses", "hat"]), ("eyeglasses", ["eyeglasses"]), ("[]", [])],
    "model.g_condition": [("embed", "embed"), ("cbn", "cbn")],
    "model.d_condition": [("projection", "projection"), ("concat", "concat"), ("projection+aux", "projection+aux")],
    "train.batch_size": [("128", 128)],
    "train.lr_g": [("2e-4", 2e-4), ("1.0e-3", 1e-3)],
    "train.lr_d": [("2e-4", 2e-4)],
    "train.betas": [("[0.5, 0.999]", [0.5, 0.999]), ("[0.5,0.999]", [0.5, 0.999]), ("0.5,0.999", [0.5, 0.999])],
    "train.total_kimg": [("1000", 1000.0), ("500", 500.0)],
    "train.checkpoint_every_kimg": [("50", 50.0)],
    "train.sample_every_kimg": [("10", 10.0)],
    "train.keep_checkpoints": [("3", 3)],
    "train.ema": [("10", 10.0), ("0.5kimg", "0.5kimg"), ("0.999", 0.999), ("0", 0.0)],
    "train.ema_rampup": [("0", 0.0), ("0.05", 0.05)],
    "train.mixed_precision": [("auto", "auto"), ("no", "no"), ("fp16", "fp16"), ("bf16", "bf16")],
    "train.loss": [("bce", "bce"), ("hinge", "hinge"), ("lsgan", "lsgan")],
    "train.augment": [("none", "none"), ("color,translation,cutout", "color,translation,cutout"), ("ada", "ada"),
                      ("auto", "auto")],
    "train.ada_target": [("0.6", 0.6)],
    "train.ada_kimg": [("500", 500.0)],
    "train.freeze_d": [("0", 0)],
    "train.r1_gamma": [("0", 0.0), ("1", 1.0)],
    "train.r1_every": [("16", 16)],
    "train.aux_weight": [("1", 1.0), ("3", 3.0), ("0", 0.0)],
    "train.fake_labels": [("data", "data"), ("balanced", "balanced")],
    "train.seed": [("0", 0)],
    "train.sync_batchnorm": [("false", False), ("on", True)],
    "train.max_steps": [("0", 0)],
    "train.channels_last": [("auto", "auto"), ("false", False), ("off", False), ("true", True)],
    "train.compile": [("false", False), ("yes", True)],
    "run.dir": [("runs/demo", "runs/demo"), ("runs/try2", "runs/try2"), ("2024", "2024")],
    "run.init": [("runs/faces64", "runs/faces64")],
    "run.resume": [("auto", "auto"), ("none", "none"), ("runs/x/checkpoints/step-00000100", "runs/x/checkpoints/step-00000100")],
    "dist.timeout_s": [("300", 300.0), ("5", 5.0)],
    "log.every_steps": [("50", 50)],
    "log.wandb": [("off", "off"), ("offline", "offline"), ("online", "online")],
    "log.project": [("facegan", "facegan"), ("no", "no")],
    "log.name": [("smoke", "smoke"), ("123", "123"), ("on", "on"), ("1e3", "1e3")],
    "log.trackers": [("tensorboard", ["tensorboard"]), ("[wandb, tensorboard]", ["wandb", "tensorboard"]),
                     ("wandb,tensorboard", ["wandb", "tensorboard"]), ("[]", [])],
    "eval.every_kimg": [("0", 0.0), ("30", 30.0)],
    "eval.n": [("5000", 5000)],
    "eval.ref": [("shards/celeba64", "shards/celeba64")],
    "eval.inception_weights": [("weights/pt_inception.pth", "weights/pt_inception.pth")],
}


def all_keys():
    cfg = Config()
    return {f"{s.name}.{k.name}" for s in dataclasses.fields(cfg) for k in dataclasses.fields(getattr(cfg, s.name))}


def test_the_table_covers_every_key_and_the_readme_lists_them_all():
    assert set(README_VALUES) == all_keys()
    readme = open(os.path.join(ROOT, "README.md")).read()
    table = "\n".join(line for line in readme.splitlines() if line.startswith("| `"))
    for key in all_keys():
        section, name = key.split(".")
        # a row names the key in full, or after another key of its section (`model.resolution` / `nz`)
        assert f"`{key}`" in table or re.search(rf"`{section}\.\w+`.*`{name}`", table), f"{key} not in the README"


@pytest.mark.parametrize("key,typed,expected", [(k, t, e) for k, vals in README_VALUES.items() for t, e in vals])
def test_every_readme_value_typed_bare_on_the_command_line(key, typed, expected):
    cfg = load_config(None, [f"{key}={typed}"])
    section, name = key.split(".")
    got = getattr(getattr(cfg, section), name)
    assert got == expected and type(got) is type(expected), (key, typed, got)


def test_the_same_values_bare_in_a_config_file(tmp_path):
    path = tmp_path / "bare.yaml"
    path.write_text("log:\n  wandb: off\n  name: 123\ntrain:\n  mixed_precision: no\n  lr_g: 2e-4\n"
                    "  channels_last: off\ndata:\n  flip: no\n  device_cache: yes\n")
    cfg = load_config(str(path))
    assert (cfg.log.wandb, cfg.log.name, cfg.train.mixed_precision) == ("off", "123", "no")
    assert (cfg.train.lr_g, cfg.train.channels_last, cfg.data.flip, cfg.data.device_cache) == (2e-4, False, False, True)


@pytest.mark.parametrize("override,message", [
    ("log.wandb=maybe", "log.wandb: expected one of off, offline, online; got 'maybe'"),
    ("train.mixed_precision=fp8", "train.mixed_precision: expected one of auto, no, fp16, bf16; got 'fp8'"),
    ("train.loss=wgan", "train.loss: expected one of bce, hinge, lsgan; got 'wgan'"),
    ("model.d_norm=layer", "model.d_norm: expected one of batch, spectral, none; got 'layer'"),
    ("train.channels_last=sometimes", "train.channels_last: expected one of auto, true, false; got 'sometimes'"),
    ("data.flip=maybe", "data.flip: expected bool, got 'maybe'"),
    ("train.batch_size=lots", "train.batch_size: expected int, got 'lots'"),
    ("train.lr_g=fast", "train.lr_g: expected float, got 'fast'"),
    ("train.betas=0.5", "train.betas: expected a list, got 0.5"),
    ("train.bogus=1", "unknown config key 'train.bogus'"),
    ("train=5", "train: expected a section (mapping), got '5'"),
])
def test_a_wrong_value_names_the_key_and_what_it_takes(override, message):
    with pytest.raises(UserError) as err:
        load_config(None, [override])
    assert str(err.value).startswith(message)


def test_the_command_line_reads_values_as_the_readme_shows_them(tmp_path):
    """The issue's two commands, end to end through the CLI: they get past the config (the run
    stops on the missing data, naming it) instead of a type error."""
    cmd = [sys.executable, os.path.join(ROOT, "launch", "train.py"), "--config", os.path.join(ROOT, "configs", "demo.yaml"),
           f"data.shards={tmp_path / 'absent'}", f"run.dir={tmp_path / 'run'}", "log.wandb=off", "train.mixed_precision=no"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert "expected" not in r.stderr, r.stderr
    assert "absent" in r.stderr and "Traceback" not in r.stderr, r.stderr
    bad = subprocess.run(cmd + ["log.wandb=loud"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == ["facegan-train: error: log.wandb: expected one of off, offline, online; got 'loud'"]


def test_the_readme_row_of_every_fixed_choice_key_names_each_value():
    """A key's allowed values are declared once (config.one_of); the README table must show them all."""
    from facegan.config import choices_of, declared_fields

    readme = open(os.path.join(ROOT, "README.md")).read()
    rows = [line for line in readme.splitlines() if line.startswith("| `")]
    for key, f, _ in declared_fields(Config()):
        choices = choices_of(f)
        if not choices:
            continue
        section, name = key.split(".")
        row = next(r for r in rows if f"`{key}`" in r or (f"`{section}." in r and f"`{name}`" in r))
        for c in choices:
            shown = str(c).lower() if isinstance(c, bool) else str(c)
            assert f"`{shown}`" in row, f"README row of {key} does not name `{shown}`: {row}"
