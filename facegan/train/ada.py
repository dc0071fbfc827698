"""Adaptive discriminator augmentation (ADA; Karras et al. 2020, "Training Generative Adversarial
Networks with Limited Data"): the probability p with which every image D sees is augmented
(facegan.train.augment_pipe) is steered by D's overfitting heuristic

    r_t = E[sign(D(x_real))]

(0: D cannot tell training images from the rest; 1: D is sure of every one, it has memorised
them). Every ADA_INTERVAL steps (ADA: 4) r_t is measured over the real batches since the last
adjustment, summed over every rank, and p moves by sign(r_t - target) * images / (ada_kimg * 1000):
p can travel from 0 to 1 in ada_kimg thousand images. p is kept in [0, P_MAX]: ADA's own p was
bounded only below, and one run reached p = 21.8 with the augmentations leaking into the
samples (stylegan2-ada-pytorch issue #175).
"""

import math

import torch
import torch.distributed as dist

from ..config.augment_policy import SMALL_DATASET
from .augment_pipe import AugmentPipe

ADA_INTERVAL = 4  # steps between adjustments of p (ADA's ada_interval)
P_MAX = 0.99  # below 1, so a few images always reach D as they are


def _sum_over_ranks(t: torch.Tensor) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t)
    return t


class AdaController:
    """Holds p and the sign statistics of D's real logits; augments D's inputs with p.

    target: the r_t to hold (ADA: 0.6). ada_kimg: thousands of images over which p can go from 0
    to 1 (ADA: 500). images_per_step: the global batch (every rank's images of one step).
    `accumulate` and `augment` run every step on the device with no host sync; `step` ends a
    training step and, every ADA_INTERVAL steps, sums the statistics over the ranks (a
    collective, entered by every rank at the same step) and moves p.
    """

    def __init__(self, target: float, ada_kimg: float, images_per_step: int, device, pipe: AugmentPipe = None):
        if not 0 < target < 1:
            raise ValueError(f"ADA target must be in (0, 1), got {target}")
        if not ada_kimg > 0:
            raise ValueError(f"ada_kimg must be > 0, got {ada_kimg}")
        self.target, self.ada_kimg, self.images_per_step = target, ada_kimg, images_per_step
        self.pipe = pipe or AugmentPipe()
        self.p = 0.0
        self.steps = 0
        self.signs = torch.zeros(2, device=device)  # sum of sign(D(real)), count; since the last adjustment
        self.rt = None  # r_t at the last adjustment
        self._window = [0.0, 0.0]  # signs summed over ranks since the last record()

    def augment(self, images: torch.Tensor) -> torch.Tensor:
        """images (N, 3, H, W) in [-1, 1] through the pipeline at the current p (p = 0: unchanged)."""
        return self.pipe(images, self.p)

    @torch.no_grad()
    def accumulate(self, logits_real: torch.Tensor) -> None:
        """Add D's (N,) logits on this step's (augmented) real images to r_t's statistics."""
        self.signs[0] += torch.sign(logits_real.detach().float()).sum()
        self.signs[1] += logits_real.numel()  # a scalar argument: no host-to-device copy

    def step(self) -> None:
        self.steps += 1
        if self.steps % ADA_INTERVAL == 0:
            self.adjust()

    def adjust(self) -> None:
        """r_t over every rank's real batches since the last adjustment; p one notch toward the target."""
        total, n = _sum_over_ranks(self.signs.clone()).tolist()
        self.signs.zero_()
        if n == 0:
            return
        self.rt = total / n
        self._window[0] += total
        self._window[1] += n
        move = math.copysign(1.0, self.rt - self.target) if self.rt != self.target else 0.0
        self.p = min(max(self.p + move * self.images_per_step * ADA_INTERVAL / (self.ada_kimg * 1000), 0.0), P_MAX)

    def record(self) -> dict:
        """{"ada_p", "ada_rt"} for metrics.jsonl: p now, r_t over the adjustments since the last
        record (the last adjustment's when there was none; no ada_rt before the first)."""
        rec = {"ada_p": self.p}
        if self._window[1]:
            rec["ada_rt"] = self._window[0] / self._window[1]
        elif self.rt is not None:
            rec["ada_rt"] = self.rt
        self._window = [0.0, 0.0]
        return rec

    def state_dict(self) -> dict:
        """JSON-able state for the checkpoint. A collective: the statistics gathered since the last
        adjustment are summed over the ranks (sums of signs: integers, so the sum is exact) and
        handed back to rank 0 on load, which gives the next adjustment the same total."""
        signs, n = _sum_over_ranks(self.signs.clone()).tolist()
        return {"p": self.p, "steps": self.steps, "signs": signs, "count": n, "rt": self.rt,
                "target": self.target, "ada_kimg": self.ada_kimg}

    def load_state_dict(self, state: dict, rank: int = 0) -> None:
        self.p, self.steps, self.rt = float(state["p"]), int(state["steps"]), state.get("rt")
        self.signs.zero_()
        if rank == 0:
            self.signs += torch.tensor([float(state["signs"]), float(state["count"])], device=self.signs.device)


def small_data_note(images, augment: str, target: float = 0.6, auto: bool = False):
    """One line for a dataset of fewer than SMALL_DATASET training images (None otherwise, or when
    the count is unknown): how many, what augmentation D gets (auto: train.augment=auto chose it),
    and ADA when it gets none."""
    if images is None or images >= SMALL_DATASET:
        return None
    policy = (augment or "none").strip().lower()
    if policy in ("", "none", "off"):
        return (f"note: small dataset: {images} training images and no augmentation; D will likely "
                f"memorise them within a few hundred kimg: train.augment=ada adapts augmentation to that "
                f"(Karras et al. 2020)")
    what = f"ADA (p steered to r_t = {target})" if policy == "ada" else f"DiffAugment {policy}"
    return (f"note: small dataset: {images} training images; augmentation for D: {what}"
            + (", chosen by train.augment=auto" if auto else ""))


def ada_from_config(train_cfg, device, state: dict = None, rank: int = 0):
    """The AdaController for train.augment=ada (None for any other setting), its p and statistics
    restored from a resumed checkpoint's state.json when it has them."""
    if (train_cfg.augment or "").strip().lower() != "ada":
        return None
    ada = AdaController(train_cfg.ada_target, train_cfg.ada_kimg, train_cfg.batch_size, device)
    if state and state.get("ada"):
        ada.load_state_dict(state["ada"], rank)
    return ada
