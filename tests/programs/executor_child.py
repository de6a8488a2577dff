"""main waits, through run_in_executor, for a ``subprocess.run`` whose child never ends.

argv: options JSON, the record file. The child's pid is recorded as ``child PID``.
"""

from __future__ import annotations

import asyncio
import subprocess

from tests.programs.recorder import record, run


def wait_for_child() -> int:
    # Not the daemon's stderr: the test reads that to its end.
    with subprocess.Popen(["sleep", "60"], stderr=subprocess.DEVNULL) as child:
        record(f"child {child.pid}")
        return child.wait()


async def main() -> None:
    await asyncio.get_running_loop().run_in_executor(None, wait_for_child)


run(main)
