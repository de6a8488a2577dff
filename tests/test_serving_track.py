"""Serving.track: what a program hands the framework is closed and awaited at the drain."""

from __future__ import annotations

import asyncio
import time

import pytest

from aiodaemon._run._serving import Serving


class Closable:
    """Records how it was closed; close() and wait_closed() may be sync or async."""

    def __init__(self, *, async_close: bool = False, wait: float | None = None) -> None:
        self.closed = False
        self.waited = False
        self._async_close = async_close
        self._wait = wait

    def close(self) -> object:
        if not self._async_close:
            self.closed = True
            return None

        async def later() -> None:
            await asyncio.sleep(0)
            self.closed = True

        return later()

    async def wait_closed(self) -> None:
        if self._wait is not None:
            await asyncio.sleep(self._wait)
        self.waited = True


async def test_tracked_objects_are_closed_and_awaited() -> None:
    """Sync and async close(), and wait_closed(), all finish within wait_closed()."""
    serving = Serving()
    plain, coroutine = Closable(), Closable(async_close=True)
    serving.track(plain)
    serving.track(coroutine)
    serving.stop_accepting()
    assert plain.closed
    assert await serving.wait_closed(time.monotonic() + 5)
    assert coroutine.closed
    assert plain.waited
    assert coroutine.waited


async def test_tracked_after_the_drain_began_is_closed_at_once() -> None:
    """An object tracked once the daemon stopped accepting is closed right away."""
    serving = Serving()
    serving.stop_accepting()
    late = Closable(async_close=True)
    serving.track(late)
    assert await serving.wait_closed(time.monotonic() + 5)
    assert late.closed
    assert late.waited


async def test_a_wait_closed_past_the_deadline_is_cancelled() -> None:
    """wait_closed() gives up at the deadline and reports it."""
    serving = Serving()
    slow = Closable(wait=30)
    serving.track(slow)
    assert not await serving.wait_closed(time.monotonic() + 0.2)
    assert not slow.waited


def test_track_refuses_what_cannot_be_closed() -> None:
    """Without a close() method, track() raises TypeError."""
    with pytest.raises(TypeError, match="close"):
        Serving().track(object())
