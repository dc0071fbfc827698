"""Progress with a rate and an ETA for every long step, through tqdm, in three places:

- a terminal: tqdm's live bar on stderr;
- a pipe or a log file: one plain line every FACEGAN_PROGRESS_S seconds (default 15) and one at
  the end, never carriage-return bar spam (`tqdm` writes '\\r' updates; they become lines here);
- a Jupyter notebook: tqdm's notebook widget (tqdm.auto), falling back to lines without ipywidgets.

Work done within 2 seconds shows nothing. FACEGAN_PROGRESS=off silences every bar (tests that compare output, scripts that want quiet).
"""

import os
import sys
from typing import Iterable, Optional, TextIO

from tqdm import tqdm as _std_tqdm

DEFAULT_LOG_INTERVAL_S = 15.0
SHOW_AFTER_S = 2.0  # a bar appears only for work still running after this long


class _Lines:
    """A file-like wrapper that turns tqdm's '\\r'-refreshed bar into whole lines for logs."""

    def __init__(self, stream: TextIO):
        self.stream = stream

    def write(self, text: str) -> None:
        text = text.replace("\r", "").replace("\x1b[A", "").rstrip()
        if text:
            self.stream.write(text + "\n")

    def flush(self) -> None:
        try:
            self.stream.flush()
        except (OSError, ValueError):
            pass


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where tqdm.auto draws a widget)."""
    if "ipykernel" not in sys.modules:
        return False
    try:
        from IPython import get_ipython

        shell = get_ipython()
        return shell is not None and "IPKernelApp" in getattr(shell, "config", {})
    except Exception:
        return False


def log_interval_s() -> float:
    try:
        return max(0.0, float(os.environ.get("FACEGAN_PROGRESS_S", DEFAULT_LOG_INTERVAL_S)))
    except ValueError:
        return DEFAULT_LOG_INTERVAL_S


def progress(iterable: Optional[Iterable] = None, *, total: Optional[float] = None, desc: str = "",
             unit: str = "it", stream: Optional[TextIO] = None, disable: bool = False, **kwargs):
    """A tqdm progress bar (rate and ETA) that suits where it is shown; use as tqdm is used:
    `for x in progress(xs, desc="FID features", unit="img")` or `with progress(total=n) as bar:
    bar.update(k)`. stream defaults to sys.stderr. Extra kwargs go to tqdm (unit_scale, ...)."""
    stream = sys.stderr if stream is None else stream
    disable = disable or os.environ.get("FACEGAN_PROGRESS", "").lower() in ("off", "0", "no", "false")
    if in_notebook() and stream in (sys.stderr, sys.stdout):
        try:
            from tqdm.notebook import tqdm as nb_tqdm

            return nb_tqdm(iterable, total=total, desc=desc, unit=unit, disable=disable, **kwargs)
        except Exception:  # no ipywidgets: lines below
            pass
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    interval = log_interval_s()
    # Work that ends within a couple of seconds shows no bar at all: a failing command's output
    # stays its one error line, and a fast step says nothing it need not.
    kwargs.setdefault("delay", min(SHOW_AFTER_S, interval))
    if tty:
        return _std_tqdm(iterable, total=total, desc=desc, unit=unit, file=stream, disable=disable,
                         dynamic_ncols=True, **kwargs)
    return _std_tqdm(iterable, total=total, desc=desc, unit=unit, file=_Lines(stream), disable=disable,
                     mininterval=interval, maxinterval=max(interval, 1.0), miniters=1, ascii=True,
                     ncols=100, **kwargs)
