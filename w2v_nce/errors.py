"""The one exception type users see: a bad input, reported as a single line."""


class UserError(ValueError):
    """Bad input or options. The CLI prints `error: <message>` and exits with status 2."""
