"""Helpers for the serving and health tests: start tests/programs/serving_app.py, talk to it."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from .support import PYTHON, clean_env, read_json_lines, wait_for

PROGRAMS = Path(__file__).resolve().parent / "programs"


@dataclass
class Served:
    """A running serving_app daemon (foreground, ``aiodaemon run``)."""

    proc: asyncio.subprocess.Process
    log: Path
    dir: Path

    def records(self) -> list[dict[str, object]]:
        """The daemon's JSON log records so far."""
        return read_json_lines(self.log) if self.log.exists() else []

    def events(self) -> list[str]:
        """The ``event`` of every record so far, in order."""
        return [str(r["event"]) for r in self.records()]

    async def wait_event(self, event: str, count: int = 1) -> None:
        """Wait (15 s at most) until ``event`` was logged ``count`` times."""
        await asyncio.to_thread(
            wait_for, lambda: self.events().count(event) >= count, 15.0, f"{count}x {event!r}"
        )

    async def address(self, name: str) -> tuple[str, int]:
        """``(host, port)`` of socket ``name`` from the ``starting`` record."""

        def find() -> str | None:
            for record in self.records():
                if record["event"] == "starting":
                    sockets = record["sockets"]
                    assert isinstance(sockets, dict)
                    return str(sockets[name])
            return None

        text = await asyncio.to_thread(wait_for, find, 15.0, "the starting record")
        host, _, port = text.rpartition(":")
        return host, int(port)


@asynccontextmanager
async def serve(
    tmp_path: Path, *options: str, env: dict[str, str] | None = None
) -> AsyncIterator[Served]:
    """Run serving_app with ``--listen app=127.0.0.1:0`` plus ``options``; killed at the end."""
    log = tmp_path / "app.jsonl"
    proc = await asyncio.create_subprocess_exec(
        PYTHON,
        "-m",
        "aiodaemon",
        "run",
        "serving_app:main",
        "--listen",
        "app=127.0.0.1:0",
        "--log-file",
        str(log),
        *options,
        cwd=PROGRAMS,
        env=clean_env({"SERVING_DIR": str(tmp_path), **(env or {})}),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    served = Served(proc, log, tmp_path)
    try:
        yield served
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def http_get(
    address: tuple[str, int] | str, path: str, *, raw: bytes | None = None
) -> tuple[int, dict[str, object] | None, bytes]:
    """One request to the health endpoint: (status, JSON body or None, the whole response)."""
    if isinstance(address, str):
        reader, writer = await asyncio.open_unix_connection(address)
    else:
        reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(raw if raw is not None else f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        await writer.drain()
        response = await reader.read()
    finally:
        writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.1 ") else 0
    parsed = json.loads(body) if body.startswith(b"{") else None
    return status, parsed, response


async def exchange(address: tuple[str, int], lines: Sequence[str]) -> list[str]:
    """Send ``lines`` on one connection to the app socket; the answers until it closes."""
    reader, writer = await asyncio.open_connection(*address)
    try:
        for line in lines:
            writer.write(f"{line}\n".encode())
        await writer.drain()
        answers: list[str] = []
        while len(answers) < len(lines) and (answer := await reader.readline()):
            answers.append(answer.decode().strip())
        return answers
    finally:
        writer.close()
