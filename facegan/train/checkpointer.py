"""Writing a training's checkpoints: a collective every rank enters together, after checking
that no rank has seen a non-finite loss and averaging what drifts apart per rank."""

import os

import torch
from accelerate.utils import gather_object

from . import checkpoint as ckpt
from .nan_watch import NanWatch
from .run_totals import DataTotals, RunClock


class Checkpointer:
    """Knows where checkpoints go and the last step written. `write` is a collective: every rank
    calls it at the same step. A checkpoint records the run's totals (clock, data) beside the nets."""

    def __init__(self, rt, cfg, nets, loader, nan_watch: NanWatch, clock: RunClock, data: DataTotals,
                 last_step: int):
        self.rt, self.cfg, self.nets, self.loader = rt, cfg, nets, loader
        self.nan_watch, self.clock, self.data = nan_watch, clock, data
        self.root = checkpoint_root(cfg)
        self.last_step = last_step  # the same on every rank, so every rank takes the same branches
        self.wandb_id = None

    def write(self, step: int, images_seen: int):
        """Write a checkpoint of this step (path on the main process, None elsewhere)."""
        self.nan_watch.check()  # never save weights that have gone non-finite
        n = self.nets
        average_buffers(self.rt.accelerator, (n.G_raw, n.D_raw, n.G_ema))
        rng = dict(enumerate(gather_object([ckpt.rng_tensors(self.rt.device)])))  # every rank's
        data = self.data.gather(self.rt, self.loader.counts)  # collective
        ada = {"ada": n.ada.state_dict()} if n.ada is not None else {}  # collective
        path = None
        if self.rt.is_main:
            scaler = self.rt.accelerator.scaler
            path = ckpt.save_checkpoint(
                self.root, step, {"G": n.G_raw, "G_ema": n.G_ema, "D": n.D_raw},
                {"opt_G": n.opt_G, "opt_D": n.opt_D}, n.arch,
                {"images_seen": images_seen, "scaler": scaler.state_dict() if scaler is not None else None,
                 "wandb_id": self.wandb_id, "dataset": self.cfg.data.shards, "kimg": images_seen / 1000,
                 "device": self.rt.description, **data, "wall_s": self.clock.wall_s(), **ada},
                rng, self.cfg.train.keep_checkpoints)
        self.rt.accelerator.wait_for_everyone()
        self.last_step = step
        return path

    def newest(self, step: int, images_seen: int):
        """The checkpoint of this step, written now unless it already was."""
        if self.last_step != step:
            return self.write(step, images_seen)
        return os.path.join(self.root, ckpt.step_dir_name(step)) if self.rt.is_main else None


def checkpoint_root(cfg) -> str:
    """Where a run's checkpoints go: run.dir/checkpoints."""
    return os.path.join(cfg.run.dir, "checkpoints")


@torch.no_grad()
def average_buffers(accelerator, modules) -> None:
    """BatchNorm running statistics drift apart per rank (buffers are not broadcast, see
    runtime.setup_runtime); average them at checkpoint time so every rank, and the checkpoint,
    hold the same state."""
    if accelerator.num_processes == 1:
        return
    for module in modules:
        for buf in module.buffers():
            if buf.is_floating_point():
                buf.copy_(accelerator.reduce(buf.clone(), reduction="mean"))
