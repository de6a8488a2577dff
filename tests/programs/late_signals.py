"""Stops on SIGTERM, then waits at exit (after the loop closed) for the file ``release``.

argv: options (JSON), record, release. An ``atexit`` function, as programs
have them, records "at exit" and waits (up to 30 s) so the test can signal
the daemon once its event loop is gone.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import time

import aiodaemon

RECORD, RELEASE = sys.argv[2], sys.argv[3]


def record(line: str) -> None:
    with open(RECORD, "a") as f:
        f.write(line + "\n")


def wait_for_release() -> None:
    record("at exit")
    deadline = time.monotonic() + 30
    while not os.path.exists(RELEASE) and time.monotonic() < deadline:
        time.sleep(0.01)
    record("released")


atexit.register(wait_for_release)


async def main(ctx: aiodaemon.Context) -> None:
    record("main running")
    await ctx.wait_stopping()


aiodaemon.run(main, **json.loads(sys.argv[1]))
