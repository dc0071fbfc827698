"""Bad data at training time: skipped, counted, and fatal only past data.max_bad_fraction.

Every reader (a loader worker, the device cache, the eval stream) keeps a BadDataBudget. Its
counts go to a small shared array, so the trainer can log the totals of all its loader workers
without another channel; the first few problems are printed with their shard and reason.
"""

import multiprocessing
import re
from typing import Optional

from ..errors import UserError
from ..log import get_logger

SHOWN = 3  # problems printed per reader; the rest are only counted

log = get_logger()


class BadData(UserError):
    """Too much of the data is unreadable: one line, exit status 2.

    Raised in a DataLoader worker, it reaches the trainer re-built from torch's wrapper text
    (the worker's whole traceback); keep only our own last line of it."""

    def __init__(self, message: str):
        if "Traceback" in message:
            last = [line for line in message.strip().splitlines() if line.strip()][-1]
            message = last.split(f"{type(self).__name__}: ", 1)[-1]
        super().__init__(message)


class Counts:
    """Samples read and samples skipped, one pair per reader slot, shared with worker processes."""

    def __init__(self, slots: int = 1):
        self.values = multiprocessing.RawArray("q", 2 * max(1, slots))

    def set(self, slot: int, seen: int, bad: int) -> None:
        self.values[2 * slot], self.values[2 * slot + 1] = seen, bad

    def totals(self):
        """(seen, bad) summed over every slot."""
        v = self.values[:]
        return sum(v[0::2]), sum(v[1::2])


class BadDataBudget:
    """One reader's allowance of bad samples (data.max_bad_fraction) and its counts, which pass it
    raises BadData. share: the samples it expects per pass when the manifest says so;
    the bad fraction is then taken over at least a whole pass, so one damaged shard read first
    is judged against everything the reader will read, not against itself."""

    def __init__(self, max_fraction: float, share: Optional[int] = None, counts: Optional[Counts] = None,
                 slot: int = 0, min_seen: int = 200):
        self.max_fraction, self.share, self.min_seen = max_fraction, share, min_seen
        self.counts, self.slot = counts, slot
        self.seen = self.bad = self.shown = 0
        self.empty_shards: list = []  # URLs of shards that gave nothing, in the order met
        # Shards of unknown size (bare URLs without a manifest): what the readable ones held, so
        # one that gives nothing is counted as a typical shard's samples, not as one sample.
        self.shards_read = self.samples_in_read_shards = 0
        self._unsized_empty: list = []  # (url, reason) waiting for a first readable shard to size them

    def shard_read(self, n: int) -> None:
        """A shard of unknown size delivered n samples; sizes any empty ones met before it."""
        self.shards_read += 1
        self.samples_in_read_shards += n
        waiting, self._unsized_empty = self._unsized_empty, []
        for url, reason in waiting:
            self.shard_empty(url, reason)

    def shard_empty(self, url: str, reason: str, expected: Optional[int] = None) -> None:
        """A whole shard gave nothing. Counted as the samples the manifest says it holds
        (expected), else as the mean of the shards this reader could read; with none read yet,
        the count waits for the first one (a reader whose every shard fails stops anyway: its
        pass gives less than a batch)."""
        if expected is None:
            if not self.shards_read:
                self._unsized_empty.append((url, reason))
                return
            expected = max(1, round(self.samples_in_read_shards / self.shards_read))
            reason += f" (nothing read; counted as {expected} samples, the mean of the readable shards)"
        if url not in self.empty_shards:
            self.empty_shards.append(url)
        self.failed(url, reason, expected)

    def good(self, n: int = 1) -> None:
        self.seen += n
        self._publish()

    def failed(self, where: str, reason: str, n: int = 1) -> None:
        """n samples at `where` were lost for `reason`: count them, show the first few, and
        stop the run once the bad fraction passes the threshold."""
        self.seen += n
        self.bad += n
        self._publish()
        if self.shown < SHOWN:
            self.shown += 1
            what = "sample" if n == 1 else f"{n} samples"
            line = f"skipping bad {what} at {where}" if n else f"problem at {where}, no sample lost"
            # every rank's readers meet their own shards: each says what it skipped
            log.warning(f"{line}: {reason}", extra={"all_ranks": True})
        base = max(self.seen, self.share or 0)
        if (self.share or self.seen >= self.min_seen) and self.bad / base > self.max_fraction:
            empty = ""
            if self.empty_shards:
                shown = ", ".join(self.empty_shards[:SHOWN]) + (", ..." if len(self.empty_shards) > SHOWN else "")
                empty = f"; {len(self.empty_shards)} shard(s) gave nothing: {shown}"
            raise BadData(f"too much bad data: {self.bad} of {base} samples unreadable "
                          f"({self.bad / base:.1%}, over data.max_bad_fraction={self.max_fraction:g}){empty}; "
                          f"last at {where}: {reason}")

    def _publish(self):
        if self.counts is not None:
            self.counts.set(self.slot, self.seen, self.bad)


def reason_of(err: BaseException) -> str:
    """An exception as one short line (WebDataset appends the stream object to messages)."""
    if isinstance(err, OSError) and err.strerror:  # args[0] would be the bare errno ("FileNotFoundError: 2")
        text = err.strerror
    else:
        text = str(err.args[0]) if getattr(err, "args", None) else str(err)
    text = re.sub(r" ?(@ )?<[^<>]* at 0x[0-9a-f]+>| @ <shard stream>", "", text)  # says nothing to a user
    text = text.strip().splitlines()[0] if text.strip() else ""
    return f"{type(err).__name__}: {text}"[:200] if text else type(err).__name__
