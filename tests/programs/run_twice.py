"""Calls ``aiodaemon.run()`` twice in one process, each run with its own log file.

argv: options (JSON, without ``log_file``), record, the first run's log file,
the second run's log file. main logs one record with a module-level structlog
logger and returns; the status of each run is recorded.
"""

from __future__ import annotations

import json
import sys

import structlog

import aiodaemon
from tests.programs.recorder import record

log = structlog.get_logger("app")
RUNS = iter(("first", "second"))


async def main() -> None:
    log.info("main ran", run=next(RUNS))


options = json.loads(sys.argv[1])
for log_file in sys.argv[3:5]:
    try:
        aiodaemon.run(main, **options, log_file=log_file)
    except SystemExit as exc:
        record(f"run ended {exc.code}")
