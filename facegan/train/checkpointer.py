"""Writing a training's checkpoints: a collective every rank enters together, after checking
that no rank has seen a non-finite loss and averaging what drifts apart per rank."""

import os
import time

import torch

from . import checkpoint as ckpt


class NonFiniteLoss(RuntimeError):
    pass


class RunClock:
    """Cumulative counters of a run across resumes: data read and bad (summed over ranks) and
    wall-clock seconds, continuing from the values its checkpoint recorded."""

    KEYS = {"data_read": 0, "data_bad": 0, "wall_s": 0.0}

    def __init__(self, state: dict = None):
        self.before = {k: (state or {}).get(k, v) for k, v in self.KEYS.items()}
        self.t0 = time.time()

    def totals(self, data_now) -> dict:
        read, bad = data_now
        return {"data_read": self.before["data_read"] + read, "data_bad": self.before["data_bad"] + bad,
                "wall_s": self.before["wall_s"] + time.time() - self.t0}


class Checkpointer:
    """Knows where checkpoints go and the last step written. `write` and `check_finite` are
    collectives: every rank calls them at the same step."""

    def __init__(self, rt, cfg, nets, loader, clock: RunClock, last_step: int):
        self.rt, self.cfg, self.nets, self.loader, self.clock = rt, cfg, nets, loader, clock
        self.root = os.path.join(cfg.run.dir, "checkpoints")
        self.last_step = last_step  # the same on every rank, so every rank takes the same branches
        self.wandb_id = None
        # First step with a non-finite loss on this rank (-1: none), kept on the device so the
        # step never waits for the host.
        self.first_bad = torch.full((), -1, dtype=torch.long, device=rt.device)

    def note_losses(self, loss_sum: torch.Tensor, step: int) -> None:
        bad_now = ~torch.isfinite(loss_sum)
        self.first_bad.copy_(torch.where(bad_now & (self.first_bad < 0), torch.full_like(self.first_bad, step),
                                         self.first_bad))

    def check_finite(self) -> None:
        """Raise NonFiniteLoss, naming the first bad step, if any rank saw one (a host sync)."""
        acc = self.rt.accelerator
        bad = (self.first_bad >= 0).float().view(1)
        if self.rt.world > 1:
            bad = acc.reduce(bad, reduction="sum")
        if bad.item() > 0:
            firsts = acc.gather(self.first_bad.view(1)).tolist() if self.rt.world > 1 else [self.first_bad.item()]
            last = ckpt.list_checkpoints(self.root)
            raise NonFiniteLoss(f"non-finite loss at step {min(s for s in firsts if s >= 0)}; stopping. "
                                f"Last good checkpoint: {last[0] if last else 'none'}")

    def write(self, step: int, images_seen: int):
        """Write a checkpoint of this step (path on the main process, None elsewhere)."""
        self.check_finite()  # never save weights that have gone non-finite
        n = self.nets
        average_buffers(self.rt.accelerator, (n.G_raw, n.D_raw, n.G_ema))
        rng = {r: dict(zip(names, tensors)) for r, (names, tensors) in
               enumerate(gather_rng(self.rt.accelerator, self.rt.device))}
        totals = self.clock.totals(data_totals(self.rt, self.loader.counts))  # collective
        ada = {"ada": n.ada.state_dict()} if getattr(n, "ada", None) is not None else {}  # collective
        path = None
        if self.rt.is_main:
            scaler = self.rt.accelerator.scaler
            path = ckpt.save_checkpoint(
                self.root, step, {"G": n.G_raw, "G_ema": n.G_ema, "D": n.D_raw},
                {"opt_G": n.opt_G, "opt_D": n.opt_D}, n.arch,
                {"images_seen": images_seen, "scaler": scaler.state_dict() if scaler is not None else None,
                 "wandb_id": self.wandb_id, "dataset": self.cfg.data.shards, "kimg": images_seen / 1000,
                 "device": self.rt.description, **totals, **ada},
                rng, self.cfg.train.keep_checkpoints)
        self.rt.accelerator.wait_for_everyone()
        self.last_step = step
        return path

    def newest(self, step: int, images_seen: int):
        """The checkpoint of this step, written now unless it already was."""
        if self.last_step != step:
            return self.write(step, images_seen)
        return os.path.join(self.root, ckpt.step_dir_name(step)) if self.rt.is_main else None


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


def gather_rng(accelerator, device: torch.device):
    """Every rank's RNG state, gathered to all (fixed-shape tensors, so a plain all-gather)."""
    mine = ckpt.rng_tensors(device)
    names = sorted(mine)
    if accelerator.num_processes == 1:
        return [(names, [mine[n] for n in names])]
    out = [(names, []) for _ in range(accelerator.num_processes)]
    for n in names:
        t = mine[n]
        raw = t.view(torch.uint8) if t.dtype != torch.uint8 else t
        gathered = accelerator.gather(raw.to(device).unsqueeze(0)).cpu()
        for r in range(accelerator.num_processes):
            out[r][1].append(gathered[r].view(t.dtype).clone())
    return out


def data_totals(rt, counts):
    """(samples read, bad) by every rank's loader since this process started, summed over ranks
    (a collective)."""
    seen, bad = counts.totals()
    t = torch.tensor([seen, bad], dtype=torch.float64 if rt.kind != "mps" else torch.float32, device=rt.device)
    if rt.world > 1:
        t = rt.accelerator.reduce(t, reduction="sum")
    return int(t[0].item()), int(t[1].item())
