"""A test process that forks a copy of itself while its daemon runs (a multiprocessing worker).

The copy ends at once with ``os._exit(0)`` (as multiprocessing's do), or with
argument ``atexit`` runs the exit handlers first (as a copy that leaves through
the interpreter's exit does); the runner waits for it, stops the daemon and
prints the daemon's exit status. Run with ``-W error`` (a suite's
``filterwarnings = ["error"]``): nothing of the kit's may warn in either.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import sys
from pathlib import Path

from aiodaemon.testing import launch

PROGRAM = Path(__file__).with_name("kit_app.py")


async def main() -> None:
    """Launch, fork a copy that exits, stop the daemon."""
    async with launch(PROGRAM, listen={"echo": "127.0.0.1:0"}) as daemon:
        copy = os.fork()
        if copy == 0:
            if sys.argv[1:] == ["atexit"]:
                atexit._run_exitfuncs()
            os._exit(0)
        _, status = os.waitpid(copy, 0)
        print(os.waitstatus_to_exitcode(status), await daemon.stop())


asyncio.run(main())
