"""One error type for bad user input, reported as a single line with exit status 2."""

import functools
import sys


class UserError(Exception):
    """A problem with what the user gave us (a path, a key, a value): one line, exit status 2."""


def cli_entry(prog):
    """Decorate a CLI main so a UserError prints one line and exits 2, with no traceback."""

    def wrap(main):
        @functools.wraps(main)
        def run(argv=None):
            try:
                return main(argv)
            except UserError as err:
                print(f"{prog}: error: {err}", file=sys.stderr)
                sys.exit(2)
            except KeyboardInterrupt:  # nothing half-written is left looking finished; say so
                print(f"{prog}: interrupted", file=sys.stderr)
                sys.exit(130)

        return run

    return wrap
