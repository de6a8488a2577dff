"""ctx.start_server and ctx.track: the shutdown drains connections, from outside."""

from __future__ import annotations

import asyncio
import signal
import socket
import ssl
import subprocess
from pathlib import Path

import pytest

from aiodaemon.testing import launch

from .serving_support import exchange, http_get, serve
from .support import PROGRAMS, PYTHON, clean_env, program, require_tool


async def refused(address: tuple[str, int]) -> bool:
    """Whether a new connection to ``address`` is refused."""
    try:
        _, writer = await asyncio.open_connection(*address)
    except ConnectionRefusedError:
        return True
    writer.close()
    return False


async def test_in_flight_requests_complete_then_hooks_run(tmp_path: Path) -> None:
    """SIGTERM with 30 requests in flight: all answered, new connections refused, hooks after."""
    async with serve(tmp_path) as app:
        address = await app.address("app")
        requests = [asyncio.create_task(exchange(address, [f"SLOW {i}"])) for i in range(30)]
        await app.wait_event("request", 30)
        app.proc.send_signal(signal.SIGTERM)
        await app.wait_event("stopped accepting")
        assert await refused(address)
        answers = await asyncio.wait_for(asyncio.gather(*requests), timeout=15)
        assert answers == [[f"done {i}"] for i in range(30)]
        assert await asyncio.wait_for(app.proc.wait(), timeout=15) == 0
        events = app.events()
        order = [
            "tracked resource closed",
            "stopped accepting",
            "connections finished",
            "shutdown hook ran",
            "exit",
        ]
        assert [e for e in events if e in order] == order
        assert "tracked resource wait_closed" in events


async def test_idle_connection_ends_at_shutdown(tmp_path: Path) -> None:
    """An idle keep-alive client reads end-of-stream at SIGTERM; the daemon exits 0 at once."""
    async with serve(tmp_path, "--shutdown-timeout", "60") as app:
        address = await app.address("app")
        reader, writer = await asyncio.open_connection(*address)
        writer.write(b"PING\n")
        assert await reader.readline() == b"PONG\n"
        app.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(reader.read(), timeout=10) == b""
        writer.close()
        # Well before the 30 s the connections could have taken.
        assert await asyncio.wait_for(app.proc.wait(), timeout=10) == 0
        assert "connections cancelled after the drain timeout" not in app.events()


@pytest.mark.parametrize("loop", ["--uvloop", "--no-uvloop"])
async def test_writer_start_tls_makes_the_server_side_of_tls(tmp_path: Path, loop: str) -> None:
    """A handler's writer.start_tls() answers a client's TLS handshake; drained as any.

    The framework's connections told asyncio they were a client's: the
    handler's start_tls() failed (``Cannot create a client socket with a
    PROTOCOL_TLS_SERVER context``) and the client's handshake was reset.
    """
    make_certificate(tmp_path)
    client_context = ssl.create_default_context(cafile=tmp_path / "cert.pem")
    async with serve(tmp_path, "--shutdown-timeout", "60", loop) as app:
        address = await app.address("app")
        reader, writer = await asyncio.open_connection(*address)
        writer.write(b"STARTTLS\n")
        assert await reader.readline() == b"go\n"
        await asyncio.wait_for(writer.start_tls(client_context, server_hostname="localhost"), 10)
        writer.write(b"PING\n")
        assert await asyncio.wait_for(reader.readline(), 10) == b"PONG\n"
        app.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(reader.read(), timeout=10) == b""
        writer.close()
        assert await asyncio.wait_for(app.proc.wait(), timeout=10) == 0
        assert "connection handler failed" not in app.events()


