"""The package's one error type for bad user input."""


class UserError(RuntimeError):
    """Bad input from the command line or a config (a missing file, a
    checkpoint of another variant, an unknown option). Tools print it as one
    line, ``error: <message>``, and exit non-zero; the message names the fix.
    """
