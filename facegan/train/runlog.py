"""log.txt in the run directory: everything the main process printed, as the terminal saw it.

A resumed run appends, with a line that marks where it started. Other ranks print nothing
(Accelerate's print is main-process only), so one file holds the run's whole story.
"""

import datetime
import sys


class _Tee:
    """A text stream that writes to the original stream and to the log file."""

    def __init__(self, stream, log):
        self._stream, self._log = stream, log

    def write(self, text):
        n = self._stream.write(text)
        try:
            self._log.write(text)
        except ValueError:  # the log was closed under a late writer: the terminal still gets it
            pass
        return n

    def flush(self):
        self._stream.flush()
        if not self._log.closed:
            self._log.flush()

    def __getattr__(self, name):  # isatty, fileno, encoding ... of the real stream
        return getattr(self._stream, name)


class RunLog:
    """Tee stdout and stderr into `path` until close() (main process only; a no-op elsewhere)."""

    def __init__(self, path: str, enabled: bool):
        self._file = None
        if not enabled:
            return
        import os

        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        self._file = open(path, "a", buffering=1, encoding="utf-8", errors="backslashreplace")
        stamp = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        self._file.write(f"==> {stamp}: {' '.join(sys.argv)}\n")
        self._saved = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = _Tee(sys.stdout, self._file), _Tee(sys.stderr, self._file)

    def close(self) -> None:
        if self._file is None:
            return
        sys.stdout, sys.stderr = self._saved
        self._file.close()
        self._file = None
