"""Stops on SIGTERM, then waits at exit (after the loop closed) for the file ``release``.

argv: options (JSON), record, release. An ``atexit`` function, as programs
have them, records "at exit" and waits (up to 30 s) so the test can signal
the daemon once its event loop is gone.
"""

from __future__ import annotations

import atexit
import sys

import aiodaemon
from tests.programs.recorder import record, run, wait_for_file


def wait_for_release() -> None:
    record("at exit")
    wait_for_file(sys.argv[3])
    record("released")


atexit.register(wait_for_release)


async def main(ctx: aiodaemon.Context) -> None:
    record("main running")
    await ctx.wait_stopping()


run(main)
