"""Domain errors. A UsageError is bad input: one line, exit status 2, nothing changed."""


class GamedayError(Exception):
    """Base class for errors the CLI reports as one line."""

    exit_code = 1


class UsageError(GamedayError):
    """Bad input (file, field or argument). Raised before any AWS call is made."""

    exit_code = 2
