"""An upgradeable daemon whose event loop a test can hold, for a forced exit during an upgrade.

Run as ``python upgrade_app.py`` (tests copy it under that name) with ``APP_PIDFILE``
and ``APP_LOG``. SIGWINCH: creates ``blocked`` beside the file, then holds the
loop in sync code until ``release`` exists there. A process started while
``slow`` exists there (the upgrade's successor) waits in its startup hook until
``release`` exists.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import aiodaemon

HERE = Path(__file__).resolve().parent


@aiodaemon.on_startup
async def prepare() -> None:
    """The successor: not ready until the test releases it."""
    if (HERE / "slow").exists():
        while not (HERE / "release").exists():  # noqa: ASYNC110 (a file the test writes)
            await asyncio.sleep(0.02)


@aiodaemon.on_signal(signal.SIGWINCH)
async def hold() -> None:
    """Hold the loop, as a blocking call would."""
    (HERE / "blocked").touch()
    while not (HERE / "release").exists():
        time.sleep(0.01)  # the point: the loop does not turn


async def main(ctx: aiodaemon.Context) -> None:
    """Wait for the stop."""
    await ctx.wait_stopping()


if __name__ == "__main__":
    aiodaemon.run(
        main, pidfile=os.environ["APP_PIDFILE"], log_file=os.environ["APP_LOG"], detach=True
    )
