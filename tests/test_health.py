"""The health endpoint (/livez, /readyz) of a real daemon, probed from outside."""

from __future__ import annotations

import asyncio
import base64
import pickle
import pwd
import resource
import signal
import socket
import time
from pathlib import Path

import pytest

from .serving_support import exchange, http_get, serve
from .support import (
    PYTHON,
    aiodaemon_cli,
    clean_env,
    free_privileged_port,
    install_program,
    python,
    require_tool,
)


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports on 127.0.0.1, free right now."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


async def test_states_from_startup_to_shutdown(tmp_path: Path) -> None:
    """/livez 200 all along; /readyz 503 starting, 200 running and reloading, 503 stopping."""
    (tmp_path / "hold-startup").touch()
    (tmp_path / "hold-reload").touch()
    (tmp_path / "hold-shutdown").touch()
    async with serve(tmp_path, "--health", "127.0.0.1:0") as app:
        health = await app.address("health")
        assert (await http_get(health, "/livez"))[:2] == (200, {"state": "starting"})
        assert (await http_get(health, "/readyz"))[:2] == (503, {"state": "starting"})
        (tmp_path / "hold-startup").unlink()
        await app.wait_event("ready")
        assert (await http_get(health, "/readyz"))[:2] == (200, {"state": "running"})
        app.proc.send_signal(signal.SIGHUP)
        await app.wait_event("reload started")
        assert (await http_get(health, "/readyz"))[:2] == (200, {"state": "reloading"})
        (tmp_path / "hold-reload").unlink()
        await app.wait_event("reload finished")
        app.proc.send_signal(signal.SIGTERM)
        # Still answering while the shutdown hooks run: until the very end.
        await app.wait_event("shutdown hook ran")
        assert (await http_get(health, "/livez"))[:2] == (200, {"state": "stopping"})
        assert (await http_get(health, "/readyz"))[:2] == (503, {"state": "stopping"})
        (tmp_path / "hold-shutdown").unlink()
        assert await asyncio.wait_for(app.proc.wait(), timeout=15) == 0
        assert await refused(health)


async def test_readiness_check_decides_readyz(tmp_path: Path) -> None:
    """A readiness check returning False makes /readyz 503 until it passes again."""
    async with serve(tmp_path, "--health", "127.0.0.1:0") as app:
        health = await app.address("health")
        await app.wait_event("ready")
        (tmp_path / "not-ready").touch()
        # State only (DESIGN section 6): which check failed is in the log, not the body.
        assert (await http_get(health, "/readyz"))[:2] == (503, {"state": "running"})
        assert (await http_get(health, "/livez"))[0] == 200
        (tmp_path / "not-ready").unlink()
        assert (await http_get(health, "/readyz"))[:2] == (200, {"state": "running"})
        # Records reach the file off the loop, after the answer: wait for the last.
        await app.wait_event("readiness checks pass again")
        events = app.events()
        assert events.count("readiness check failed") == 1
        assert "readiness checks pass again" in events


async def test_anything_else_is_404_or_400_and_never_echoed(tmp_path: Path) -> None:
    """Unknown paths and other methods get 404, garbage and oversized requests 400; no echo."""
    marker = "zq7marker"
    async with serve(tmp_path, "--health", "127.0.0.1:0") as app:
        health = await app.address("health")
        await app.wait_event("ready")
        cases = {
            f"GET /{marker} HTTP/1.1\r\n\r\n".encode(): 404,
            f"POST /livez HTTP/1.1\r\nX: {marker}\r\n\r\n".encode(): 404,
            f"POST /{marker} HTTP/1.1\r\n\r\n".encode(): 404,
            f"{marker}\r\n\r\n".encode(): 400,
            f"GET /livez SPDY/{marker}\r\n\r\n".encode(): 400,
            b"\x00\xff" * 100 + marker.encode() + b"\r\n\r\n": 400,
            b"GET /" + marker.encode() * 2000 + b" HTTP/1.1\r\n\r\n": 400,
        }
        for request, expected in cases.items():
            status, _, response = await http_get(health, "", raw=request)
            assert status == expected, request[:40]
            assert marker.encode() not in response
        # HEAD of anything else: the 404 without content (RFC 9110 9.3.2).
        status, body, response = await http_get(health, "", raw=b"HEAD /nope HTTP/1.1\r\n\r\n")
        assert status == 404
        assert body is None
        assert response.endswith(b"Connection: close\r\n\r\n")
        # HEAD and a query string are fine.
        status, body, response = await http_get(health, "", raw=b"HEAD /livez?x=1 HTTP/1.0\r\n\r\n")
        assert status == 200
        assert body is None
        assert response.endswith(b"\r\n\r\n")
        assert app.proc.returncode is None


