"""A detached daemon whose startup hook ends it without a verdict.

argv: the pidfile, then how (default ``kill``): ``kill`` (SIGKILL, as the OOM
killer does), ``segv`` (SIGSEGV, as a crash in native code), ``exit3``
(``os._exit(3)``).
"""

from __future__ import annotations

import os
import resource
import signal
import sys

import aiodaemon

HOW = sys.argv[2] if len(sys.argv) > 2 else "kill"


@aiodaemon.on_startup
async def die() -> None:
    if HOW == "exit3":
        os._exit(3)
    # No core file left in the working directory (/) by the test.
    resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))
    os.kill(os.getpid(), signal.SIGSEGV if HOW == "segv" else signal.SIGKILL)


async def main() -> None:
    pass


aiodaemon.run(main, pidfile=sys.argv[1], detach=True)
