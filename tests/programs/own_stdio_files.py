"""A TARGET that closes fds 0-2 (an old daemon habit) and opens data files, which take them.

The files are ``data0.txt`` to ``data2.txt`` in the working directory; each
gets one line at the shutdown.
"""

from __future__ import annotations

import os
from typing import TextIO

import structlog

import aiodaemon

log = structlog.get_logger("own_stdio_files")
files: list[TextIO] = []


@aiodaemon.on_shutdown
async def write_data() -> None:
    """Write each data file's line through its own file object."""
    for n, file in enumerate(files):
        file.write(f"user data {n}\n")
        file.close()


async def main(ctx: aiodaemon.Context) -> None:
    """Put the data files on fds 0-2, then wait for the stop."""
    for fd in (0, 1, 2):
        os.close(fd)
    for n in range(3):
        files.append(open(f"data{n}.txt", "w"))  # noqa: SIM115  (closed at the shutdown)
    log.info("data files", fds=[file.fileno() for file in files])
    await ctx.wait_stopping()