async def test_empty_lines_before_the_request_line_are_ignored(tmp_path: Path) -> None:
    """RFC 9112 2.2: a client's stray CRLF before the request line is no bad request."""
    async with serve(tmp_path, "--health", "127.0.0.1:0") as app:
        health = await app.address("health")
        await app.wait_event("ready")
        for leading in (b"\r\n", b"\n", b"\r\n\r\n"):
            raw = leading + b"GET /livez HTTP/1.1\r\n\r\n"
            assert (await http_get(health, "", raw=raw))[:2] == (200, {"state": "running"})


async def test_other_methods_on_the_probes_are_anything_else_404(tmp_path: Path) -> None:
    """POST, PUT, DELETE or OPTIONS of /livez or /readyz: 404, as DESIGN says; GET still 200."""
    async with serve(tmp_path, "--health", "127.0.0.1:0") as app:
        health = await app.address("health")
        await app.wait_event("ready")
        for method in ("POST", "PUT", "DELETE", "OPTIONS"):
            for path in ("/livez", "/readyz"):
                request = f"{method} {path} HTTP/1.1\r\nContent-Length: 0\r\n\r\n".encode()
                status, body, response = await http_get(health, "", raw=request)
                assert status == 404, (method, path)
                assert response.startswith(b"HTTP/1.1 404 Not Found\r\n")
                assert body == {"error": "not found"}
        assert (await http_get(health, "/livez"))[:2] == (200, {"state": "running"})
        assert (await http_get(health, "/readyz"))[:2] == (200, {"state": "running"})
        assert app.proc.returncode is None


