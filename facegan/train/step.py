"""One DCGAN training step, shared by the trainer and the benchmarks that bound it: D's phase, G's
phase, then G's EMA, on counters the step keeps itself (as StyleGAN3's training loop splits
`accumulate_gradients` into phases)."""

from dataclasses import dataclass

import torch

from ..conditions import DConditioning, balanced_conditions
from .augment import ADA, diff_augment
from .ema import EmaSchedule, update_ema
from .losses import conditional_head, d_loss, g_loss, r1_penalty


@dataclass
class Progress:
    """Where a run stands: steps taken and images seen, over all ranks."""

    step: int = 0
    images_seen: int = 0


@dataclass
class DPhase:
    """What D's phase leaves for the rest of the step: the fakes (with G's graph, for G's phase),
    D's loss (without R1) and D's (N,) logits on the reals and fakes it saw."""

    fake: torch.Tensor
    loss: torch.Tensor
    logits_real: torch.Tensor
    logits_fake: torch.Tensor


class GANStep:
    """D step on real and fake as separate batches, then G step with D frozen, then EMA.

    ema: the EMA schedule (facegan.train.ema.EmaSchedule); its batch_size is also the images one
    step counts over all ranks. progress: the step and images seen the run resumes at (default:
    a fresh run); the step advances it, and the EMA decay and lazy R1 cadence follow it.
    loss: bce | hinge | lsgan. augment: DiffAugment policy applied to every image D sees; or
    ada: an AdaController (facegan.train.ada) whose pipeline augments every image D sees (reals
    and fakes, in D's step and in G's) with its probability p, steered by D's real logits.
    Only D's inputs are augmented: G_ema and the sample grids never see the pipeline.
    r1_gamma > 0: lazy R1 on real images every r1_every steps, weighted by r1_every so its
    average strength equals a penalty applied each step (Karras et al., 2020).
    condition, d_condition: a conditional GAN's facegan.conditions.Condition and model.d_condition;
    D's classifier head (AC-GAN aux, ADC-GAN adc) adds its loss terms, times aux_weight.
    fake_labels (conditional GANs): "data" generates each step's fakes with the real batch's
    labels; "balanced" draws them so each attribute is on half the time (or each class equally
    often), which gives rare attributes as many G updates as common ones. D's projection then sees
    other label rates on fakes than on reals, an offset that depends on the labels only, not on
    the image, so G's gradient is unchanged in the optimum (Miyato & Koyama 2018, eq. 2).
    ValueError for augment=ada without ada, or an unknown fake_labels or d_condition.
    """

    def __init__(self, accelerator, G, D, opt_G, opt_D, G_ema, ema: EmaSchedule, nz: int, loss: str = "bce",
                 augment: tuple = (), r1_gamma: float = 0.0, r1_every: int = 16, aux_weight: float = 1.0,
                 fake_labels: str = "data", ada=None, condition=None, d_condition: str = "projection",
                 progress: Progress = None):
        self.acc, self.G, self.D, self.opt_G, self.opt_D = accelerator, G, D, opt_G, opt_D
        self.G_raw = accelerator.unwrap_model(G, keep_torch_compile=False)
        self.D_raw = accelerator.unwrap_model(D, keep_torch_compile=False)
        self.G_ema, self.ema, self.nz = G_ema, ema, nz
        self.progress = progress if progress is not None else Progress()
        self.loss, self.r1_gamma, self.r1_every = loss, r1_gamma, max(1, r1_every)
        augment = tuple(augment)
        if ADA in augment and ada is None:
            raise ValueError("augment=ada needs the ADA controller (ada=facegan.train.ada.AdaController)")
        self.ada, self.augment = ada, () if ADA in augment else augment
        # D's parameters the D step trains: all of them, less those frozen before (train.freeze_d)
        self.d_params = [p for p in self.D_raw.parameters() if p.requires_grad]
        self.condition = condition
        head = DConditioning.parse(d_condition).head if condition is not None else None
        self.head = conditional_head(head, condition, aux_weight)  # None: D has no classifier head
        self.head_reads_fakes = self.head is not None and self.head.reads_fakes
        if fake_labels not in ("data", "balanced"):
            raise ValueError(f"fake_labels: expected data or balanced, got {fake_labels!r}")
        self.balanced = fake_labels == "balanced"

    def __call__(self, real: torch.Tensor, cond: torch.Tensor = None):
        """One D step and one G step (then EMA) on a real batch: float (N, 3, H, W) in [-1, 1] on
        the device, and for a conditional GAN its conditions cond (N, C); the fakes of this step use
        them too, or balanced draws (fake_labels). Advances self.progress by one step of
        ema.batch_size images. Returns (loss_D, loss_G, logits_real, logits_fake), detached: two
        fp32 scalars and two (N,) tensors of D's raw scores, left on the device (no host sync)."""
        z = torch.randn(real.shape[0], self.nz, 1, 1, device=real.device)
        cond_fake = self._fake_labels(cond)
        if real.is_contiguous(memory_format=torch.channels_last):
            z = z.contiguous(memory_format=torch.channels_last)
        r1 = self.r1_gamma > 0 and (self.progress.step + 1) % self.r1_every == 0  # lazy R1 on this step
        if r1:
            real = real.detach().requires_grad_(True)
        d = self.d_phase(real, cond, z, cond_fake, r1)
        loss_G = self.g_phase(d.fake, cond_fake)
        if self.G_ema is not None:
            update_ema(self.G_ema, self.G_raw, self.ema.beta(self.progress.images_seen))
        if self.ada is not None:
            self.ada.step()  # every ADA_INTERVAL steps: r_t over all ranks moves p
        self.progress.step += 1
        self.progress.images_seen += self.ema.batch_size
        return d.loss.detach(), loss_G.detach(), d.logits_real.detach(), d.logits_fake.detach()

    def d_phase(self, real, cond, z, cond_fake, r1: bool) -> DPhase:
        """D learns real from fake, through the DDP-wrapped D (its gradients are averaged across
        ranks). G makes this step's fakes here, under the same autocast. With r1, the R1 penalty
        on the reals (which then require grad) joins D's loss."""
        self._train_d(True)
        with self.acc.autocast():
            fake = self._G(z, cond_fake)
            out_real = self._D(self.D, self._aug(real), cond, labels=self.head is not None)
            out_fake = self._D(self.D, self._aug(fake.detach()), cond_fake, labels=self.head_reads_fakes)
            loss_D = d_loss(out_real.logits, out_fake.logits, self.loss)
            if self.head is not None:  # the classifier learns the reals' labels (ADC: and the fakes', as fakes)
                loss_D = loss_D + self.head.d_term(out_real.labels, cond, out_fake.labels, cond_fake)
        total_D = loss_D
        if r1:  # outside autocast: the penalty is summed in fp32 (its graph keeps autocast's dtypes)
            total_D = loss_D + (0.5 * self.r1_gamma * self.r1_every) * r1_penalty(out_real.logits, real)
        self.opt_D.zero_grad(set_to_none=True)
        self.acc.backward(total_D)
        self.opt_D.step()
        if self.ada is not None:  # r_t: D's verdict on the (augmented) reals it just trained on
            self.ada.accumulate(out_real.logits)
        return DPhase(fake, loss_D, out_real.logits, out_fake.logits)

    def g_phase(self, fake, cond_fake) -> torch.Tensor:
        """G learns to make D call its fakes real (and, with a head, to make the asked labels
        readable). D is frozen and called unwrapped: no DDP reduction for D, no stale D grads.
        Returns G's loss."""
        self._train_d(False)
        with self.acc.autocast():
            out = self._D(self.D_raw, self._aug(fake), cond_fake, labels=self.head is not None)
            loss_G = g_loss(out.logits, self.loss)
            if self.head is not None:
                loss_G = loss_G + self.head.g_term(out.labels, cond_fake)
        self.opt_G.zero_grad(set_to_none=True)
        self.acc.backward(loss_G)
        self.opt_G.step()
        return loss_G

    def _G(self, z, cond):
        return self.G(z) if cond is None else self.G(z, cond)

    @staticmethod
    def _D(D, x, cond, labels: bool):
        """D's facegan.models.DOutput; an unconditional D is called on images alone."""
        return D(x) if cond is None else D(x, cond, labels=labels)

    def _fake_labels(self, cond):
        """The fakes' conditions: the real batch's, or balanced draws of the same shape."""
        if cond is None or not self.balanced:
            return cond
        return balanced_conditions(self.condition, cond.shape[0], cond.device).to(cond.dtype)

    def _aug(self, x):
        if self.ada is not None:
            return self.ada.augment(x)
        return diff_augment(x, self.augment) if self.augment else x

    def _train_d(self, flag: bool) -> None:
        for p in self.d_params:
            p.requires_grad_(flag)
