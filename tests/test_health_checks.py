"""Readiness checks behind /readyz, probed over a real socket: failures, time limit, sharing."""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

import aiodaemon
from aiodaemon._run._health import CHECK_TIMEOUT, MAX_CONNECTIONS, HealthServer
from aiodaemon._run._hooks import HookFunction
from aiodaemon._run._state import State

from .serving_support import PROGRAMS, Served, http_get, serve
from .support import PYTHON, clean_env


@asynccontextmanager
async def health_with(
    checks: list[HookFunction], state: Callable[[], State] = lambda: State.RUNNING
) -> AsyncIterator[tuple[str, int]]:
    """A HealthServer with ``checks`` on a loopback port; yields its address."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    server = HealthServer(
        listener, state=state, reported_ready=lambda: True, checks=checks, context=None
    )
    await server.start()
    try:
        yield listener.getsockname()
    finally:
        server.close()


async def test_raising_or_slow_checks_make_readyz_503() -> None:
    """A check that raises, or takes longer than a second, fails /readyz; /livez is unaffected."""

    async def raises() -> bool:
        raise RuntimeError("database down")

    async def slow() -> bool:
        await asyncio.sleep(30)
        return True

    for check in (raises, slow):
        async with health_with([check]) as address:
            status, body, _ = await asyncio.wait_for(http_get(address, "/readyz"), timeout=30)
            assert (status, body) == (503, {"state": "running"})
            assert (await http_get(address, "/livez"))[0] == 200


async def test_a_request_completed_late_still_gets_its_verdict() -> None:
    """A request whose last byte comes 1.5 s in, and a check using its whole second: answered.

    The 2 s limit is for the request to arrive; the checks' verdict, which takes
    up to a second more, is owed once it has (the connection was cut unanswered).
    """

    async def slow() -> bool:
        await asyncio.sleep(30)
        return True

    async with health_with([slow]) as address:
        reader, writer = await asyncio.open_connection(*address)
        try:
            writer.write(b"GET /readyz HTTP/1.1\r\nHost: probe\r\n")
            await writer.drain()
            # A slow client (a loaded prober, a long path): not a synchronisation.
            await asyncio.sleep(1.5)
            writer.write(b"\r\n")
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(), timeout=30)
        finally:
            writer.close()
    assert answer.startswith(b"HTTP/1.1 503 "), answer


async def test_passing_checks_and_none_count_as_ready() -> None:
    """Checks returning True or None (no opinion) leave /readyz at 200."""

    async def yes() -> bool:
        return True

    async def no_opinion() -> None:
        return None

    async with health_with([yes, no_opinion]) as address:
        assert (await http_get(address, "/readyz"))[:2] == (200, {"state": "running"})


async def test_concurrent_probes_share_one_run_of_the_checks() -> None:
    """Fifty probes at once run each check once, not fifty times."""
    calls = 0

    async def counted() -> bool:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.2)
        return True

    async with health_with([counted]) as address:
        answers = await asyncio.gather(*(http_get(address, "/readyz") for _ in range(50)))
    assert {status for status, _, _ in answers} == {200}
    assert calls <= 2  # probes that arrive after the run finished start the next one


async def test_checks_are_not_run_when_not_ready() -> None:
    """While stopping, /readyz is 503 at once and the checks are not called."""
    calls = 0

    async def counted() -> bool:
        nonlocal calls
        calls += 1
        return True

    async with health_with([counted], state=lambda: State.STOPPING) as address:
        assert (await http_get(address, "/readyz"))[:2] == (503, {"state": "stopping"})
    assert calls == 0


async def test_a_daemon_objects_readiness_check_is_used(tmp_path: Path) -> None:
    """@Daemon.readiness_check (taking the Context) decides /readyz of that daemon."""
    log = tmp_path / "d.jsonl"
    proc = await asyncio.create_subprocess_exec(
        PYTHON,
        "-m",
        "aiodaemon",
        "run",
        "serving_daemon_app:daemon",
        "--health",
        "127.0.0.1:0",
        "--log-file",
        str(log),
        cwd=PROGRAMS,
        env=clean_env(),
    )
    try:
        served = Served(proc, log, tmp_path)
        health = await served.address("health")
        await served.wait_event("ready")
        assert (await http_get(health, "/readyz"))[:2] == (503, {"state": "running"})
        assert (await http_get(health, "/livez"))[0] == 200
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), timeout=15) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_a_checks_own_timeout_is_its_error_not_the_bound(tmp_path: Path) -> None:
    """A check raising TimeoutError itself is logged with its error, not as "no answer within 1s".

    A database client's connect that gets ETIMEDOUT raises TimeoutError (an
    OSError) at once: the log said the check had not answered within the
    bound, sending the operator after a slow check instead of the network.
    """
    async with serve(tmp_path, "--health", "127.0.0.1:0") as app:
        health = await app.address("health")
        await app.wait_event("ready")
        (tmp_path / "not-ready").write_text("timed out")
        assert (await http_get(health, "/readyz"))[:2] == (503, {"state": "running"})
        await app.wait_event("readiness check failed")
        (tmp_path / "not-ready").write_text("hang")
        assert (await http_get(health, "/readyz"))[:2] == (503, {"state": "running"})
        await app.wait_event("readiness check failed", count=2)
        reasons = [r["reason"] for r in app.records() if r["event"] == "readiness check failed"]
        assert reasons == [
            "serving_app.not_ready_flag: TimeoutError: [Errno 110] Connection timed out",
            f"serving_app.not_ready_flag: no answer within {CHECK_TIMEOUT}s",
        ]


async def test_a_check_that_ignores_its_cancellation_fails_readyz(tmp_path: Path) -> None:
    """A check swallowing CancelledError: /readyz 503 naming it, one run of it, reported at stop.

    Probes went unanswered (the bound could not end it), a new run piled up
    every 2 s, and nothing was logged until the forced exit listed them all.
    """
    async with serve(tmp_path, "--health", "127.0.0.1:0", "--shutdown-timeout", "2") as app:
        health = await app.address("health")
        await app.wait_event("ready")
        (tmp_path / "not-ready").write_text("stubborn")
        for _ in range(4):  # each would have started a run beside the stuck one
            answer = await asyncio.wait_for(http_get(health, "/readyz"), timeout=30)
            assert answer[:2] == (503, {"state": "running"})
        await app.wait_event("readiness check failed")
        app.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(app.proc.wait(), timeout=30) == 4  # as any stuck task
        records = app.records()
        reasons = [r["reason"] for r in records if r["event"] == "readiness check failed"]
        assert reasons == [f"serving_app.not_ready_flag: no answer within {CHECK_TIMEOUT}s"]
        assert [r["event"] for r in records].count("stubborn check runs") == 1
        stuck = [r["task"] for r in records if r["event"] == "task stuck at shutdown"]
        # Not aiodaemon's stop task beside it: it only waits for the check.
        assert stuck == ["readiness check serving_app.not_ready_flag"]


def test_readiness_check_refuses_a_sync_function() -> None:
    """A plain function is refused at decoration, on the module and on a Daemon."""

    def sync_check() -> bool:
        return True

    for decorate in (aiodaemon.readiness_check, aiodaemon.Daemon().readiness_check):
        with pytest.raises(TypeError, match="async function"):
            decorate(sync_check)  # type: ignore[type-var]  # the point of the test


async def test_a_readyz_request_in_flight_across_a_pause_of_the_daemon_is_answered(
    tmp_path: Path,
) -> None:
    """SIGSTOPped 3 s while its checks run: the probe gets its 503 with a body, not a dropped line.

    Once continued, the connection's 2 s deadline and the checks' 1 s bound were
    both overdue, and the deadline won: the connection was cut unanswered.
    """
    async with serve(tmp_path, "--health", "127.0.0.1:0") as app:
        health = await app.address("health")
        await app.wait_event("ready")
        (tmp_path / "not-ready").write_text("stubborn")
        probe = asyncio.create_task(http_get(health, "/readyz"))
        # Logged once the request is in and its checks run: it is in flight.
        await app.wait_event("stubborn check runs")
        app.proc.send_signal(signal.SIGSTOP)
        try:
            # The pause itself, past the 2 s deadline: what the test is about, not a wait.
            await asyncio.sleep(3)
        finally:
            app.proc.send_signal(signal.SIGCONT)
        status, body, _ = await asyncio.wait_for(probe, timeout=30)
    assert (status, body) == (503, {"state": "running"})


async def test_a_probe_waiting_for_its_verdict_is_not_evicted_by_new_connections() -> None:
    """More connections than the cap while the checks run: the probe waiting is still answered.

    The oldest connection gave way to each new one whatever its state, so a
    whole ``/readyz`` request waiting for its checks was cut unanswered by a
    burst of idle connections (any client of the port could fail the probe).
    """
    running, release = asyncio.Event(), asyncio.Event()

    async def gated() -> bool:
        running.set()
        await release.wait()
        return True

    async with health_with([gated]) as address:
        reader, writer = await asyncio.open_connection(*address)
        idle: list[asyncio.StreamWriter] = []
        try:
            writer.write(b"GET /readyz HTTP/1.1\r\nHost: probe\r\n\r\n")
            await writer.drain()
            await asyncio.wait_for(running.wait(), timeout=30)
            for _ in range(MAX_CONNECTIONS + 1):
                idle.append((await asyncio.open_connection(*address))[1])
            # Answered: every connection before it was accepted (and evicted what it had to).
            status, _, _ = await asyncio.wait_for(http_get(address, "/livez"), timeout=30)
            assert status == 200
            release.set()
            answer = await asyncio.wait_for(reader.read(), timeout=30)
        finally:
            writer.close()
            for other in idle:
                other.close()
    assert answer.startswith(b"HTTP/1.1 200 "), answer


async def test_the_absolute_form_of_a_path_is_accepted() -> None:
    """``GET http://host/livez`` (a prober behind a proxy) is answered as ``GET /livez``.

    RFC 9112 3.2.2: a server must accept the absolute form; it was a 404.
    """
    async with health_with([]) as address:
        answers = []
        for target in (f"http://{address[0]}:{address[1]}/livez", "HTTP://h/readyz?full=1"):
            reader, writer = await asyncio.open_connection(*address)
            try:
                writer.write(f"GET {target} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
                await writer.drain()
                answers.append(await asyncio.wait_for(reader.read(), timeout=30))
            finally:
                writer.close()
        # Not decoded: the path is matched as it was sent.
        reader, writer = await asyncio.open_connection(*address)
        try:
            writer.write(b"GET http://h/%6civez HTTP/1.1\r\nHost: h\r\n\r\n")
            await writer.drain()
            encoded = await asyncio.wait_for(reader.read(), timeout=30)
        finally:
            writer.close()
        # The authority ends at "?" or "#" too: what follows is no path.
        for raw in (b"http://h?/livez", b"http://h#/livez"):
            reader, writer = await asyncio.open_connection(*address)
            try:
                writer.write(b"GET " + raw + b" HTTP/1.1\r\nHost: h\r\n\r\n")
                await writer.drain()
                answers.append(await asyncio.wait_for(reader.read(), timeout=30))
            finally:
                writer.close()
    firsts = [answer.split(b"\r\n", 1)[0] for answer in answers]
    assert firsts == [b"HTTP/1.1 200 OK"] * 2 + [b"HTTP/1.1 404 Not Found"] * 2
    assert encoded.startswith(b"HTTP/1.1 404 "), encoded


async def test_livez_gets_a_slot_when_every_connection_waits_for_the_checks() -> None:
    """As many whole /readyz requests as the cap, their check slow: /livez is still answered.

    Sparing the connections that owe an answer must not refuse every newcomer:
    a client keeping the slots full of /readyz requests failed the liveness probe.
    """
    release = asyncio.Event()

    async def gated() -> bool:
        await release.wait()
        return True

    async with health_with([gated]) as address:
        waiting: list[asyncio.StreamWriter] = []
        try:
            for _ in range(MAX_CONNECTIONS):
                writer = (await asyncio.open_connection(*address))[1]
                writer.write(b"GET /readyz HTTP/1.1\r\nHost: flood\r\n\r\n")
                await writer.drain()
                waiting.append(writer)
            status, _, _ = await asyncio.wait_for(http_get(address, "/livez"), timeout=30)
        finally:
            release.set()
            for writer in waiting:
                writer.close()
    assert status == 200
