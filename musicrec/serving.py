"""Running an ASGI app factory under uvicorn (the `serve` commands)."""

from __future__ import annotations

import uvicorn

from musicrec.errors import UserError


def run_server(
    factory: str, host: str, port: int, workers: int, *, embedded_only_single: bool = False
) -> None:
    if embedded_only_single and workers > 1:
        # Each worker would run its own in-process event queue consumer on the same file.
        raise UserError("--workers > 1 needs services mode (KAFKA_BOOTSTRAP_SERVERS)")
    uvicorn.run(
        factory,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        access_log=False,  # per-request logs cost more than the request; /metrics counts them
    )
