"""Helpers for the tests that drive tests/programs/control_app.py through the console script."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import aiodaemon
from aiodaemon._prefork._control_protocol import MAX_WAITING

from .support import (
    AIODAEMON,
    PROGRAMS,
    aiodaemon_cli,
    clean_env,
    kill_quietly,
    read_json_lines,
    wait_for,
)


class ControlApp:
    """A control_app daemon's directory: steering files, pidfile, control socket, log."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.pidfile = directory / "app.pid"
        self.control = directory / "app.pid.ctl"
        self.log = directory / "log.jsonl"
        #: variables added to the environment of the daemon and of the commands.
        self.extra_env: dict[str, str] = {}

    def steer(self, name: str, mode: str = "") -> None:
        """Write a steering file of tests/programs/control_app.py (empty: just make it)."""
        (self.dir / name).write_text(mode)

    def env(self) -> dict[str, str]:
        return {"CONTROL_APP_DIR": str(self.dir), **self.extra_env}

    def cli(self, *args: str | Path, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """``aiodaemon ARGS`` to completion, from tests/programs."""
        return aiodaemon_cli(*args, cwd=PROGRAMS, timeout=timeout, env=self.env())

    def start(self, *extra: str) -> int:
        """``aiodaemon start control_app:main EXTRA`` with a log file; the daemon's pid."""
        result = self.cli("start", "control_app:main", "--pidfile", self.pidfile, *extra,
                          "--log-file", self.log, "--shutdown-timeout", "10")  # fmt: skip
        assert result.returncode == 0, result.stderr
        return int(result.stdout)

    def watch(self, *args: str | Path) -> Watched:
        """``aiodaemon ARGS`` in the background, its stderr read line by line."""
        return Watched([str(AIODAEMON), *map(str, args)], self.env())

    def records(self, event: str) -> list[dict[str, object]]:
        """The log records with ``event``, so far."""
        if not self.log.exists():
            return []
        return [r for r in read_json_lines(self.log) if r.get("event") == event]

    def reload_runs(self) -> list[str]:
        """One line per reload run the hook saw (its mode)."""
        path = self.dir / "reloads"
        return path.read_text().splitlines() if path.exists() else []


class Watched:
    """A command running in the background whose stderr lines the test can wait for."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            argv,
            cwd=PROGRAMS,
            env=clean_env(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def said(self, text: str) -> bool:
        """Whether a stderr line so far contains ``text``."""
        return any(text in line for line in list(self.lines))

    def finish(self, timeout: float = 90.0) -> tuple[int, str, list[str]]:
        """Wait for the exit: its status, stdout and stderr lines."""
        assert self.proc.stdout is not None
        code = self.proc.wait(timeout)  # its stdout is one line: the pipe never fills
        out = self.proc.stdout.read()
        self._reader.join(timeout)
        return code, out, self.lines

    def kill(self) -> None:
        """End it if it still runs, and close its pipes."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._reader.join(10)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


@contextlib.contextmanager
def open_control_app() -> Iterator[ControlApp]:
    """A directory for one control_app daemon; whatever holds its pidfile at the end is killed.

    Not pytest's tmp_path: the control socket's path must stay short (108 bytes).
    """
    path = Path(tempfile.mkdtemp(prefix="aiodaemon-busy-"))
    app = ControlApp(path)
    try:
        yield app
    finally:
        holder = aiodaemon.read_pidfile(app.pidfile).running_pid
        if holder is not None:
            kill_quietly(holder)
        shutil.rmtree(path, ignore_errors=True)


def reload_request(app: ControlApp) -> socket.socket:
    """A connection that asked for a reload (waiting up to 600 s for it)."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(str(app.control))
    conn.sendall(b'{"v": 1, "cmd": "reload", "timeout": 600}\n')
    return conn


@contextlib.contextmanager
def reloads_waiting(app: ControlApp) -> Iterator[list[socket.socket]]:
    """Every waiting slot held by a reload of a held hook; yields their connections.

    As 32 parallel ``aiodaemon reload`` of a slow hook would: each waits, on its
    connection, for the run that covers it. Leaving releases the hook.
    """
    app.steer("reload", "wait")
    held: list[socket.socket] = []
    try:
        for _ in range(MAX_WAITING):
            held.append(reload_request(app))
        wait_for(lambda: app.reload_runs() == ["wait"], 30, "the held reload hook")
        # Every request taken in: one runs the held hook, the others wait for the next run.
        wait_for(lambda: len(app.records("reload queued")) >= MAX_WAITING - 1, 30, "32 waiters")
        yield held
    finally:
        app.steer("reload-release")
        for conn in held:
            conn.close()
