"""What a run has done over its whole life, across resumes: wall-clock seconds, and samples read
and skipped as bad. Each continues from the values its checkpoint recorded."""

import time

import torch


class RunClock:
    """Wall-clock seconds of the run: the checkpoint's wall_s plus this process's time since start."""

    def __init__(self, state: dict = None):
        self.before = (state or {}).get("wall_s", 0.0)
        self.t0 = time.time()

    def wall_s(self) -> float:
        return self.before + time.time() - self.t0


class DataTotals:
    """Samples read and bad over the run, summed over ranks: the checkpoint's data_read and data_bad
    plus what this process's loaders counted (facegan.data.bad_data.Counts)."""

    def __init__(self, state: dict = None):
        self.before_read, self.before_bad = (state or {}).get("data_read", 0), (state or {}).get("data_bad", 0)

    def totals(self, read: int, bad: int) -> dict:
        """{"data_read", "data_bad"} of the run, given this process's counts already summed over ranks."""
        return {"data_read": self.before_read + read, "data_bad": self.before_bad + bad}

    def gather(self, rt, counts) -> dict:
        """totals() of every rank's loader counts, summed over ranks (a collective)."""
        seen, bad = counts.totals()
        t = torch.tensor([seen, bad], dtype=torch.float64 if rt.kind != "mps" else torch.float32, device=rt.device)
        if rt.world > 1:
            t = rt.accelerator.reduce(t, reduction="sum")
        return self.totals(int(t[0].item()), int(t[1].item()))
