"""Calls ``aiodaemon.run()`` once per pidfile given: in the foreground, the last one detached.

argv: options (JSON), record, then pidfile paths; each run logs to its pidfile's
path plus ``.jsonl``. main returns at once. The status of each foreground run
is recorded (a detached run's launcher exits with the daemon's verdict).
"""

from __future__ import annotations

import json
import os
import sys

import aiodaemon
from tests.programs.recorder import record


async def main() -> None:
    pass


options = json.loads(sys.argv[1])
launcher = os.getpid()
pidfiles = sys.argv[3:]
for i, pidfile in enumerate(pidfiles):
    try:
        aiodaemon.run(
            main,
            **options,
            detach=i == len(pidfiles) - 1,
            pidfile=pidfile,
            log_file=f"{pidfile}.jsonl",
        )
    except SystemExit as exc:
        if os.getpid() != launcher:
            raise  # the detached run's daemon: its run() ends the process
        record(f"run {i} ended {exc.code}")
