"""One exception type for bad user input: the CLI prints its message as one line, exit 2."""


class AutohasError(Exception):
    """A user-facing error (bad option, missing file, unknown name): no traceback shown."""
