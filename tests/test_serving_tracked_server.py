"""A plain ``asyncio.Server`` given to ``ctx.track``: requests in flight at a stop, per loop."""

from __future__ import annotations

import asyncio

from aiodaemon.testing import launch

from .support import program

#: Requests in flight at the stop, each answered after this many seconds.
_REQUESTS = 10
_SECONDS = 1.5


async def _ask(address: tuple[str, int]) -> bytes:
    """Send one slow request; return the answer (b"" when the daemon cut it)."""
    reader, writer = await asyncio.open_connection(*address)
    writer.write(f"SLOW {_SECONDS}\n".encode())
    try:
        return await reader.read()
    except ConnectionError:
        return b""
    finally:
        writer.close()


async def _stop_with_requests_in_flight(
    uvloop: bool,
) -> tuple[list[bytes], int, list[dict[str, object]]]:
    """Start tracked_slow, put requests in flight, stop it: answers, status, records."""
    listen = {"app": "127.0.0.1:0"}
    async with launch(
        program("tracked_slow"), listen=listen, uvloop=uvloop, shutdown_timeout=10.0
    ) as daemon:
        address = daemon.inet_address("app")
        requests = [asyncio.create_task(_ask(address)) for _ in range(_REQUESTS)]
        await daemon.wait_for_record(
            lambda r: sum(x.get("event") == "request" for x in daemon.records()) >= _REQUESTS
        )
        status = await daemon.stop(timeout=20)
        answers = await asyncio.wait_for(asyncio.gather(*requests), timeout=20)
        return answers, status, daemon.records()


async def test_asyncio_loop_answers_every_request_in_flight() -> None:
    """asyncio's loop: every request in flight at the stop gets its answer, nothing cancelled."""
    answers, status, records = await _stop_with_requests_in_flight(uvloop=False)
    assert answers == [b"done\n"] * _REQUESTS
    assert status == 0
    events = [r["event"] for r in records]
    assert "tasks cancelled at shutdown" not in events
    assert events.index("connections finished") < events.index("exit")


async def test_uvloop_says_what_it_cannot_wait_for() -> None:
    """uvloop's Server: a warning at track() and one naming how many requests the stop cut."""
    answers, status, records = await _stop_with_requests_in_flight(uvloop=True)
    warnings = {str(r["event"]): r for r in records if r["level"] == "warning"}
    assert "tracked server's connections cannot be awaited at shutdown" in warnings
    cut = answers.count(b"")
    assert cut + answers.count(b"done\n") == _REQUESTS
    if cut:
        tasks = warnings["tasks cancelled at shutdown"]["tasks"]
        assert isinstance(tasks, int)
        assert tasks >= cut
    assert status == 0
