"""A daemon whose service account was taken over: its stop answer names another's socket file.

A CLI target, started as root with ``--user``. Once dropped, ``main`` adds
the socket file ``$FORGED_SOCKET`` (its device and inode, which anyone who
may look it up can read) to the unix socket files the daemon names in its
answer to a stop request, logs ``forged``, and a shutdown hook never ends,
so that ``stop`` has to SIGKILL it and remove what it named.
"""

from __future__ import annotations

import asyncio
import os

import structlog

import aiodaemon
import aiodaemon._run._builtin as builtin

log = structlog.get_logger("forged")


@aiodaemon.on_shutdown
async def hold() -> None:
    """Never finish the shutdown: ``stop`` SIGKILLs the daemon at its --timeout."""
    await asyncio.Event().wait()


async def main() -> None:
    """Forge the stop answer's socket files, as any code running as the account could."""
    if os.geteuid() == 0:
        raise SystemExit("start me with --user: the forgery is the service account's")
    forged = os.environ["FORGED_SOCKET"]
    st = os.stat(forged, follow_symlinks=False)
    own = builtin._socket_files

    def named(runtime: object) -> dict[str, tuple[int, int]]:
        return {**own(runtime), forged: (st.st_dev, st.st_ino)}  # type: ignore[arg-type]

    builtin._socket_files = named
    log.info("forged", path=forged)
    await asyncio.Event().wait()