def make_certificate(directory: Path) -> None:
    """A self-signed certificate for localhost: ``cert.pem`` and ``key.pem`` in ``directory``."""
    subprocess.run(
        [
            require_tool("openssl"),
            *("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
            *("-nodes", "-days", "1", "-subj", "/CN=localhost"),
            *("-addext", "subjectAltName=DNS:localhost"),
            *("-keyout", str(directory / "key.pem"), "-out", str(directory / "cert.pem")),
        ],
        check=True,
        capture_output=True,
    )


async def test_a_request_whose_body_is_still_arriving_is_served(tmp_path: Path) -> None:
    """SIGTERM between a request's head and its body: the body is read, the request answered.

    Its handler waited for data with nothing buffered, as an idle keep-alive
    connection's does: it read end-of-stream, the request was lost and the
    handler failed (``IncompleteReadError``).
    """
    async with serve(tmp_path, "--shutdown-timeout", "60") as app:
        address = await app.address("app")
        reader, writer = await asyncio.open_connection(*address)
        writer.write(b"PING\n")  # answered: the next bytes begin a request
        assert await reader.readline() == b"PONG\n"
        writer.write(b"POST 10\n")
        await app.wait_event("request")
        app.proc.send_signal(signal.SIGTERM)
        await app.wait_event("stopped accepting")
        writer.write(b"0123456789")
        assert await asyncio.wait_for(reader.readline(), timeout=10) == b"got 10\n"
        # Answered, and waiting for a next request: ended at once, as an idle one.
        assert await asyncio.wait_for(reader.read(), timeout=10) == b""
        writer.close()
        assert await asyncio.wait_for(app.proc.wait(), timeout=10) == 0
        events = app.events()
        assert "connection handler failed" not in events
        assert "connections cancelled after the drain timeout" not in events


async def test_an_upload_read_to_its_end_is_not_cut_short(tmp_path: Path) -> None:
    """SIGTERM in the middle of an upload read up to the client's end: all of it is read.

    The handler's read() returned the first half as if the client had ended,
    and the upload was taken for whole.
    """
    async with serve(tmp_path, "--shutdown-timeout", "60") as app:
        address = await app.address("app")
        reader, writer = await asyncio.open_connection(*address)
        writer.write(b"UPLOAD\n" + b"x" * 1000)
        await app.wait_event("request")
        app.proc.send_signal(signal.SIGTERM)
        await app.wait_event("stopped accepting")
        writer.write(b"y" * 1000)
        writer.write_eof()
        assert await asyncio.wait_for(reader.readline(), timeout=10) == b"got 2000\n"
        writer.close()
        assert await asyncio.wait_for(app.proc.wait(), timeout=10) == 0
        assert "connection handler failed" not in app.events()


async def test_drain_delay_keeps_accepting_while_not_ready(tmp_path: Path) -> None:
    """During drain_delay /readyz says 503 and new connections are still served."""
    # The test's four requests must fit in the delay: seconds of room on a busy machine.
    async with serve(
        tmp_path, "--drain-delay", "8", "--health", "127.0.0.1:0", env={"SERVING_DELAY": "0.1"}
    ) as app:
        address, health = await app.address("app"), await app.address("health")
        await app.wait_event("ready")
        assert (await http_get(health, "/readyz"))[:2] == (200, {"state": "running"})
        app.proc.send_signal(signal.SIGTERM)
        await app.wait_event("shutdown started")
        assert (await http_get(health, "/readyz"))[:2] == (503, {"state": "stopping"})
        assert (await http_get(health, "/livez"))[:2] == (200, {"state": "stopping"})
        # Still within the 8 s delay: a new client is served.
        assert await exchange(address, ["SLOW late"]) == ["done late"]
        assert "stopped accepting" not in app.events()
        await app.wait_event("stopped accepting")
        assert await refused(address)
        assert await asyncio.wait_for(app.proc.wait(), timeout=15) == 0


async def test_stuck_connection_is_cancelled_within_the_budget(tmp_path: Path) -> None:
    """A handler that never ends is cancelled; hooks still run and the exit is 0."""
    async with serve(tmp_path, "--drain-delay", "0.5", "--shutdown-timeout", "3") as app:
        address = await app.address("app")
        hanging = asyncio.create_task(exchange(address, ["HANG"]))
        await app.wait_event("request")
        app.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(app.proc.wait(), timeout=15) == 0
        assert await asyncio.wait_for(hanging, timeout=5) == []
        events = app.events()
        cancelled = events.index("connections cancelled after the drain timeout")
        assert cancelled < events.index("shutdown hook ran")


async def test_request_shutdown_drains_too(tmp_path: Path) -> None:
    """ctx.request_shutdown() drains like SIGTERM, drain delay included; a reload does not."""
    async with serve(
        tmp_path, "--drain-delay", "1", "--health", "127.0.0.1:0", env={"SERVING_DELAY": "1"}
    ) as app:
        address, health = await app.address("app"), await app.address("health")
        request = asyncio.create_task(exchange(address, ["SLOW x"]))
        await app.wait_event("request")
        app.proc.send_signal(signal.SIGHUP)
        await app.wait_event("reload finished")
        assert "stopped accepting" not in app.events()
        assert await exchange(address, ["QUIT"]) == ["bye"]
        await app.wait_event("shutdown started")
        assert (await http_get(health, "/readyz"))[:2] == (503, {"state": "stopping"})
        assert await asyncio.wait_for(request, timeout=10) == ["done x"]
        assert await asyncio.wait_for(app.proc.wait(), timeout=10) == 0
        shutdown = next(r for r in app.records() if r["event"] == "shutdown started")
        assert shutdown["drain_delay"] == 1.0


def listen_backlog(port: int) -> int:
    """The backlog the kernel shows for the listener on ``port`` (``ss`` Send-Q)."""
    out = subprocess.run(
        ["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout
    return int(out.split()[2])


async def test_start_server_keeps_the_backlog(tmp_path: Path) -> None:
    """The listener served by ctx.start_server keeps the framework's SOMAXCONN backlog."""
    async with serve(tmp_path) as app:
        _, port = await app.address("app")
        await app.wait_event("ready")
        somaxconn = int(await asyncio.to_thread(Path("/proc/sys/net/core/somaxconn").read_text))
        assert listen_backlog(port) == min(socket.SOMAXCONN, somaxconn)
        assert listen_backlog(port) > 100


def test_bad_serving_options_are_one_line(tmp_path: Path) -> None:
    """Bad --drain-delay, --health, or a listen name clash: one line, exit 2, nothing started."""
    cases = [
        ("--drain-delay", "-1"),
        ("--drain-delay", "soon"),
        ("--health", "nowhere"),
        ("--health", "unix:relative"),
        ("--listen", "health=127.0.0.1:0", "--health", "127.0.0.1:0"),
    ]
    for args in cases:
        result = subprocess.run(
            [PYTHON, "-m", "aiodaemon", "run", "serving_app:main", *args],
            cwd=Path(__file__).parent / "programs",
            env=clean_env({"SERVING_DIR": str(tmp_path)}),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 2, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, (args, result.stderr)
        assert "--drain-delay" in lines[0] or "--health" in lines[0], lines


async def test_a_connection_accepted_as_the_stop_begins_is_drained(tmp_path: Path) -> None:
    """A client the loop accepts in the turn the stop begins gets its answer, not a reset.

    The loop is held while the client connects and sends its request, then the
    program asks to stop in the same step that frees the loop: asyncio accepts
    the client in the stop's own turn and starts its handler two turns later,
    after the drain had counted the connections, and the request was cut at
    the shutdown's last step.
    """
    (tmp_path / "hold-loop").touch()
    async with serve(tmp_path, "--no-uvloop", env={"SERVING_DELAY": "0.5"}) as app:
        address = await app.address("app")
        _, holder = await asyncio.open_connection(*address)
        holder.write(b"BLOCK 30\nQUIT\n")
        await app.wait_event("blocking")
        # Completes in the kernel's backlog while the loop stands still.
        reader, writer = await asyncio.open_connection(*address)
        writer.write(b"SLOW late\n")
        await writer.drain()
        (tmp_path / "hold-loop").unlink()
        assert await asyncio.wait_for(reader.readline(), timeout=10) == b"done late\n"
        writer.close()
        holder.close()
        assert await asyncio.wait_for(app.proc.wait(), timeout=15) == 0
        events = app.events()
        assert events.index("request") < events.index("connections finished")


@pytest.mark.parametrize("uvloop", [True, False])
async def test_a_plain_server_s_idle_client_at_a_stop(uvloop: bool) -> None:
    """``async with server: await server.serve_forever()``, a client connected: exit 0, no error.

    The stop's last step cancels the handler; the done callback asyncio gives it
    asked the cancelled task for its exception (Python 3.11.7 and 3.12.1): an
    "unhandled exception in event loop" record, CancelledError, at every such
    stop, and on 3.12.1's own loop the transport stayed open, so the server's
    ``wait_closed()`` held ``main`` until the forced exit (status 4).
    """
    listen = {"echo": "127.0.0.1:0"}
    program = PROGRAMS / "serve_forever.py"
    async with launch(program, listen=listen, uvloop=uvloop, shutdown_timeout=5.0) as daemon:
        address = daemon.address("echo")
        assert isinstance(address, tuple)
        reader, writer = await asyncio.open_connection(*address)
        writer.write(b"hello\n")
        assert await reader.readline() == b"hello\n"
        assert await daemon.stop() == 0
        assert await asyncio.wait_for(reader.read(), timeout=10) == b""
        writer.close()
        errors = [r for r in daemon.records() if r["level"] in ("error", "critical")]
    assert errors == []


@pytest.mark.parametrize("target", ["main", "tracked"])
async def test_serve_forever_on_a_server_the_stop_closes_ends_with_status_0(target: str) -> None:
    """``await server.serve_forever()`` on a ctx.start_server or tracked server: a stop exits 0.

    asyncio's ``Server.close()`` (uvloop's does not) cancels the ``serve_forever()``
    ``main`` awaits: the stop's own closing of the servers, which ended main
    with ``main failed: CancelledError`` and status 1.
    """
    listen = {"echo": "127.0.0.1:0"}
    program = f"{PROGRAMS / 'served_forever.py'}:{target}"
    async with launch(program, listen=listen, uvloop=False, shutdown_timeout=5.0) as daemon:
        address = daemon.address("echo")
        assert isinstance(address, tuple)
        reader, writer = await asyncio.open_connection(*address)
        writer.write(b"hello\n")
        assert await reader.readline() == b"hello\n"
        writer.close()
        assert await daemon.stop() == 0
        errors = [r for r in daemon.records() if r["level"] in ("error", "critical")]
    assert errors == []


async def test_a_reload_gives_new_connections_a_new_certificate(tmp_path: Path) -> None:
    """docs/lifecycle.md: certificates loaded again into the server's SSLContext at a reload.

    The connection made before goes on with the old one; the daemon never stops
    listening (a server closed to start another closes the listening socket).
    """
    make_certificate(tmp_path)
    first = (tmp_path / "cert.pem").read_text()
    async with launch(
        program("tls_reload"), listen={"tls": "127.0.0.1:0"}, env={"TLS_DIR": str(tmp_path)}
    ) as daemon:
        address = daemon.inet_address("tls")
        before = await tls_client(address, tmp_path)
        make_certificate(tmp_path)
        second = (tmp_path / "cert.pem").read_text()
        assert second != first
        await daemon.reload()
        after = await tls_client(address, tmp_path)
        for (reader, writer), pem in ((before, first), (after, second)):
            peer = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
            assert ssl.DER_cert_to_PEM_cert(peer).split() == pem.split()
            writer.write(b"PING\n")
            assert await asyncio.wait_for(reader.readline(), 10) == b"PING\n"
            writer.close()
        assert await daemon.stop() == 0


async def tls_client(
    address: tuple[str, int], directory: Path
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TLS connection to ``address`` trusting the certificate in ``directory`` now."""
    context = ssl.create_default_context(cafile=directory / "cert.pem")
    return await asyncio.wait_for(
        asyncio.open_connection(*address, ssl=context, server_hostname="localhost"), 10
    )
