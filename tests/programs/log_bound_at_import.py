"""A daemon whose module binds its structlog loggers at import, before logging starts.

``log = structlog.get_logger().bind(...)`` at module level is common in
existing code: the bound logger is built from structlog's defaults then, since
aiodaemon configures logging only in the daemon. argv: the log file, then
``run`` to log again in a second ``run()`` of the same process.
"""

from __future__ import annotations

import sys

import structlog

import aiodaemon

bound = structlog.get_logger().bind(component="db")
fresh = structlog.get_logger("payments").new(component="gateway")


async def main() -> None:
    bound.debug("below the level")
    bound.info("from a logger bound at import", run=1)
    fresh.warning("from a logger made with new() at import")
    try:
        raise ValueError("bad row")
    except ValueError:
        bound.exception("failed at import-bound logger")


async def second() -> None:
    bound.info("from a logger bound at import", run=2)


if __name__ == "__main__":
    try:
        aiodaemon.run(main, log_file=sys.argv[1], detach=False)
    except SystemExit:
        if sys.argv[2:] != ["again"]:
            raise
    aiodaemon.run(second, log_file=sys.argv[1] + ".2", detach=False)
