"""Every message facegan prints goes through the standard `logging` module, under the "facegan"
logger, and is written in one place: the handler installed here.

- One prefix, made by the handler: library messages read `facegan: ...`; a command's own messages
  (a logger from `get_logger("facegan-sample")`) read `facegan-sample: ...`. A training's status
  lines (`status_logger()`) carry none: they read as a table and are found by their first word.
- One place per level: INFO goes to stdout, WARNING and above to stderr (the streams are looked up
  at each message, so a notebook's or a test's capture sees them).
- Rank gating is Accelerate's print's: when its state exists (a training, a multi-process eval)
  only the main process of each machine speaks, unless a call passes `extra={"all_ranks": True}`.
  Before that state exists (or without Accelerate: packing never imports it, nor torch) the
  launcher's LOCAL_RANK says which process that is.
- A run's log.txt is a FileHandler on the same logger for the run's duration (`run_log_file`), on
  the run's main process.

Errors the user can fix are not logged here: they are raised as UserError and printed once by
facegan.errors.cli_entry.
"""

import contextlib
import datetime
import logging
import os
import sys

ROOT = "facegan"
TOOLS = ROOT + ".tool."  # loggers of the commands: facegan.tool.facegan-sample -> "facegan-sample: "
STATUS = ROOT + ".status"  # status lines, written bare


def prefixed(message: str, tool: str = None) -> str:
    """A message as the handler writes it (for text kept elsewhere too, e.g. config.yaml's notes)."""
    return f"{tool or ROOT}: {message}"


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        if record.name == STATUS:
            return record.getMessage()
        return prefixed(record.getMessage(), record.name[len(TOOLS):] if record.name.startswith(TOOLS) else None)


def _is_local_main_process() -> bool:
    state = sys.modules.get("accelerate.state")
    if state is not None and state.PartialState._shared_state:
        return state.PartialState().is_local_main_process
    try:  # torchrun and `accelerate launch` set LOCAL_RANK before any process group exists
        return int(os.environ.get("LOCAL_RANK", "0")) == 0
    except ValueError:
        return True


class _LocalMainProcessOnly(logging.Filter):
    """Drops records on processes other than each machine's main one, as Accelerate's print does
    (every node's own output says how the run goes there), without importing Accelerate where it
    is not in use (packing)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(record, "all_ranks", False) or _is_local_main_process()


class _StdStreams(logging.Handler):
    """INFO to the current sys.stdout, WARNING and above to the current sys.stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = sys.stderr if record.levelno >= logging.WARNING else sys.stdout
            text = self.format(record) + "\n"
            try:
                stream.write(text)
            except UnicodeEncodeError:  # a file name in any encoding prints, escaped
                encoding = getattr(stream, "encoding", None) or "utf-8"
                stream.write(text.encode(encoding, "backslashreplace").decode(encoding))
            stream.flush()
        except Exception:  # a closed or broken stream must not stop a training
            self.handleError(record)


def _root() -> logging.Logger:
    logger = logging.getLogger(ROOT)
    if not any(isinstance(h, _StdStreams) for h in logger.handlers):
        handler = _StdStreams()
        handler.setFormatter(_Formatter())
        handler.addFilter(_LocalMainProcessOnly())
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False  # the application's root logger does not print facegan's lines twice
    return logger


def get_logger(tool: str = None) -> logging.Logger:
    """The logger for library messages (`facegan: ...`), or for a command's own (`tool: ...`,
    e.g. get_logger("facegan-sample")). Installs facegan's handler on first use."""
    _root()
    return logging.getLogger(TOOLS + tool if tool else ROOT)


def status_logger() -> logging.Logger:
    """The logger of a training's status lines (`kimg ...`), written without a prefix."""
    _root()
    return logging.getLogger(STATUS)


@contextlib.contextmanager
def run_log_file(path: str, enabled: bool = True):
    """Within the block, every facegan message is also appended to `path`
    (UTF-8, undecodable bytes escaped), after a line with the time and the command; `enabled`
    False (other ranks) does nothing. A resumed run appends to the same file."""
    if not enabled:
        yield
        return
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    handler = logging.FileHandler(path, mode="a", encoding="utf-8", errors="backslashreplace")
    handler.setFormatter(_Formatter())
    handler.addFilter(_LocalMainProcessOnly())
    stamp = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    handler.stream.write(f"==> {stamp}: {' '.join(sys.argv)}\n")
    handler.flush()
    root = _root()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()
