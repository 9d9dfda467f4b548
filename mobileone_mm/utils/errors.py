"""The package's one error type for bad user input, and its one way of
warning a user."""
import sys


class UserError(RuntimeError):
    """Bad input from the command line or a config (a missing file, a
    checkpoint of another variant, an unknown option). Tools print it as one
    line, ``error: <message>``, and exit non-zero; the message names the fix.
    """


def warn(message: str) -> None:
    """One ``warning: ...`` line on stderr (the tools' format)."""
    print(f'warning: {message}', file=sys.stderr, flush=True)


def note(message: str) -> None:
    """One ``note: ...`` line on stderr: what a tool did that the user
    should know (a download, a check)."""
    print(f'note: {message}', file=sys.stderr, flush=True)
