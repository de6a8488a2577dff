"""A daemon whose run phase meets a bug of aiodaemon's own: an internal error.

argv: options (JSON), record. The bug is made here (the runtime's step that
starts the services raises), after the loop's signal handlers are in place
and before any shutdown began; first it logs ``RECORDS`` numbered records,
which the final log drain must still write.
"""

from __future__ import annotations

import structlog

import aiodaemon
import aiodaemon._run._runtime
from aiodaemon._run._runtime import Runtime
from tests.programs.recorder import run

#: Records logged before the bug: all must reach the log.
RECORDS = 200


async def broken_start_services(rt: Runtime) -> bool:
    log = structlog.get_logger("program")
    for number in range(RECORDS):
        log.info("record", number=number)
    raise RuntimeError("a bug in aiodaemon's run phase")


# Where the runtime looks it up (imported there from _startup).
setattr(aiodaemon._run._runtime, "start_services", broken_start_services)  # noqa: B010


async def main() -> None:
    raise AssertionError("never runs: the services never started")


run(main)
