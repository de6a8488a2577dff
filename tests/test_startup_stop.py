"""A stop while the startup hooks run: it wins over "ready", and the launcher says why.

The program is ``tests/programs/startup_stop.py``: its startup hook either
blocks the event loop (synchronous code) until the test lets it return, or
calls ``ctx.request_shutdown()``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from aiodaemon._prefork._control_protocol import VERSION, decode, encode

from .support import (
    AIODAEMON,
    PYTHON,
    aiodaemon_cli,
    clean_env,
    install_program,
    kill_quietly,
    program,
    read_json_lines,
    read_pid,
    require_tool,
    wait_for,
)

LOOPS = pytest.mark.parametrize("uvloop", [True, False], ids=["uvloop", "asyncio"])


class Start:
    """One run of the program, foreground or detached, with its pidfile, log and record."""

    def __init__(self, tmp_path: Path, case: str, *, detach: bool, uvloop: bool = True) -> None:
        self.pidfile, self.log = tmp_path / "d.pid", tmp_path / "log.jsonl"
        self.record = tmp_path / "record.txt"
        self.record.touch()
        options = {
            "detach": detach,
            "pidfile": str(self.pidfile),
            "log_file": str(self.log),
            "uvloop": uvloop,
        }
        self.proc = subprocess.Popen(
            [PYTHON, str(program("startup_stop")), json.dumps(options), str(self.record), case],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(),
        )
        self.daemon_pid: int | None = None

    def wait_blocking(self) -> int:
        """Wait until the startup hook has begun blocking the loop; the daemon's pid."""
        wait_for(lambda: "startup begun" in self.recorded(), 30, "the startup hook")
        self.daemon_pid = int(self.pidfile.read_text())
        return self.daemon_pid

    def let_hook_return(self) -> None:
        """Let the blocking startup hook return."""
        Path(f"{self.record}.go").touch()

    def finish(self) -> tuple[int, str, str]:
        """The launcher's (or foreground daemon's) status, stdout and stderr."""
        try:
            out, err = self.proc.communicate(timeout=30)
        finally:
            kill_quietly(self.proc.pid)
            self.proc.wait()
        # Detached, the daemon outlives the launcher by its last steps.
        wait_for(lambda: not self.pidfile.exists(), 30, "the daemon's exit")
        wait_for(lambda: self.events()[-1:] == ["exit"], 30, "the exit record")
        if self.daemon_pid is not None:
            kill_quietly(self.daemon_pid)
        return self.proc.returncode, out, err

    def recorded(self) -> list[str]:
        """What the program recorded: hooks begun and returned, main."""
        return self.record.read_text().splitlines()

    def records(self) -> list[dict[str, object]]:
        """The daemon's log records."""
        return read_json_lines(self.log) if self.log.exists() else []

    def events(self) -> list[str]:
        """The event of each log record."""
        return [str(r["event"]) for r in self.records()]


def _assert_stopped_before_ready(start: Start, status: int, err: str, message: str) -> None:
    """Exit 1 with ``message``; never ready, main never ran, the shutdown hook ran."""
    assert status == 1, err
    assert err.strip().splitlines()[-1] == f"aiodaemon: {message}"
    assert "ready" not in start.events()
    assert start.recorded() == ["startup begun", "startup returned", "shutdown hook"]
    assert start.records()[-1]["status"] == 1
    assert start.records()[-1]["reason"] == message


@LOOPS
@pytest.mark.parametrize("detach", [True, False], ids=["detached", "foreground"])
def test_sigterm_while_a_startup_hook_blocks_the_loop_wins_over_ready(
    tmp_path: Path, detach: bool, uvloop: bool
) -> None:
    """SIGTERM while a hook blocks the loop: exit 1, "stopped by SIGTERM before it was ready"."""
    start = Start(tmp_path, "block", detach=detach, uvloop=uvloop)
    pid = start.wait_blocking()
    # Delivered (the wake-up written) before the hook can see the go-ahead.
    os.kill(pid, signal.SIGTERM)
    start.let_hook_return()
    status, out, err = start.finish()
    _assert_stopped_before_ready(start, status, err, "stopped by SIGTERM before it was ready")
    assert out == ""


