"""A daemon under a service manager whose startup hook runs children; argv: the log file.

The first child is another aiodaemon daemon in the foreground (a notify user
if it finds NOTIFY_SOCKET); the second prints the manager's variables it sees.
"""

from __future__ import annotations

import asyncio
import sys

import aiodaemon

_CHILD_DAEMON = """\
import asyncio, aiodaemon

async def main() -> None:
    await asyncio.sleep(0)

aiodaemon.run(main, detach=False, log_file={log!r})
"""
_PRINT_VARIABLES = (
    "import os; print([n for n in ('NOTIFY_SOCKET', 'WATCHDOG_USEC', 'WATCHDOG_PID')"
    " if n in os.environ])"
)


@aiodaemon.on_startup
async def run_children() -> None:
    child_log = sys.argv[1] + ".child"
    helper = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CHILD_DAEMON.format(log=child_log)
    )
    assert await helper.wait() == 0
    printer = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _PRINT_VARIABLES, stdout=asyncio.subprocess.PIPE
    )
    seen, _ = await printer.communicate()
    aiodaemon.sd_notify(f"STATUS=children saw {seen.decode().strip()}")


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.wait_stopping()


aiodaemon.run(main, log_file=sys.argv[1])
