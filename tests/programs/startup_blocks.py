"""A startup hook that blocks the loop thread for a minute while the file RECORD.block exists.

It records ``blocking PID`` first (``started PID`` when it does not block).
``blocking_main`` blocks the same way, for a start with ``--ready manual``.
Run as ``aiodaemon run tests.programs.startup_blocks:main`` (with the record
file in ``AIODAEMON_TEST_RECORD``) or, as the other recorder programs, with
options (JSON) and the record file in argv.
"""

from __future__ import annotations

import os
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
