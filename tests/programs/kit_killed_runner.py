"""A test runner that dies hard while its daemon runs: no cleanup, no atexit.

Writes the daemon's pid and its child's (``KIT_CHILD``: a ``sleep`` it never
stops) to $KIT_PIDS, then ends with ``os._exit`` (as pytest-timeout does, or
as a SIGKILL would). With ``KIT_FORK``, it first forks a helper that outlives
it (a multiprocessing worker, a server a fixture forked), whose pid comes third.
With ``KIT_KILL_WATCHDOG``, it kills the kit's watchdog once the daemon runs and
launches a second daemon before it dies, whose pid comes third.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from aiodaemon._kit import _process
from aiodaemon.testing import launch

PROGRAM = Path(__file__).with_name("kit_app.py")


async def main() -> None:
    """Launch, report the pids, die without leaving the block."""
    async with launch(PROGRAM, listen={"echo": "127.0.0.1:0"}, env={"KIT_CHILD": "1"}) as daemon:
        child = (await daemon.wait_for_record("child started"))["child"]
        pids = f"{daemon.pid} {child}"
        if os.environ.get("KIT_FORK"):
            helper = os.fork()
            if helper == 0:
                # Off the test's pipes, whose end it waits for; only the kit's are left.
                devnull = os.open(os.devnull, os.O_RDWR)
                os.dup2(devnull, 1)
                os.dup2(devnull, 2)
                time.sleep(120)
                os._exit(0)
            pids += f" {helper}"
        if os.environ.get("KIT_KILL_WATCHDOG"):
            watchdog = _process._watchdog
            assert watchdog is not None
            watchdog.process.kill()
            watchdog.process.wait()
            async with launch(PROGRAM, listen={"echo": "127.0.0.1:0"}) as second:
                await _die(f"{pids} {second.pid}")
        await _die(pids)


async def _die(pids: str) -> None:
    """Write ``pids`` where the test reads them, and end at once."""
    await asyncio.to_thread(Path(os.environ["KIT_PIDS"]).write_text, pids + "\n")
    os._exit(7)


asyncio.run(main())
