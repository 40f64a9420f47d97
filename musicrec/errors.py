"""Base error for problems the user can fix (bad input, missing setup)."""


class UserError(Exception):
    """Shown to the user as its message alone, with a non-zero exit code (CLI) or a 4xx (API)."""

    exit_code = 1
