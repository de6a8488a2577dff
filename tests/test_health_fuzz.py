"""The health responder fed arbitrary bytes over a real socket: only its fixed answers come back."""

from __future__ import annotations

import asyncio
import socket

from hypothesis import given, settings
from hypothesis import strategies as st

from aiodaemon._run._health import HealthServer
from aiodaemon._run._state import State


def answer(code: int, reason: str, body: bytes, headers: str = "") -> bytes:
    """One of the responder's fixed answers."""
    return (
        f"HTTP/1.1 {code} {reason}\r\n{headers}Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"
    ).encode() + body


RUNNING = b'{"state":"running"}'
ALLOWED = {
    b"",  # an incomplete request: the connection is dropped unanswered
    answer(400, "Bad Request", b'{"error":"bad request"}'),
    answer(404, "Not Found", b'{"error":"not found"}'),
    answer(404, "Not Found", b'{"error":"not found"}')[: -len(b'{"error":"not found"}')],  # HEAD
    answer(200, "OK", RUNNING),
    answer(200, "OK", RUNNING)[: -len(RUNNING)],  # HEAD
}

requests = st.one_of(
    st.binary(max_size=6000),
    st.builds(
        lambda method, path, version, rest: method + b" " + path + b" " + version + rest,
        st.sampled_from([b"GET", b"HEAD", b"POST", b"", b"G\x00T"]),
        st.sampled_from([b"/livez", b"/readyz", b"/readyz?x", b"/", b"*", b"/livez/.."]),
        st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2", b""]),
        st.binary(max_size=300).map(lambda b: b.replace(b"\n\n", b"")) | st.just(b"\r\n\r\n"),
    ),
)


async def exchange(data: bytes) -> bytes:
    """Serve one connection that sends ``data`` then half-closes; what came back."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    server = HealthServer(listener, state=lambda: State.RUNNING, reported_ready=lambda: True)
    await server.start()
    try:
        reader, writer = await asyncio.open_connection(*listener.getsockname())
        try:
            writer.write(data)
            writer.write_eof()
            return await asyncio.wait_for(reader.read(), timeout=5)
        except ConnectionResetError:
            return b""
        finally:
            writer.close()
    finally:
        server.close()


@settings(max_examples=300, deadline=None)
@given(requests)
def test_any_request_gets_a_fixed_answer(data: bytes) -> None:
    """Whatever a client sends, the answer is one of the fixed templates (or none)."""
    assert asyncio.run(exchange(data)) in ALLOWED
