"""Records every file of aiodaemon's package the daemon opens once ``main`` runs.

An audit hook sees every ``open`` (imports included). ``main`` first checks that
the hook sees an open of the package (and writes ``armed <pid>`` to
``$LATE_OPENS``), then every later open of a package file is a line
``<pid> <path>`` there. Has a reload hook, so that ``reload`` runs one.
"""

from __future__ import annotations

import os
import sys

import aiodaemon

PACKAGE = os.path.dirname(aiodaemon.__file__) + os.sep
RECORD = os.environ["LATE_OPENS"]
_watching = False
_seen_check = False


def _write(line: str) -> None:
    fd = os.open(RECORD, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)


def _on_audit(event: str, args: tuple[object, ...]) -> None:
    global _seen_check
    if event != "open" or not isinstance(args[0], str) or not args[0].startswith(PACKAGE):
        return
    if _watching:
        _write(f"{os.getpid()} {args[0]}")
    else:
        _seen_check = True


sys.addaudithook(_on_audit)


@aiodaemon.on_reload
async def reload() -> None:
    """Nothing to reload: the reload machinery itself is what runs."""


async def main(ctx: aiodaemon.Context) -> None:
    """Arm the record, then idle until stopped."""
    global _watching
    with open(os.path.join(PACKAGE, "py.typed"), "rb"):
        pass
    if _seen_check:
        _write(f"armed {os.getpid()}")
        _watching = True
    await ctx.wait_stopping()
