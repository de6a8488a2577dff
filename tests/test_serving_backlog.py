"""A stop with connections waiting in the listen backlog: each is served, none reset."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest

from .serving_support import serve
from .support import wait_for

#: Connections queued while the loop stands still.
QUEUED = 20
#: The drain delay the loop's standstill outlasts.
DRAIN = 0.5


async def queue_request(
    address: tuple[str, int], n: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect and send ``SLOW n``: the kernel completes both while the loop stands still."""
    reader, writer = await asyncio.open_connection(*address)
    writer.write(f"SLOW {n}\n".encode())
    await writer.drain()
    return reader, writer


async def answer(reader: asyncio.StreamReader) -> str:
    """The answer line, or how the connection ended."""
    try:
        return (await reader.readline()).decode() or "closed unanswered"
    except OSError as exc:
        return f"{type(exc).__name__} after the request was sent"


@pytest.mark.parametrize("loop", ["--no-uvloop", "--uvloop"])
async def test_connections_queued_as_the_drain_ends_are_served(tmp_path: Path, loop: str) -> None:
    """The loop stands still past the end of the drain delay while connections queue up.

    The stop's next step closed the listener with them still in its accept
    queue: their clients, connected and their requests sent, were reset. They
    are now accepted and answered (uvloop runs the stop's step before it polls
    for them; asyncio's loop accepts them first).
    """
    async with serve(
        tmp_path, loop, "--shutdown-timeout", "30", "--drain-delay", str(DRAIN),
        env={"SERVING_DELAY": "0.3"},
    ) as app:  # fmt: skip
        address = await app.address("app")
        hold = tmp_path / "hold-loop"
        hold.touch()
        app.proc.send_signal(signal.SIGTERM)
        await app.wait_event("shutdown started")
        began = time.monotonic()
        _blocker, writer = await asyncio.open_connection(*address)
        writer.write(b"BLOCK 30\n")
        await writer.drain()
        await app.wait_event("blocking")
        queued = [await queue_request(address, n) for n in range(QUEUED)]
        # The drain delay is over while the loop stands still.
        await asyncio.to_thread(
            wait_for, lambda: time.monotonic() > began + 2 * DRAIN, 10, "the drain's end"
        )
        hold.unlink()
        outcomes = await asyncio.wait_for(
            asyncio.gather(*(answer(r) for r, _ in queued)), timeout=30
        )
        assert outcomes == [f"done {n}\n" for n in range(QUEUED)]
        for _, w in queued:
            w.close()
        writer.close()
        assert await asyncio.wait_for(app.proc.wait(), timeout=30) == 0
