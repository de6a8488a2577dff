"""A CLI target (``tests.programs.held_sighup_drop:main``) sent SIGHUP as it gives up its terminal.

Run as root with ``--user``, the session leader of a terminal: the SIGHUP
(``kill -HUP`` of a reload asked for during the start) comes while the run
phase holds it, at the open of ``/dev/tty`` that precedes the ``TIOCNOTTY``,
so it is pending when the terminal is given up. The daemon then waits to be
stopped: a reload (logged) shows the SIGHUP was kept.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

import aiodaemon

_sent = False


def _sighup_before_the_terminal_goes(event: str, args: tuple[Any, ...]) -> None:
    global _sent
    if _sent or event != "open" or args[0] != "/dev/tty":
        return
    if signal.SIGHUP in signal.pthread_sigmask(signal.SIG_BLOCK, []):
        _sent = True
        os.kill(os.getpid(), signal.SIGHUP)


@aiodaemon.on_reload
async def reload() -> None:
    """Nothing to reload: the log's ``reload finished`` is what the test looks for."""


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.wait_stopping()


sys.addaudithook(_sighup_before_the_terminal_goes)
