"""log.trackers: TensorBoard event files read back with TensorBoard's own reader; the keys."""

import glob
import os

import pytest

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
def test_tensorboard_writes_scalars_and_images(cartoon_shards, tmp_path):
    """TensorBoard alone; wandb offline through the same code is test_train.py's
    test_wandb_offline_logs_metrics_and_images (log.wandb=offline, the shorthand)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from facegan.train.loop import train

    train(load_config(None, [f"data.shards={cartoon_shards}", f"run.dir={tmp_path}", *TINY,
                             "log.trackers=[tensorboard]"]))  # in this process: no second torch start-up
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
    hparams = EventAccumulator(glob.glob(str(tmp_path / "tensorboard" / "facegan" / "*" / "events.*"))[0]).Reload()
    assert hparams.summary_metadata  # the config went in as hyperparameters (flattened)
    assert not os.path.exists(tmp_path / "wandb")
