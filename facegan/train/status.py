"""The status line, metrics.jsonl and the trackers: one record per log.every_steps steps."""

import time

import torch

from ..log import status_logger
from .tracking import peak_memory_mb

log = status_logger()


class StatusMeter:
    """Sums loss_D, loss_G, D(x), D(G(z)) on the device between records (no host sync per step);
    `emit` makes the one routine sync: a reduction over ranks, a line, a record, a tracker log.
    clock and data: the run's facegan.train.run_totals.RunClock and DataTotals (across resumes).
    ada: the trainer's AdaController (train.augment=ada), whose p and r_t join every record."""

    def __init__(self, rt, metrics, clock, data, images_seen: int, total_images: int = 0, ada=None):
        self.rt, self.metrics, self.clock, self.data = rt, metrics, clock, data
        self.stats = torch.zeros(4, device=rt.device)
        self.steps, self.t_log, self.img_log = 0, time.time(), images_seen
        # Run-level rate (since this process started: a resume's first interval includes no
        # earlier process's time) gives the ETA; one interval's rate swings with the machine.
        self.t_start, self.img_start, self.total_images = self.t_log, images_seen, total_images
        self.bar = notebook_bar(total_images, images_seen)
        self.last = None
        self.ada = ada

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
        totals = self.data.totals(int(round(mean[4])), int(round(mean[5])))
        wall_s = self.clock.wall_s()
        dt = max(time.time() - self.t_log, 1e-9)
        imgs = images_seen - self.img_log
        rec = {"step": step, "kimg": round(images_seen / 1000, 3), "loss_D": mean[0], "loss_G": mean[1],
               "D_real": mean[2], "D_fake": mean[3], "img_per_s": imgs / dt,
               "sec_per_kimg": dt / max(imgs / 1000, 1e-9), "peak_mem_mb": peak_memory_mb(self.rt.device),
               "lr_G": opt_G.param_groups[0]["lr"], "lr_D": opt_D.param_groups[0]["lr"],
               "data_read": totals["data_read"], "data_bad": totals["data_bad"], "wall_s": round(wall_s, 3)}
        run_s = max(time.time() - self.t_start, 1e-9)
        rec["img_per_s_run"] = (images_seen - self.img_start) / run_s
        left = max(self.total_images - images_seen, 0)
        rec["eta_s"] = round(left / rec["img_per_s_run"], 1) if rec["img_per_s_run"] > 0 else None
        if self.ada is not None:
            rec.update(self.ada.record())  # the same on every rank: p moves on statistics summed over all
        log.info(status_line(rec, self.total_images, self.steps))
        if self.bar is not None and self.rt.is_main:
            self.bar.update(images_seen - self.bar.n)
            self.bar.set_postfix_str(f"loss_D {mean[0]:.3f} loss_G {mean[1]:.3f}", refresh=True)
        self.metrics.write(rec)
        acc.log({k: v for k, v in rec.items() if k != "step"}, step=step)
        self.stats.zero_()
        self.steps, self.t_log, self.img_log = 0, time.time(), images_seen
        self.last = rec
        return rec

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def format_duration(seconds) -> str:
    """12 s -> '12s', 754 s -> '12m34s', 9000 s -> '2h30m'; None -> '?'."""
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def status_line(rec: dict, total_images: int, interval_steps: int) -> str:
    """One status line from a metrics record: where the run stands against its target and when it
    will get there (at the run's own rate), the losses, the last interval's speed, memory, and the
    bad-data count (always shown, 0 included, so a log can be grepped for it)."""
    total_kimg = total_images / 1000
    pct = min(100.0 * rec["kimg"] / total_kimg, 100.0) if total_kimg else 0.0  # a last batch may pass the target
    return (f"kimg {rec['kimg']:.3f}/{total_kimg:g} ({pct:4.1f}%)  ETA {format_duration(rec.get('eta_s'))}  "
            f"step {rec['step']}  loss_D {rec['loss_D']:.3f}  loss_G {rec['loss_G']:.3f}  "
            f"D(x) {rec['D_real']:.3f}  D(G(z)) {rec['D_fake']:.3f}  "
            f"{rec['img_per_s']:.1f} img/s (last {interval_steps} steps; run {rec['img_per_s_run']:.1f})  "
            f"mem {rec['peak_mem_mb']:.0f} MB  bad data {rec['data_bad']}/{rec['data_read']}"
            + (f"  p {rec['ada_p']:.3f}" if "ada_p" in rec else ""))


def notebook_bar(total_images: int, images_seen: int):
    """In a Jupyter notebook, a live tqdm widget of kimg toward the target beside the status lines
    (a terminal and a log have the status line itself, which carries the same ETA); else None."""
    from ..progress import in_notebook, progress

    if not in_notebook() or not total_images:
        return None
    return progress(total=total_images, initial=images_seen, desc="training", unit="img", unit_scale=True)
