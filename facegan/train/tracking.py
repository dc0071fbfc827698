"""metrics.jsonl on the main process, plus Accelerate's trackers (wandb) when enabled."""

import json
import os
import resource

import torch

from ..io import write_text_atomic


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    if device.type == "mps":
        return torch.mps.driver_allocated_memory() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


class MetricsLog:
    """Appends one JSON object per line. A resumed run first drops the rows past its checkpoint's
    step (written by the run it replaces after that checkpoint), so the file reads as one run."""

    def __init__(self, path: str, enabled: bool, resume_step: int = None):
        self.path, self.enabled = path, enabled
        if enabled and resume_step is not None:
            self.drop_after(resume_step)

    def drop_after(self, step: int) -> int:
        """Rewrite the file (atomically) without rows whose step is past `step`; returns how many
        rows went. Lines cut short by a crash go too."""
        if not os.path.exists(self.path):
            return 0
        with open(self.path) as f:
            lines = [line for line in f if line.strip()]
        kept = []
        for line in lines:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if row.get("step", 0) <= step:
                kept.append(json.dumps(row, sort_keys=True) + "\n")
        if len(kept) != len(lines):
            write_text_atomic(self.path, "".join(kept))
        return len(lines) - len(kept)

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")


def read_metrics(path: str) -> list:
    if not os.path.exists(path):
        return []
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    pass  # a line cut short by a crash
    return rows


def wandb_init_kwargs(cfg, run_id):
    kwargs = {"mode": cfg.log.wandb, "dir": cfg.run.dir, "resume": "allow"}
    if cfg.log.name:
        kwargs["name"] = cfg.log.name
    if run_id:
        kwargs["id"] = run_id
    return {"wandb": kwargs}


def log_grid(accelerator, grid_uint8: torch.Tensor, step: int, name: str = "samples") -> None:
    """Send a uint8 grid to the trackers that take images (wandb)."""
    for tracker in accelerator.trackers:
        if tracker.name == "wandb":
            tracker.log_images({name: [grid_uint8.permute(1, 2, 0).numpy()]}, step=step)