@LOOPS
def test_a_stop_request_while_a_startup_hook_blocks_the_loop_wins_over_ready(
    tmp_path: Path, uvloop: bool
) -> None:
    """``aiodaemon stop``'s request while a hook blocks the loop: the launcher exits 1, not 0.

    The request is the one ``aiodaemon stop`` sends, written by the test so that
    it is known to be waiting in the socket before the hook returns.
    """
    start = Start(tmp_path, "block", detach=True, uvloop=uvloop)
    start.wait_blocking()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(f"{start.pidfile}.ctl")
        sock.sendall(encode({"v": VERSION, "cmd": "stop"}))
        sock.shutdown(socket.SHUT_WR)
        start.let_hook_return()
        answer = decode(sock.makefile("rb").readline())
    assert answer["ok"] is True
    assert answer["already_stopping"] is False
    status, out, err = start.finish()
    message = "stopped by `aiodaemon stop` before it was ready"
    _assert_stopped_before_ready(start, status, err, message)
    assert out == ""


@pytest.mark.parametrize("detach", [True, False], ids=["detached", "foreground"])
@pytest.mark.parametrize(
    ("arg", "status", "message"),
    [
        ("", 0, "the daemon ended before it was ready (ctx.request_shutdown() in startup hook "),
        ("7", 7, "ctx.request_shutdown(7) in startup hook "),
    ],
    ids=["status-0", "status-7"],
)
def test_request_shutdown_in_a_startup_hook_ends_the_start_with_a_reason(
    tmp_path: Path, detach: bool, arg: str, status: int, message: str
) -> None:
    """``ctx.request_shutdown(n)`` in a startup hook: status n, said why, as ``sys.exit(n)`` is."""
    start = Start(tmp_path, f"request:{arg}", detach=detach)
    code, out, err = start.finish()
    reason = f"{message}__main__.load_config" + (")" if not status else "")
    # A detached start's launcher says whether a daemon runs: none does, whatever it chose.
    assert code == (status or 1 if detach else status), err
    assert err.strip().splitlines()[-1] == f"aiodaemon: {reason}"
    assert "exited before it was ready" not in err
    assert out == ""
    assert start.recorded() == ["startup begun", "shutdown hook"]
    events = start.events()
    assert "ready" not in events
    (request,) = [r for r in start.records() if r["event"] == "shutdown requested by the program"]
    assert request["by"] == "startup hook __main__.load_config"
    assert request["status"] == status
    assert start.records()[-1]["event"] == "exit"
    assert start.records()[-1]["status"] == status
    assert start.records()[-1]["reason"] == reason


@pytest.mark.parametrize(
    "signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["INT", "TERM", "HUP"]
)
def test_ctrl_c_on_a_waiting_launcher_says_the_daemon_goes_on_and_how_to_stop_it(
    tmp_path: Path, signum: signal.Signals
) -> None:
    """A signal to the launcher before ready: 128+n, the daemon's pid and how to stop it.

    SIGTERM (``timeout 60 aiodaemon start``) and SIGHUP (a closed terminal)
    too: they killed the launcher silently, the daemon still starting.
    """
    start = Start(tmp_path, "block", detach=True)
    pid = start.wait_blocking()
    os.kill(start.proc.pid, signum)
    try:
        out, err = start.proc.communicate(timeout=30)
        assert start.proc.returncode == 128 + signum, err
        assert out == ""
        assert err.splitlines() == [
            "aiodaemon: interrupted while waiting for the daemon to be ready; "
            f"the daemon (pid {pid}) goes on starting; "
            f"`aiodaemon stop --pidfile {start.pidfile}` stops it"
        ]
        # As said: it goes on starting, and the command given stops it.
        start.let_hook_return()
        wait_for(lambda: "main" in start.recorded(), 30, "main")
        stop = aiodaemon_cli("stop", "--pidfile", start.pidfile)
        assert stop.returncode == 0, stop.stderr
        assert f"stopped (pid {pid})" in stop.stderr + stop.stdout
        wait_for(lambda: start.events()[-1:] == ["exit"], 30, "the exit record")
        assert start.records()[-1]["status"] == 0
    finally:
        kill_quietly(pid)


