"""Console output and error handling shared by every CLI: a failure is one readable line on
stderr and an exit code, never a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import DBAPIError

from musicrec.errors import UserError

console = Console()
err_console = Console(stderr=True)

EXIT_BAD_INPUT = 1
EXIT_ENVIRONMENT = 3  # 2 is click's usage error


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def cli_errors() -> Iterator[None]:
    """Map known failures to one line and an exit code."""
    try:
        yield
    except UserError as exc:
        fail(str(exc), exc.exit_code)
    except DBAPIError as exc:
        fail(f"database error: {_first_line(exc.orig or exc)}", EXIT_ENVIRONMENT)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def counts_table(title: str, counts: dict[str, int]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("what")
    table.add_column("count", justify="right")
    for name, value in counts.items():
        table.add_row(name.replace("_", " "), f"{value:,}")
    return table
