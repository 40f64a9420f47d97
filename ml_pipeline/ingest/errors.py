"""Errors that ingest reports as one readable line naming the file and the record."""

from __future__ import annotations

from pathlib import Path

from musicrec.errors import UserError


class IngestError(UserError):
    """A file (or one record of it) that cannot be loaded. str() is the one-line message."""

    def __init__(self, path: Path, where: str, reason: str) -> None:
        self.path = path
        self.where = where
        self.reason = reason
        super().__init__(f"{path}: {where}: {reason}" if where else f"{path}: {reason}")


class BadRecord(ValueError):
    """One record failed validation; the caller adds file and record position."""
