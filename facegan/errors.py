"""One error type for bad user input, reported as a single line with exit status 2."""

import functools
import os
import signal
import sys


def shown_path(path) -> str:
    """A path as text that can be printed or stored as UTF-8 whatever bytes its name holds:
    undecodable bytes (a Latin-1 `caf\\xe9.png`, held by Python as lone surrogates) become
    backslash escapes instead of a UnicodeEncodeError."""
    return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


class UserError(Exception):
    """A problem with what the user gave us (a path, a key, a value): one line, exit status 2."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so the same cleanup paths (temporaries removed, nothing
    half-written left) run for both."""


_handler_pid = None  # the process whose main() installed the handler


def _raise_terminated(signum, frame):
    if os.getpid() != _handler_pid:  # a forked worker inherited it: die as SIGTERM intends
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        return
    raise Terminated()


def cli_entry(prog):
    """Decorate a CLI main: a UserError prints one line and exits 2; SIGINT and SIGTERM clean up,
    say so and exit 130 / 143; output piped into `head` (closed early) ends quietly."""

    def wrap(main):
        @functools.wraps(main)
        def run(argv=None):
            global _handler_pid
            if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
                _handler_pid = os.getpid()
                signal.signal(signal.SIGTERM, _raise_terminated)
            for stream in (sys.stdout, sys.stderr):  # a file name in any encoding prints, escaped
                try:
                    stream.reconfigure(errors="backslashreplace")
                except (AttributeError, ValueError):  # not a TextIOWrapper (a notebook, a test's capture)
                    pass
            try:
                return main(argv)
            except UserError as err:
                print(f"{prog}: error: {shown_path(str(err))}", file=sys.stderr)
                sys.exit(2)
            except Terminated:
                print(f"{prog}: terminated", file=sys.stderr)
                sys.exit(143)
            except KeyboardInterrupt:  # nothing half-written is left looking finished; say so
                print(f"{prog}: interrupted", file=sys.stderr)
                sys.exit(130)
            except BrokenPipeError:
                # The reader went away (`| head`): point stdout at /dev/null so the interpreter's
                # final flush cannot raise again (the recipe of Python's signal documentation).
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
                sys.exit(0)

        return run

    return wrap
