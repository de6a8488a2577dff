"""A detached daemon whose launcher gets SIGTERM the instant after its fork, before anything else.

argv: options (JSON), record. The signal is sent by a fork hook (the
launcher's own pid, as ``timeout`` or a closed terminal would send it), so it
lands in the window between the fork and the launcher's handlers.
"""

from __future__ import annotations

import os
import signal

import aiodaemon
from tests.programs.recorder import record, run

LAUNCHER = os.getpid()


def _signal_the_launcher() -> None:
    if os.getpid() == LAUNCHER:
        os.kill(LAUNCHER, signal.SIGTERM)


async def main(ctx: aiodaemon.Context) -> None:
    record("main")
    await ctx.wait_stopping()


os.register_at_fork(after_in_parent=_signal_the_launcher)
run(main)
