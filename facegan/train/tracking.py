"""metrics.jsonl on the main process, plus Accelerate's trackers (wandb, TensorBoard) when enabled.

The trackers are Accelerate's own (Accelerator(log_with=...), accelerator.log): the trainer logs each
metrics.jsonl record through accelerator.log and each sample grid through log_grid, and Accelerate
sends them to every tracker on the main process only."""

import json
import os
import resource

import torch

from ..config import TRACKERS, tracker_names  # noqa: F401 (the values log.trackers takes; config checks them)

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


TENSORBOARD_DIR = "tensorboard"  # under the run directory: runs/NAME/tensorboard/<log.project>/


def tracker_setup(cfg) -> dict:
    """Keyword arguments for Accelerator(): log_with and, for TensorBoard, where its event files go."""
    names = tracker_names(cfg.log)
    if not names:
        return {"log_with": None}
    from accelerate.utils import ProjectConfiguration

    return {"log_with": names, "project_config": ProjectConfiguration(
        project_dir=cfg.run.dir, logging_dir=os.path.join(cfg.run.dir, TENSORBOARD_DIR))}


def start_trackers(accelerator, cfg, config_dict: dict, wandb_id=None):
    """init_trackers for every tracker in tracker_setup; returns the wandb run id (main process) or
    wandb_id. wandb gets the nested config; TensorBoard's hparams take only scalars, so it gets the
    config flattened to dotted keys (lists as text)."""
    names = tracker_names(cfg.log)
    if not names:
        return wandb_id
    kwargs = {}
    if "wandb" in names:
        kw = {"dir": cfg.run.dir, "resume": "allow"}
        if cfg.log.wandb != "off":  # log.trackers=[wandb] alone: wandb's own default (WANDB_MODE, login)
            kw["mode"] = cfg.log.wandb
        if cfg.log.name:
            kw["name"] = cfg.log.name
        if wandb_id:
            kw["id"] = wandb_id
        kwargs["wandb"] = kw
    accelerator.init_trackers(cfg.log.project, config=None, init_kwargs=kwargs)
    if not accelerator.is_main_process:
        return wandb_id
    for tracker in accelerator.trackers:
        if tracker.name == "wandb":
            tracker.store_init_configuration(config_dict)
            wandb_id = accelerator.get_tracker("wandb", unwrap=True).id
        elif tracker.name == "tensorboard":
            tracker.store_init_configuration(flat_config(config_dict))
    return wandb_id


def flat_config(d: dict, prefix: str = "") -> dict:
    """{'train': {'lr_g': 2e-4, 'betas': [0.5, 0.999]}} -> {'train.lr_g': 2e-4, 'train.betas': '[0.5, 0.999]'};
    None becomes 'none' (TensorBoard's hparams take bool, int, float and str only)."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flat_config(v, f"{prefix}{k}."))
        elif isinstance(v, (bool, int, float, str)):
            out[f"{prefix}{k}"] = v
        else:
            out[f"{prefix}{k}"] = "none" if v is None else str(v)
    return out


def log_grid(accelerator, grid_uint8: torch.Tensor, step: int, name: str = "samples") -> None:
    """Send a (3, H, W) uint8 grid to the trackers that take images (wandb, TensorBoard)."""
    for tracker in accelerator.trackers:
        if tracker.name == "wandb":
            tracker.log_images({name: [grid_uint8.permute(1, 2, 0).numpy()]}, step=step)
        elif tracker.name == "tensorboard":
            tracker.log_images({name: grid_uint8[None].numpy()}, step=step)  # NCHW uint8
            tracker.writer.flush()  # a grid shows up now, not at the writer's next timed flush
