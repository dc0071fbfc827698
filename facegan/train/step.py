"""One DCGAN training step, shared by the trainer and the benchmarks that bound it."""

import torch

from ..images import to_unit_range  # noqa: F401 (the trainer's input conversion, re-exported)
from .augment import diff_augment
from .ema import update_ema
from ..conditions import balanced_conditions
from .losses import adc_loss, aux_loss, d_loss, g_loss, r1_penalty


class GANStep:
    """D step on real and fake as separate batches, then G step with D frozen, then EMA.

    loss: bce | hinge | lsgan. augment: DiffAugment policy applied to every image D sees; or
    ada: an AdaController (facegan.train.ada) whose pipeline augments every image D sees (reals
    and fakes, in D's step and in G's) with its probability p, steered by D's real logits.
    Only D's inputs are augmented: G_ema and the sample grids never see the pipeline.
    r1_gamma > 0: lazy R1 on real images every r1_every steps, weighted by r1_every so its
    average strength equals a penalty applied each step (Karras et al., 2020).
    fake_labels (conditional GANs): "data" generates each step's fakes with the real batch's
    labels; "balanced" draws them so each attribute is on half the time (or each class equally
    often), which gives rare attributes as many G updates as common ones. D's projection then sees
    other label rates on fakes than on reals, an offset that depends on the labels only, not on
    the image, so G's gradient is unchanged in the optimum (Miyato & Koyama 2018, eq. 2).
    """

    def __init__(self, accelerator, G, D, opt_G, opt_D, G_ema, ema_beta: float, nz: int, loss: str = "bce",
                 augment: tuple = (), r1_gamma: float = 0.0, r1_every: int = 16, aux_weight: float = 1.0,
                 fake_labels: str = "data", ada=None):
        self.acc, self.G, self.D, self.opt_G, self.opt_D = accelerator, G, D, opt_G, opt_D
        self.G_raw = accelerator.unwrap_model(G, keep_torch_compile=False)
        self.D_raw = accelerator.unwrap_model(D, keep_torch_compile=False)
        self.G_ema, self.beta, self.nz = G_ema, ema_beta, nz
        self.loss, self.augment, self.r1_gamma, self.r1_every = loss, tuple(augment), r1_gamma, max(1, r1_every)
        self.ada = ada
        if "ada" in self.augment:
            if ada is None:
                raise ValueError("augment=ada needs the ADA controller (ada=facegan.train.ada.AdaController)")
            self.augment = ()
        # D's parameters the D step trains: all of them, less those frozen before (train.freeze_d)
        self.d_params = [p for p in self.D_raw.parameters() if p.requires_grad]
        self.steps = 0  # for the lazy R1 cadence; set by the trainer on resume
        self.condition = getattr(self.D_raw, "condition", None)
        self.aux = getattr(self.D_raw, "classify", None) is not None  # AC-GAN's auxiliary classifier
        self.adc = self.aux and getattr(self.D_raw, "adc", False)  # ADC-GAN: it tells real from fake too
        self.aux_weight = aux_weight
        if fake_labels not in ("data", "balanced"):
            raise ValueError(f"fake_labels: expected data or balanced, got {fake_labels!r}")
        self.balanced = fake_labels == "balanced"

    def _G(self, z, cond):
        return self.G(z) if cond is None else self.G(z, cond)

    @staticmethod
    def _D(D, x, cond, aux=False):
        if cond is None:
            return D(x)
        return D(x, cond, aux=True) if aux else D(x, cond)

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

    def __call__(self, real: torch.Tensor, cond: torch.Tensor = None):
        """One D step and one G step (then EMA) on a real batch: float (N, 3, H, W) in [-1, 1] on
        the device, and for a conditional GAN its conditions cond (N, C); the fakes of this step use
        them too, or balanced draws (fake_labels). Returns (loss_D, loss_G, logits_real, logits_fake), detached: two fp32
        scalars and two (N,) tensors of D's raw scores, left on the device (no host sync)."""
        acc = self.acc
        self.steps += 1
        z = torch.randn(real.shape[0], self.nz, 1, 1, device=real.device)
        cond_fake = self._fake_labels(cond)
        if real.is_contiguous(memory_format=torch.channels_last):
            z = z.contiguous(memory_format=torch.channels_last)
        do_r1 = self.r1_gamma > 0 and self.steps % self.r1_every == 0
        if do_r1:
            real = real.detach().requires_grad_(True)

        # D step, through the DDP-wrapped D (its gradients are averaged across ranks).
        self._train_d(True)
        with acc.autocast():
            fake = self._G(z, cond_fake)
            aux = self.aux and cond is not None
            logits_real = self._D(self.D, self._aug(real), cond, aux)
            if aux:  # AC-GAN: D's classifier learns the labels of real images
                logits_real, labels_real = logits_real
            logits_fake = self._D(self.D, self._aug(fake.detach()), cond_fake, self.adc)
            if self.adc:  # ADC-GAN: ... and the labels of fakes, as fakes
                logits_fake, labels_fake = logits_fake
            loss_D = d_loss(logits_real, logits_fake, self.loss)
            if self.adc:
                loss_D = loss_D + self.aux_weight * (adc_loss(self.condition, labels_real, cond, real=True)
                                                     + adc_loss(self.condition, labels_fake, cond_fake, real=False))
            elif aux:
                loss_D = loss_D + self.aux_weight * aux_loss(self.condition, labels_real, cond)
        total_D = loss_D
        if do_r1:  # outside autocast: the penalty's double backward in fp32
            total_D = loss_D + (0.5 * self.r1_gamma * self.r1_every) * r1_penalty(logits_real, real)
        self.opt_D.zero_grad(set_to_none=True)
        acc.backward(total_D)
        self.opt_D.step()
        if self.ada is not None:  # r_t: D's verdict on the (augmented) reals it just trained on
            self.ada.accumulate(logits_real)

        # G step: D frozen and called unwrapped (no DDP reduction for D, no stale D grads).
        self._train_d(False)
        with acc.autocast():
            out = self._D(self.D_raw, self._aug(fake), cond_fake, aux)
            if not aux:
                loss_G = g_loss(out, self.loss)
            elif self.adc:  # G: the fakes read as real images with the asked labels
                loss_G = g_loss(out[0], self.loss) + self.aux_weight * adc_loss(self.condition, out[1], cond_fake, True)
            else:  # AC-GAN: G makes the asked labels readable
                loss_G = g_loss(out[0], self.loss) + self.aux_weight * aux_loss(self.condition, out[1], cond_fake)
        self.opt_G.zero_grad(set_to_none=True)
        acc.backward(loss_G)
        self.opt_G.step()
        if self.G_ema is not None:
            update_ema(self.G_ema, self.G_raw, self.beta)
        if self.ada is not None:
            self.ada.step()  # every ADA_INTERVAL steps: r_t over all ranks moves p
        return loss_D.detach(), loss_G.detach(), logits_real.detach(), logits_fake.detach()
