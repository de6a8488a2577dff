"""gRPC (grpcio's asyncio API) under aiodaemon: examples/grpc_app.py, as docs/servers.md shows it.

gRPC binds its port itself (``SO_REUSEPORT``), so an upgrade's new process
binds beside the old one. Driven from outside with a gRPC client on loopback:
the answers, ``/readyz``, the exit statuses and the JSON log.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from collections import Counter
from pathlib import Path

import grpc
import pytest

from .support import (
    AIODAEMON,
    REPO,
    clean_env,
    free_port,
    read_json_lines,
    read_pid,
    wait_for,
    wait_gone,
)

#: What docs/servers.md tells clients to use across upgrades: the RPC waits for
#: a connection, and an idempotent one is retried when gRPC's own server
#: shutdown refused it (UNAVAILABLE, CANCELLED) at the moment it arrived.
RETRYING = [
    (
        "grpc.service_config",
        json.dumps(
            {
                "methodConfig": [
                    {
                        "name": [{"service": "echo.Echo"}],
                        "retryPolicy": {
                            "maxAttempts": 5,
                            "initialBackoff": "0.05s",
                            "maxBackoff": "1s",
                            "backoffMultiplier": 2,
                            "retryableStatusCodes": ["UNAVAILABLE", "CANCELLED"],
                        },
                    }
                ]
            }
        ),
    )
]


def cli(*args: str | os.PathLike[str], address: str = "") -> subprocess.CompletedProcess[str]:
    """``aiodaemon ARGS`` from the repository, the example's address in its environment."""
    return subprocess.run(
        [str(AIODAEMON), *map(str, args)],
        cwd=REPO,
        env=clean_env({"GRPC_ADDRESS": address} if address else None),
        capture_output=True,
        text=True,
        timeout=90,
    )


async def say(channel: grpc.aio.Channel, message: bytes, *, wait: bool = False) -> bytes:
    """``echo.Echo/Say``: the answer."""
    rpc: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary("/echo.Echo/Say")
    answer: bytes = await rpc(message, timeout=20, wait_for_ready=wait)
    return answer


def start(tmp_path: Path, *extra: str) -> tuple[str, Path, Path]:
    """The example started on a free port: its address, pidfile and log."""
    address = f"127.0.0.1:{free_port()}"
    pidfile, log = tmp_path / "grpc.pid", tmp_path / "grpc.jsonl"
    started = cli(
        "start", "examples.grpc_app:main", "--pidfile", pidfile, "--log-file", log, *extra,
        address=address,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    return address, pidfile, log


def wait_for_record(log: Path, event: str) -> None:
    """Wait until the daemon's log holds a record of ``event``."""
    wait_for(lambda: any(r["event"] == event for r in read_json_lines(log)), 20, event)


async def readyz(health: tuple[str, int]) -> bytes:
    """The first line of ``GET /readyz``."""
    reader, writer = await asyncio.open_connection(*health)
    writer.write(b"GET /readyz HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n")
    data = await reader.read()
    writer.close()
    return data.split(b"\r\n", 1)[0]


async def test_a_stop_drains_and_answers_the_rpc_in_flight(tmp_path: Path) -> None:
    """SIGTERM: /readyz 503 at once, RPCs answered through the drain delay, then
    refused; the RPC in flight gets its answer, and the daemon exits 0."""
    health = ("127.0.0.1", free_port())
    address, pidfile, log = start(
        tmp_path, "--health", f"{health[0]}:{health[1]}", "--drain-delay", "1"
    )
    pid = read_pid(pidfile)
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            assert await say(channel, b"hi") == f"hi from {pid}".encode()
            slow = asyncio.create_task(say(channel, b"slow?delay=2"))
            await asyncio.to_thread(wait_for_record, log, "slow request")
            os.kill(pid, signal.SIGTERM)
            await asyncio.to_thread(wait_for_record, log, "shutdown started")
            assert await readyz(health) == b"HTTP/1.1 503 Service Unavailable"
            assert await say(channel, b"draining") == f"draining from {pid}".encode()
            await asyncio.to_thread(wait_for_record, log, "stopped accepting")
            async with grpc.aio.insecure_channel(address) as late:
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await say(late, b"late")
                assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            assert await asyncio.wait_for(slow, 20) == f"slow?delay=2 from {pid}".encode()
    except BaseException:
        os.kill(pid, signal.SIGKILL)
        raise
    await asyncio.to_thread(wait_gone, pid, 20)
    records = read_json_lines(log)
    assert [r["status"] for r in records if r["event"] == "exit"] == [0]
    assert [r["logger"] for r in records if r["event"] == "slow request"] == ["echo"]


async def test_upgrades_under_load_fail_no_rpc(tmp_path: Path) -> None:
    """Three `aiodaemon upgrade`s while clients call flat out: no RPC fails, every
    process serves, and each old one exits 0."""
    address, pidfile, log = start(tmp_path)
    pids = [read_pid(pidfile)]
    answered: Counter[int] = Counter()
    failed: list[str] = []
    done = asyncio.Event()

    async def client() -> None:
        async with grpc.aio.insecure_channel(address, options=RETRYING) as channel:
            while not done.is_set():
                try:
                    answer = await say(channel, b"load", wait=True)
                except grpc.aio.AioRpcError as exc:
                    failed.append(f"{exc.code()}: {exc.details()}")
                else:
                    answered[int(answer.rsplit(b" ", 1)[1])] += 1

    clients = [asyncio.create_task(client()) for _ in range(4)]
    try:
        for _ in range(3):
            await asyncio.to_thread(
                wait_for, lambda: answered[pids[-1]] > 200, 30, "the newest process to serve"
            )
            upgraded = await asyncio.to_thread(cli, "upgrade", "--pidfile", pidfile)
            assert upgraded.returncode == 0, upgraded.stderr
            pids.append(int(upgraded.stdout))
        await asyncio.to_thread(
            wait_for, lambda: answered[pids[-1]] > 200, 30, "the newest process to serve"
        )
    finally:
        done.set()
        await asyncio.gather(*clients)
        stopped = await asyncio.to_thread(cli, "stop", "--pidfile", pidfile)
    assert stopped.returncode == 0, stopped.stderr
    assert failed == []
    assert set(answered) == set(pids)
    for pid in pids:
        await asyncio.to_thread(wait_gone, pid)
    exits = {r["pid"]: r["status"] for r in read_json_lines(log) if r["event"] == "exit"}
    assert exits == dict.fromkeys(pids, 0)
