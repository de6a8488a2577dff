"""The shipped examples, run as a user would run them."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from aiodaemon.testing import launch

from .support import (
    PYTHON,
    REPO,
    aiodaemon_cli,
    clean_env,
    is_alive,
    read_json_lines,
    read_pid,
    wait_for,
    wait_gone,
)


def listening_on(log: Path, name: str) -> tuple[str, int]:
    """The address the daemon reported for socket ``name`` in its ``starting`` line."""

    def find() -> str | None:
        if not log.exists():
            return None
        for line in read_json_lines(log):
            if line["event"] == "starting":
                sockets = line["sockets"]
                assert isinstance(sockets, dict)
                return str(sockets[name])
        return None

    host, _, port = wait_for(find, what="the starting line").rpartition(":")
    return host, int(port)


def test_echo_example_detaches_and_echoes(tmp_path: Path) -> None:
    """examples/echo.py starts detached, answers, and stops on SIGTERM leaving nothing."""
    pidfile, log = tmp_path / "echo.pid", tmp_path / "echo.jsonl"
    result = subprocess.run(
        [
            PYTHON,
            str(REPO / "examples/echo.py"),
            "--listen",
            "127.0.0.1:0",
            "--pidfile",
            str(pidfile),
            "--log-file",
            str(log),
        ],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    pid = read_pid(pidfile)
    try:
        host, port = listening_on(log, "echo")
        with socket.create_connection((host, port), timeout=5) as conn:
            conn.sendall(b"hello\n")
            assert conn.recv(64) == b"hello\n"
        serving = wait_for(
            lambda: [line for line in read_json_lines(log) if line["event"] == "serving"],
            what="the serving line",
        )
        assert [(line["host"], line["port"]) for line in serving] == [(host, port)]
    finally:
        os.kill(pid, signal.SIGTERM)
    wait_gone(pid)
    assert not pidfile.exists()
    assert read_json_lines(log)[-1]["event"] == "exit"


def test_echo_example_start_with_a_wrong_listen_name_fails_the_start(tmp_path: Path) -> None:
    """`start examples.echo:main --listen http=...` (the program serves `echo`): exit 1, why.

    The README's command with the name mistyped. The server started in `main`,
    after ready: `start` printed a pid and exited 0, and the daemon was dead
    at once, the KeyError only in the log.
    """
    pidfile, log = tmp_path / "echo.pid", tmp_path / "echo.jsonl"
    started = aiodaemon_cli(
        "start",
        "examples.echo:main",
        "--pidfile",
        pidfile,
        "--listen",
        "http=127.0.0.1:0",
        "--log-file",
        log,
        cwd=REPO,
    )
    assert started.returncode == 1, started.stdout + started.stderr
    assert started.stdout == ""
    assert "KeyError" in started.stderr
    assert "no listen= socket named 'echo' (known: 'http')" in started.stderr
    assert "Traceback" not in started.stderr
    assert not pidfile.exists()
    status = aiodaemon_cli("status", "--pidfile", pidfile)
    assert status.returncode == 3, status.stdout + status.stderr
    daemon_pids = {record["pid"] for record in read_json_lines(log)}
    assert daemon_pids, "the daemon logged nothing"
    assert not [pid for pid in daemon_pids if isinstance(pid, int) and is_alive(pid)]


async def http_get(host: str, port: int, path: str) -> bytes:
    """One HTTP/1.1 request; the whole response."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    data = await reader.read()
    writer.close()
    return data


async def test_http_drain_completes_in_flight_requests() -> None:
    """50 slow requests in flight at SIGTERM all complete; new connections are refused; exit 0."""
    async with launch(REPO / "examples/http_drain.py", listen={"http": "127.0.0.1:0"}) as daemon:
        address = daemon.address("http")
        assert isinstance(address, tuple)
        host, port = address
        requests = [asyncio.create_task(http_get(host, port, f"/r{i}")) for i in range(50)]
        await daemon.wait_for_record(
            lambda _: sum(r["event"] == "request" for r in daemon.records()) == 50
        )
        daemon.signal(signal.SIGTERM)
        await daemon.wait_for_record("stopped accepting")
        with pytest.raises(ConnectionRefusedError):
            await http_get(host, port, "/late")
        responses = await asyncio.wait_for(asyncio.gather(*requests), timeout=10)
        for i, response in enumerate(responses):
            assert response.startswith(b"HTTP/1.1 200 OK\r\n")
            assert response.endswith(f"done /r{i}\n".encode())
        assert await daemon.wait(timeout=15) == 0


async def test_http_drain_answers_a_header_over_64_kib_with_431() -> None:
    """A header over the reader's 64 KiB limit gets a 431 and a close, and no error is logged."""
    async with launch(REPO / "examples/http_drain.py", listen={"http": "127.0.0.1:0"}) as daemon:
        reader, writer = await asyncio.open_connection(*daemon.inet_address("http"))
        writer.write(b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"), answer
        assert await daemon.stop() == 0
    assert [r for r in daemon.records() if r["level"] in ("error", "critical")] == []
