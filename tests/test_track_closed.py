"""ctx.track() forgets what is closed already: a long life of tracked connections costs nothing.

Real daemons through the testing kit: a program tracking each connection's
writer kept every one (about 2 KB each) for the daemon's whole life, and
closed them all again at shutdown.
"""

from __future__ import annotations

import asyncio

from aiodaemon.testing import launch

from .support import REPO

PROGRAM = REPO / "tests" / "programs" / "track_writers.py"
#: connections opened and closed; far more than track() keeps before it prunes.
CONNECTIONS = 300


async def test_closed_tracked_writers_are_forgotten_and_open_ones_still_closed() -> None:
    """After 300 closed connections the shutdown closes only the open ones, the held one too."""
    async with launch(PROGRAM, listen={"echo": "127.0.0.1:0"}) as daemon:
        address = daemon.address("echo")
        assert isinstance(address, tuple)
        host, port = address
        for n in range(CONNECTIONS):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(b"%d\n" % n)
            assert await reader.readline() == b"%d\n" % n
            writer.close()
            await writer.wait_closed()
        held_reader, held_writer = await asyncio.open_connection(host, port)
        held_writer.write(b"hold\n")
        assert await held_reader.readline() == b"held\n"
        assert await daemon.stop() == 0
        # The shutdown closed the tracked connection still open.
        assert await asyncio.wait_for(held_reader.read(), 10) == b""
        held_writer.close()
        [stopped] = [r for r in daemon.records() if r["event"] == "stopped accepting"]
        tracked = stopped["tracked"]
    assert isinstance(tracked, int)
    # The server, the held connection and at most one pruning period of others.
    assert 2 <= tracked <= 130, tracked
