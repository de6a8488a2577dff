"""As PID 1: SIGHUP reaches the daemon half just after the split, before its run phase begins.

argv: options JSON. The daemon sends itself the signal (as the init's
forwarding of a ``docker kill -s HUP`` would) when it enters its working
directory, the step between the split and the run phase; it then reloads
(logged) and runs until stopped.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any

import aiodaemon
from aiodaemon._prefork._init import under_container_init

_sent = False


def _sighup_after_the_split(event: str, args: tuple[Any, ...]) -> None:
    global _sent
    if not _sent and event == "os.chdir" and under_container_init():
        _sent = True
        os.kill(os.getpid(), signal.SIGHUP)


@aiodaemon.on_reload
async def reload() -> None:
    """Nothing to reload: the log's ``reload finished`` is what the test looks for."""


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.wait_stopping()


sys.addaudithook(_sighup_after_the_split)
aiodaemon.run(main, **json.loads(sys.argv[1]))
