"""As PID 1: a signal reaches the daemon half just after the split, before its run phase begins.

argv: options JSON, the signal's name (SIGHUP, SIGTERM, ...). The daemon sends
itself the signal (as the init's forwarding of a ``docker kill -s HUP`` would)
when it enters its working directory, the step between the split and the run
phase; it then handles it as it would later (a reload, a stop, its
``on_signal`` handler for SIGALRM, ...), and runs until stopped unless it was
a stop.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any

import structlog

import aiodaemon
from aiodaemon._prefork._init import under_container_init

SIGNAL = signal.Signals[sys.argv[2]]
_sent = False


def _signal_after_the_split(event: str, args: tuple[Any, ...]) -> None:
    global _sent
    if not _sent and event == "os.chdir" and under_container_init():
        _sent = True
        os.kill(os.getpid(), SIGNAL)


@aiodaemon.on_reload
async def reload() -> None:
    """Nothing to reload: the log's ``reload finished`` is what the test looks for."""


@aiodaemon.on_signal(signal.SIGALRM)
async def alarm() -> None:
    """SIGALRM's default action ends a process: handled, it is logged."""
    structlog.get_logger("app").info("alarm handled")


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.wait_stopping()


sys.addaudithook(_signal_after_the_split)
# A workdir given: in the foreground its chdir is the step this program hooks.
aiodaemon.run(main, **{"workdir": "/", **json.loads(sys.argv[1])})
