"""A daemon logging an error raised from another (``raise ... from``); argv[1]: its log file."""

from __future__ import annotations

import sys

import structlog

import aiodaemon

log = structlog.get_logger()


async def main() -> None:
    try:
        try:
            raise ConnectionRefusedError("port 5432 refused")
        except OSError as exc:
            raise RuntimeError("database unavailable") from exc
    except RuntimeError:
        log.exception("cannot serve")


aiodaemon.run(main, log_file=sys.argv[1], detach=False)
