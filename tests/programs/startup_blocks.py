"""A startup hook that blocks the loop thread for a minute while the file RECORD.block exists.

It records ``blocking PID`` first (``started PID`` when it does not block);
while RECORD.child exists it starts ``sleep 600`` first and records ``child PID``;
while RECORD.gil exists it blocks holding the GIL (a regular expression's
backtracking), so that no thread of the daemon runs: only a SIGKILL ends it.
``blocking_main`` blocks the same way, for a start with ``--ready manual``.
Run as ``aiodaemon run tests.programs.startup_blocks:main`` (with the record
file in ``AIODAEMON_TEST_RECORD``) or, as the other recorder programs, with
options (JSON) and the record file in argv.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import aiodaemon


def _record_path() -> str:
    return os.environ.get("AIODAEMON_TEST_RECORD") or sys.argv[2]


def _record(line: str) -> None:
    with open(_record_path(), "a") as f:
        f.write(line + "\n")


@aiodaemon.on_startup
async def block() -> None:
    if not os.path.exists(_record_path() + ".block"):
        _record(f"started {os.getpid()}")
        return
    _record(f"blocking {os.getpid()}")
    if os.path.exists(_record_path() + ".child"):
        # A worker started before the hook blocks: what the start's SIGKILL must take too.
        _record(f"child {subprocess.Popen(['sleep', '600']).pid}")
    if os.path.exists(_record_path() + ".gil"):
        # Exponential backtracking in C, which never lets the GIL go.
        re.match(r"(a|aa)+$", "a" * 200 + "b")
    time.sleep(60)  # blocks the loop thread on purpose: a sync call in a startup hook


async def main(ctx: aiodaemon.Context) -> None:
    _record("main running")
    await ctx.wait_stopping()


async def blocking_main(ctx: aiodaemon.Context) -> None:
    """For ``--ready manual``: main runs before ready, and blocks the loop."""
    _record(f"blocking {os.getpid()}")
    time.sleep(60)  # blocks the loop thread on purpose, before ctx.ready()


if __name__ == "__main__":
    from tests.programs.recorder import run

    run(main)
