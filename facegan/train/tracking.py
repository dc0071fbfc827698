"""metrics.jsonl on the main process, plus Accelerate's trackers (wandb) when enabled."""

import json
import os
import resource

import torch


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    if device.type == "mps":
        return torch.mps.driver_allocated_memory() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


class MetricsLog:
    """Appends one JSON object per line; a resumed run appends to the same file."""

    def __init__(self, path: str, enabled: bool):
        self.path, self.enabled = path, enabled

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
