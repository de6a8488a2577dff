"""Closes the passed socket no name claims (``$APP_PASSED_FD``) and puts a file of its own there.

As a program done with an extra socket does, whose next ``open`` takes the
lowest free number. The file is ``$APP_DATA_FILE``; the number is reused only
while it still holds a socket (so a successor that got nothing there is left
as it is).
"""

from __future__ import annotations

import os
import stat

import aiodaemon


@aiodaemon.on_startup
async def reuse(ctx: aiodaemon.Context) -> None:
    """Close the passed socket and open the data file at its number."""
    fd = int(os.environ["APP_PASSED_FD"])
    try:
        if not stat.S_ISSOCK(os.fstat(fd).st_mode):
            return
    except OSError:
        return
    data = os.open(os.environ["APP_DATA_FILE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.dup2(data, fd, inheritable=False)
    os.close(data)


async def main(ctx: aiodaemon.Context) -> None:
    """Serve until stopped."""
    await ctx.wait_stopping()
