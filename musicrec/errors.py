"""Base error for problems the user can fix (bad input, missing setup), and how any error is
shown in one line."""


class UserError(Exception):
    """Shown to the user as its message alone, with a non-zero exit code (CLI) or a 4xx (API)."""

    exit_code = 1


def one_line(exc: BaseException) -> str:
    """An exception's first line, for log lines and error messages."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
