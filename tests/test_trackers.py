"""log.trackers: TensorBoard event files read back with TensorBoard's own reader, next to wandb."""

import glob
import os

import pytest

from conftest import ROOT, run_cli
from facegan.config import load_config
from facegan.errors import UserError
from facegan.train.tracking import flat_config, tracker_names

TINY = ["model.resolution=32", "model.ngf=8", "model.ndf=8", "model.nz=16", "train.batch_size=16",
        "data.workers=0", "log.every_steps=2", "train.sample_every_kimg=0.032", "train.total_kimg=0.064"]


def test_tracker_keys_and_the_wandb_shorthand():
    assert tracker_names(load_config(None, []).log) == []
    assert tracker_names(load_config(None, ["log.trackers=tensorboard"]).log) == ["tensorboard"]
    assert tracker_names(load_config(None, ["log.trackers=[tensorboard]", "log.wandb=offline"]).log) == \
        ["wandb", "tensorboard"]
    assert tracker_names(load_config(None, ["log.trackers=wandb,tensorboard", "log.wandb=offline"]).log) == \
        ["wandb", "tensorboard"]
    with pytest.raises(UserError, match=r"log.trackers\[0\]: expected one of wandb, tensorboard; got 'mlflow'"):
        load_config(None, ["log.trackers=mlflow"])
    flat = flat_config({"train": {"betas": [0.5, 0.9], "lr": 1e-3}, "log": {"name": None}})
    assert flat == {"train.betas": "[0.5, 0.9]", "train.lr": 1e-3, "log.name": "none"}


@pytest.mark.slow
def test_tensorboard_and_wandb_offline_write_scalars_and_images(cartoon_shards, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    r = run_cli(os.path.join(ROOT, "launch", "train.py"), f"data.shards={cartoon_shards}", f"run.dir={tmp_path}",
                *TINY, "log.trackers=[tensorboard]", "log.wandb=offline",
                env={"WANDB_SILENT": "true", "WANDB_DIR": str(tmp_path)})
    assert r.returncode == 0, r.stderr[-2000:]
    events = glob.glob(str(tmp_path / "tensorboard" / "facegan" / "events.out.tfevents.*"))
    assert events, os.listdir(tmp_path)
    acc = EventAccumulator(os.path.dirname(events[0]), size_guidance={"images": 0, "scalars": 0}).Reload()
    tags = acc.Tags()
    assert {"loss_D", "loss_G", "img_per_s", "kimg"} <= set(tags["scalars"]), tags
    steps = [e.step for e in acc.Scalars("loss_D")]
    assert steps == [2, 4], steps  # every log.every_steps, the same records as metrics.jsonl
    assert "samples" in tags["images"]
    img = acc.Images("samples")[-1]
    assert img.width == img.height == 8 * 34 + 2 and img.encoded_image_string[:4] == b"\x89PNG"
    # wandb (the log.wandb shorthand) still writes its offline run beside it
    runs = glob.glob(str(tmp_path / "wandb" / "offline-run-*"))
    assert runs and glob.glob(os.path.join(runs[0], "files", "media", "images", "*.png"))