def test_ctrl_c_while_the_launcher_stops_a_timed_out_daemon_says_it_failed(
    tmp_path: Path,
) -> None:
    """SIGINT while a daemon not ready in time stops: its verdict, not "goes on starting"."""
    pidfile, log, release = tmp_path / "d.pid", tmp_path / "log.jsonl", tmp_path / "release"
    options = {
        "detach": True,
        "pidfile": str(pidfile),
        "log_file": str(log),
        # Long enough for a loaded machine to bring the daemon to its loop, whose
        # handler turns the launcher's SIGTERM into a shutdown.
        "start_timeout": 3,
    }
    proc = subprocess.Popen(
        [PYTHON, str(program("slow_start_held_stop")), json.dumps(options), str(release)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )
    pid = None
    try:

        def events() -> list[object]:
            return [r["event"] for r in read_json_lines(log)] if log.exists() else []

        pid = read_pid(pidfile)
        # Past the start timeout the launcher stops the daemon (its SIGTERM
        # logged) and waits for its end (the daemon's shutdown hook is held
        # meanwhile). Its pidfd is no sign: it is taken when the pid is announced.
        wait_for(lambda: "signal received" in events(), 30, "the launcher's SIGTERM to the daemon")
        os.kill(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        assert (proc.returncode, out) == (128 + signal.SIGINT, "")
        assert err.splitlines() == [
            f"aiodaemon: not ready after 3 s; interrupted while the daemon (pid {pid}) stops; "
            f"`aiodaemon stop --pidfile {pidfile}` ends it if it does not"
        ]
        # As said: it stops, by itself.
        release.touch()
        wait_for(lambda: events()[-1:] == ["exit"], 30, "the exit record")
        assert read_json_lines(log)[-1]["reason"] == "not ready after 3 s"
        wait_for(lambda: not pidfile.exists(), 30, "the pidfile's removal")
    finally:
        proc.kill()
        proc.communicate()
        if pid is not None:
            kill_quietly(pid)


def test_a_sigterm_pending_as_the_loop_starts_begins_no_startup_hook(tmp_path: Path) -> None:
    """SIGTERM before the startup hooks: none begins, the shutdown runs once, exit 1."""
    strace = require_tool("strace")
    install_program("cli_app", tmp_path, "app.py")
    trace, log = tmp_path / "strace.txt", tmp_path / "log.jsonl"
    # The daemon held 3 s as it enters chdir (after its fork, before its loop):
    # the SIGTERM waits for the loop, which reads it as the startup task starts.
    argv = [strace, "-f", "-qq", "-o", str(trace), "-e", "trace=chdir",
            "-e", "inject=chdir:delay_enter=3s", str(AIODAEMON), "start", "app:main",
            "--pidfile", str(tmp_path / "app.pid"), "--log-file", str(log)]  # fmt: skip
    launcher = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        text=True, cwd=tmp_path, env=clean_env(),
    )  # fmt: skip

    def chdirs() -> list[int]:
        text = trace.read_text() if trace.exists() else ""
        return [int(line.split()[0]) for line in text.splitlines() if "chdir(" in line]

    try:
        daemon = wait_for(chdirs, 30, "the daemon's chdir")[0]
        os.kill(daemon, signal.SIGTERM)
        out, err = launcher.communicate(timeout=60)
    finally:
        kill_quietly(launcher.pid)
        launcher.communicate()
    assert launcher.returncode == 1, err
    assert (out, err) == ("", "aiodaemon: stopped by SIGTERM before it was ready\n")
    # Its startup hook never began: the file it writes is not there.
    assert not (tmp_path / "started").exists()
    events = [r["event"] for r in read_json_lines(log)]
    assert "signal received" in events
    assert events.count("shutdown started") == 1
    assert events[-1] == "exit"
