"""The NaN watch: a loss that goes NaN or inf stops the run at the next check, naming its first
bad step, without a host sync on every step."""

import torch

from . import checkpoint as ckpt


class NonFiniteLoss(RuntimeError):
    pass


class NanWatch:
    """Notes each step's loss on the device; `check` is a collective every rank calls at the same
    step (the trainer's sync cadence, and before every checkpoint)."""

    def __init__(self, rt, checkpoint_root: str):
        self.rt, self.checkpoint_root = rt, checkpoint_root
        # First step with a non-finite loss on this rank (-1: none), kept on the device so the
        # step never waits for the host.
        self.first_bad = torch.full((), -1, dtype=torch.long, device=rt.device)

    def note(self, loss_sum: torch.Tensor, step: int) -> None:
        """Remember step if loss_sum (a scalar on the device) is NaN or inf and none was before."""
        bad_now = ~torch.isfinite(loss_sum)
        self.first_bad.copy_(torch.where(bad_now & (self.first_bad < 0), torch.full_like(self.first_bad, step),
                                         self.first_bad))

    def check(self) -> None:
        """Raise NonFiniteLoss, naming the first bad step and the last good checkpoint, if any rank
        saw one (a host sync)."""
        acc = self.rt.accelerator
        bad = (self.first_bad >= 0).float().view(1)
        if self.rt.world > 1:
            bad = acc.reduce(bad, reduction="sum")
        if bad.item() > 0:
            firsts = acc.gather(self.first_bad.view(1)).tolist() if self.rt.world > 1 else [self.first_bad.item()]
            last = ckpt.list_checkpoints(self.checkpoint_root)
            raise NonFiniteLoss(f"non-finite loss at step {min(s for s in firsts if s >= 0)}; stopping. "
                                f"Last good checkpoint: {last[0] if last else 'none'}")
