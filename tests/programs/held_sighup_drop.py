"""A CLI target (``tests.programs.held_sighup_drop:main``) sent SIGHUP as it gives up its terminal.

Run as root with ``--user``, the session leader of a terminal: the SIGHUP
(``kill -HUP`` of a reload asked for during the start) comes while the run
phase holds it, so it is pending when the terminal is given up. When, is
``AIODAEMON_TEST_SIGHUP_AT``: ``open`` (the default), sent by the daemon
itself at the open of ``/dev/tty`` that precedes the ``TIOCNOTTY``; ``ioctl``,
sent by another process at the ``TIOCNOTTY`` itself, after the daemon looked
whether one was pending and just before the kernel's own hang-up comes. The
daemon then waits to be stopped: a reload (logged) shows the SIGHUP was kept.
"""

from __future__ import annotations

import os
import signal
import sys
import termios
from typing import Any

import aiodaemon

AT = os.environ.get("AIODAEMON_TEST_SIGHUP_AT", "open")
_sent = False


def _sighup_before_the_terminal_goes(event: str, args: tuple[Any, ...]) -> None:
    global _sent
    if _sent or signal.SIGHUP not in signal.pthread_sigmask(signal.SIG_BLOCK, []):
        return
    if AT == "open" and event == "open" and args[0] == "/dev/tty":
        _sent = True
        os.kill(os.getpid(), signal.SIGHUP)
    elif AT == "ioctl" and event == "fcntl.ioctl" and args[1] == termios.TIOCNOTTY:
        _sent = True
        daemon = os.getpid()
        sender = os.fork()
        if sender == 0:
            os.kill(daemon, signal.SIGHUP)
            os._exit(0)
        os.waitpid(sender, 0)


@aiodaemon.on_reload
async def reload() -> None:
    """Nothing to reload: the log's ``reload finished`` is what the test looks for."""


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.wait_stopping()


sys.addaudithook(_sighup_before_the_terminal_goes)
