"""The status line, metrics.jsonl and the trackers: one record per log.every_steps steps."""

import time

import torch

from .tracking import peak_memory_mb


class StatusMeter:
    """Sums loss_D, loss_G, D(x), D(G(z)) on the device between records (no host sync per step);
    `emit` makes the one routine sync: a reduction over ranks, a line, a record, a tracker log."""

    def __init__(self, rt, metrics, clock, images_seen: int):
        self.rt, self.metrics, self.clock = rt, metrics, clock
        self.stats = torch.zeros(4, device=rt.device)
        self.steps, self.t_log, self.img_log = 0, time.time(), images_seen
        self.last = None

    @torch.no_grad()
    def add(self, loss_D, loss_G, logits_real, logits_fake) -> None:
        self.stats += torch.stack([loss_D, loss_G, torch.sigmoid(logits_real.float()).mean(),
                                   torch.sigmoid(logits_fake.float()).mean()])
        self.steps += 1

    def emit(self, step: int, images_seen: int, opt_G, opt_D, data_counts) -> dict:
        acc, world = self.rt.accelerator, self.rt.world
        seen, bad = data_counts.totals()  # this rank's loader, all its workers, since this process started
        # One reduction for both: the loss means, and (times world, then averaged) the sample counts.
        local = torch.cat([self.stats / max(self.steps, 1),
                           torch.tensor([seen * world, bad * world], device=self.rt.device, dtype=self.stats.dtype)])
        mean = acc.reduce(local, reduction="mean").tolist()  # note: a sync point
        totals = self.clock.totals((int(round(mean[4])), int(round(mean[5]))))
        dt = max(time.time() - self.t_log, 1e-9)
        imgs = images_seen - self.img_log
        rec = {"step": step, "kimg": round(images_seen / 1000, 3), "loss_D": mean[0], "loss_G": mean[1],
               "D_real": mean[2], "D_fake": mean[3], "img_per_s": imgs / dt,
               "sec_per_kimg": dt / max(imgs / 1000, 1e-9), "peak_mem_mb": peak_memory_mb(self.rt.device),
               "lr_G": opt_G.param_groups[0]["lr"], "lr_D": opt_D.param_groups[0]["lr"],
               "data_read": totals["data_read"], "data_bad": totals["data_bad"], "wall_s": round(totals["wall_s"], 3)}
        bad = rec["data_bad"]
        acc.print(f"kimg {rec['kimg']:9.3f}  step {step:7d}  loss_D {mean[0]:.3f}  loss_G {mean[1]:.3f}  "
                  f"D(x) {mean[2]:.3f}  D(G(z)) {mean[3]:.3f}  {rec['img_per_s']:8.1f} img/s  "
                  f"{rec['sec_per_kimg']:7.2f} s/kimg  mem {rec['peak_mem_mb']:.0f} MB"
                  + (f"  bad data {bad}/{rec['data_read']}" if bad else ""))
        self.metrics.write(rec)
        acc.log({k: v for k, v in rec.items() if k != "step"}, step=step)
        self.stats.zero_()
        self.steps, self.t_log, self.img_log = 0, time.time(), images_seen
        self.last = rec
        return rec