async def test_slowloris_and_floods_do_not_starve_probes(tmp_path: Path) -> None:
    """Hundreds of slow or idle connections: probes and the service still answer; all bounded."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    try:
        async with serve(tmp_path, "--health", "127.0.0.1:0") as app:
            health, address = await app.address("health"), await app.address("app")
            await app.wait_event("ready")
            slow = [await asyncio.open_connection(*health) for _ in range(600)]
            for _, writer in slow:
                writer.write(b"GET /li")
            for _ in range(5):
                assert (await asyncio.wait_for(http_get(health, "/livez"), timeout=5))[0] == 200
            assert await exchange(address, ["PING"]) == ["PONG"]
            # The deadline (or, past MAX_CONNECTIONS, eviction) closes every slow
            # connection: a clean end, or a reset when the close found the
            # client's bytes still unread in the kernel's buffer.
            for reader, writer in slow:
                assert await asyncio.wait_for(ended_by_server(reader), timeout=15)
                writer.close()
            app.proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(app.proc.wait(), timeout=15) == 0
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_livez_is_not_answered_while_the_loop_is_blocked(tmp_path: Path) -> None:
    """A loop blocked by sync code gets no /livez answer until it turns again."""
    async with serve(tmp_path, "--health", "127.0.0.1:0") as app:
        health, address = await app.address("health"), await app.address("app")
        await app.wait_event("ready")
        # Blocked until the test lets go: however late the probe leaves (a loaded
        # machine), it reaches a loop that still stands still.
        hold = app.dir / "hold-loop"
        hold.touch()
        blocker = asyncio.create_task(exchange(address, ["BLOCK 60"]))
        await app.wait_event("blocking")
        probe = asyncio.create_task(http_get(health, "/livez"))
        done, _ = await asyncio.wait([probe], timeout=1.5)
        assert not done, "answered /livez while the loop was blocked"
        hold.unlink()
        assert await asyncio.wait_for(blocker, timeout=30) == ["unblocked"]
        assert (await asyncio.wait_for(probe, timeout=30))[0] == 200


async def ended_by_server(reader: asyncio.StreamReader) -> bool:
    """Whether the server ends the connection: end of stream, or a reset, nothing else."""
    try:
        return await reader.read() == b""
    except ConnectionResetError:
        return True


async def refused(address: tuple[str, int]) -> bool:
    """Whether a new connection to ``address`` is refused."""
    try:
        _, writer = await asyncio.open_connection(*address)
    except ConnectionRefusedError:
        return True
    writer.close()
    return False


@pytest.mark.root
async def test_privileged_health_port_survives_the_privilege_drop(tmp_path: Path) -> None:
    """--health on a port below 1024 with --user nobody: bound as root, served as nobody."""
    port = free_privileged_port()
    # nobody cannot look into the test's private tmp_path: no flag files at all.
    flags = {"SERVING_DIR": "/nonexistent"}
    async with serve(
        tmp_path, "--health", f"127.0.0.1:{port}", "--user", "nobody", env=flags
    ) as app:
        await app.wait_event("ready")
        assert (await http_get(("127.0.0.1", port), "/readyz"))[:2] == (200, {"state": "running"})
        status = await asyncio.to_thread(Path(f"/proc/{app.proc.pid}/status").read_text)
        uid = next(line.split()[1] for line in status.splitlines() if line.startswith("Uid:"))
        assert int(uid) == pwd.getpwnam("nobody").pw_uid
        app.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(app.proc.wait(), timeout=15) == 0


async def test_health_on_a_unix_socket(tmp_path: Path) -> None:
    """--health unix:/path serves the same answers; the file is removed at exit."""
    path = tmp_path / "health.sock"
    async with serve(tmp_path, "--health", f"unix:{path}") as app:
        await app.wait_event("ready")
        assert (await http_get(str(path), "/readyz"))[:2] == (200, {"state": "running"})
        app.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(app.proc.wait(), timeout=15) == 0
    assert not path.exists()


async def test_health_socket_from_socket_activation(tmp_path: Path) -> None:
    """Under systemd-socket-activate the fd named "health" is the health socket."""
    tool = require_tool("systemd-socket-activate")
    app_port, health_port = free_ports(2)
    log = tmp_path / "app.jsonl"
    proc = await asyncio.create_subprocess_exec(
        tool,
        "-l",
        f"127.0.0.1:{app_port}",
        "-l",
        f"127.0.0.1:{health_port}",
        "--fdname=app:health",
        PYTHON,
        "-m",
        "aiodaemon",
        "run",
        "serving_app:main",
        "--listen",
        "app=127.0.0.1:1",
        "--health",
        # A fallback of its own: one address for two sockets is a usage error.
        "127.0.0.1:2",
        "--log-file",
        str(log),
        cwd=Path(__file__).parent / "programs",
        env=clean_env({"SERVING_DIR": str(tmp_path)}),
    )
    try:

        async def probe() -> tuple[int, object, bytes]:
            deadline = time.monotonic() + 15
            while True:
                try:
                    return await http_get(("127.0.0.1", health_port), "/readyz")
                except (ConnectionError, ValueError, IndexError):
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.1)

        status, body, _ = await probe()
        while status != 200:
            status, body, _ = await probe()
        assert body == {"state": "running"}
        assert await exchange(("127.0.0.1", app_port), ["PING"]) == ["PONG"]
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), timeout=15) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_run_names_the_health_option_when_its_port_is_taken(tmp_path: Path) -> None:
    """run(health=) on a taken port: ``health: cannot bind ...``, as the CLI says ``--health``.

    It said ``listen[health]: ...``, sending the user after a listen= entry they never wrote.
    """
    script = install_program("fuzz_launch", tmp_path)
    ran = tmp_path / "main-ran"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        options = {"detach": False, "health": f"127.0.0.1:{port}"}
        payload = base64.b64encode(pickle.dumps(options)).decode()
        result = python([script, payload, ran, "health-taken"], cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"aiodaemon: health: cannot bind 127.0.0.1:{port}: Address already in use"
    )
    assert not ran.exists()


@pytest.mark.parametrize("cli", [False, True], ids=["run", "cli"])
def test_a_listen_socket_named_health_is_named_as_a_listen_socket(
    tmp_path: Path, cli: bool
) -> None:
    """A listen= socket named health (no health=) on a taken port is named as a listen= socket.

    It said ``health: ...`` (``--health: ...``), naming an option the program never gave.
    """
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        if cli:
            install_program("noop", tmp_path)
            result = aiodaemon_cli(
                "run", "app:main", "--listen", f"health=127.0.0.1:{port}", cwd=tmp_path
            )
            said = "--listen health"
        else:
            script = install_program("fuzz_launch", tmp_path)
            options = {"detach": False, "listen": {"health": f"127.0.0.1:{port}"}}
            payload = base64.b64encode(pickle.dumps(options)).decode()
            result = python([script, payload, tmp_path / "ran", "named-health"], cwd=tmp_path)
            said = "listen[health]"
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"aiodaemon: {said}: cannot bind 127.0.0.1:{port}: Address already in use"
    )
