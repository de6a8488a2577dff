"""aiodaemon's asyncio loop (``uvloop=False``): a connection accepted as its server closes."""

from __future__ import annotations

import asyncio
import socket

from aiodaemon._run._selector_loop import SelectorEventLoop


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"answer to " + await reader.readline())
    await writer.drain()
    writer.close()


def test_a_connection_accepted_in_the_turn_before_its_server_closes_is_served() -> None:
    """Its request is answered; asyncio's own loop reset it (an upgrade's hand-over lost it)."""
    loop = SelectorEventLoop()
    listener = socket.create_server(("127.0.0.1", 0))
    server = loop.run_until_complete(asyncio.start_server(_answer, sock=listener))
    client = socket.create_connection(listener.getsockname(), timeout=10)
    try:
        client.sendall(b"request\n")
        client.setblocking(False)
        # This turn accepts the connection; the next closes the server before the
        # accepted connection gets its transport, as a stop or hand-over may.
        loop.call_soon(loop.call_soon, server.close)
        reply = loop.run_until_complete(asyncio.wait_for(loop.sock_recv(client, 100), 10))
        assert reply == b"answer to request\n"
        assert not server.is_serving()
    finally:
        client.close()
        listener.close()
        loop.close()
