"""A foreground daemon on a real terminal: the terminal's hang-up stops it, a plain SIGHUP reloads.

Before, the kernel's SIGHUP at the hang-up (terminal window closed, ssh
connection lost) was taken as a reload, and the daemon ran on with a dead
terminal (audit-race R7).
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import select
import shlex
import signal
import subprocess
from pathlib import Path

import pytest

from .support import (
    AIODAEMON,
    PROGRAMS,
    PYTHON,
    aiodaemon_cli,
    clean_env,
    install_program,
    is_alive,
    kill_quietly,
    proc_status,
    program,
    read_json_lines,
    read_pid,
    wait_for,
    wait_gone,
)


class _TerminalJob:
    """A program exec'd as the session leader of a new pty, as a shell's foreground job is.

    Its controlling terminal is the pty: closing our end (:meth:`hang_up`) hangs it up.
    """

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path | None = None) -> None:
        self.pid, self.controller = pty.fork()
        if self.pid == 0:  # the child execs at once
            if cwd is not None:
                os.chdir(cwd)
            os.execve(argv[0], argv, env)
        #: its exit status, once reaped
        self.statuses: list[int] = []

    def drain(self) -> None:
        """Read what it shows on its terminal, as a terminal emulator does."""
        with contextlib.suppress(OSError):
            while (
                self.controller >= 0
                and select.select([self.controller], [], [], 0)[0]
                and os.read(self.controller, 4096)
            ):
                pass

    def reaped(self) -> bool:
        """Whether it has exited (its status then in :attr:`statuses`); drains meanwhile."""
        self.drain()
        done, status = os.waitpid(self.pid, os.WNOHANG)
        if done:
            self.statuses.append(os.waitstatus_to_exitcode(status))
        return bool(done)

    def hang_up(self) -> None:
        """The terminal goes away (its window closed, an ssh connection lost)."""
        os.close(self.controller)
        self.controller = -1

    def close(self) -> None:
        """Close our end and reap the job, killed if it still runs."""
        if self.controller >= 0:
            os.close(self.controller)
        if not self.statuses:
            kill_quietly(self.pid)
            os.waitpid(self.pid, 0)


def test_hangup_stops_the_foreground_daemon(tmp_path: Path) -> None:
    """`kill -HUP` reloads; closing the terminal then ends the daemon gracefully with 0."""
    record, log = tmp_path / "record.txt", tmp_path / "log.jsonl"
    record.touch()
    options = {"detach": False, "log_file": str(log)}
    argv = [PYTHON, str(program("terminal_hangup")), json.dumps(options), str(record)]
    job = _TerminalJob(argv, clean_env())

    def recorded(line: str) -> int:
        job.drain()
        return record.read_text().splitlines().count(line)

    try:
        wait_for(lambda: recorded("main"), what="main")
        os.kill(job.pid, signal.SIGHUP)
        wait_for(lambda: recorded("reload"), what="the reload")
        job.hang_up()
        wait_for(job.reaped, what="the exit after the hang-up")
    finally:
        job.close()
    assert job.statuses == [0]
    assert record.read_text().splitlines() == ["main", "reload", "shutdown"]
    hangups = [r for r in read_json_lines(log) if r.get("terminal") == "hung up"]
    assert hangups
    assert hangups[0]["event"] == "signal received"
    assert read_json_lines(log)[-1]["event"] == "exit"


def test_a_daemon_in_a_session_of_its_own_still_reloads_after_its_terminal_went(
    tmp_path: Path,
) -> None:
    """setsid from a terminal: no hang-up reaches it; a later SIGHUP is a reload, not a stop.

    Its stdio is the dead terminal, but that was never its controlling
    terminal: a `kill -HUP` after the terminal went is somebody's reload.
    """
    record, log = tmp_path / "record.txt", tmp_path / "log.jsonl"
    record.touch()
    options = {"detach": False, "log_file": str(log)}
    argv = [PYTHON, str(program("terminal_hangup")), json.dumps(options), str(record)]
    env = clean_env()
    leader, controller = pty.fork()
    if leader == 0:  # the terminal's session leader, like a login shell
        if os.fork() == 0:
            os.setsid()  # `setsid aiodaemon run ...`: stdio on the terminal, no terminal of its own
            os.execve(PYTHON, argv, env)
        os.wait()
        os._exit(0)
    daemon = 0
    try:
        wait_for(lambda: "main" in record.read_text().splitlines(), what="main")
        daemon = int(str(read_json_lines(log)[0]["pid"]))
        os.close(controller)  # the terminal goes away (an ssh connection dropped)
        controller = -1
        os.kill(daemon, signal.SIGHUP)
        wait_for(lambda: "reload" in record.read_text().splitlines(), what="the reload")
        assert not [r for r in read_json_lines(log) if r.get("terminal") == "hung up"]
        os.kill(daemon, signal.SIGTERM)
        wait_for(lambda: read_json_lines(log)[-1]["event"] == "exit", what="the exit")
    finally:
        if controller >= 0:
            os.close(controller)
        if daemon:
            kill_quietly(daemon)
        kill_quietly(leader)
        os.waitpid(leader, 0)
    assert record.read_text().splitlines() == ["main", "reload", "shutdown"]
    assert read_json_lines(log)[-1]["status"] == 0


def test_the_successor_of_an_upgraded_foreground_daemon_reloads_on_sighup(
    tmp_path: Path,
) -> None:
    """`aiodaemon run` upgraded from its terminal: the shell has its prompt back, the new process
    runs on after the terminal closed, and a later SIGHUP is a reload, not the terminal's hang-up.
    """
    record, log = tmp_path / "record.txt", tmp_path / "log.jsonl"
    pidfile = tmp_path / "d.pid"
    record.touch()
    options = {"detach": False, "log_file": str(log), "pidfile": str(pidfile)}
    command = shlex.join(
        [PYTHON, str(program("terminal_hangup")), json.dumps(options), str(record)]
    )
    shell, controller = pty.fork()
    if shell == 0:  # a shell on the terminal runs the daemon, then waits on
        os.execve("/bin/bash", ["bash", "-c", f"{command}; sleep 60"], clean_env())
    successor = 0
    try:
        wait_for(lambda: "main" in record.read_text().splitlines(), what="main")
        old = read_pid(pidfile)
        upgrade = aiodaemon_cli("upgrade", "--pidfile", pidfile)
        assert upgrade.returncode == 0, upgrade.stderr
        successor = int(upgrade.stdout)
        wait_gone(old)
        os.close(controller)  # the terminal goes away
        controller = -1
        os.kill(successor, signal.SIGHUP)
        wait_for(lambda: "reload" in record.read_text().splitlines(), what="the reload")
        assert is_alive(successor)
        assert not [r for r in read_json_lines(log) if r.get("terminal") == "hung up"]
        os.kill(successor, signal.SIGTERM)
        wait_gone(successor)
    finally:
        if controller >= 0:
            os.close(controller)
        if successor:
            kill_quietly(successor)
        kill_quietly(shell)
        os.waitpid(shell, 0)
    [exited] = [r for r in read_json_lines(log) if r["event"] == "exit" and r["pid"] == successor]
    assert exited["status"] == 0


@pytest.mark.parametrize("when", ["during", "after"])
def test_hangup_during_or_after_a_failed_upgrade_stops_the_foreground_daemon(
    tmp_path: Path, when: str
) -> None:
    """`aiodaemon run` on a terminal, upgraded: closing the terminal while the new process
    starts, or once its start failed, ends the daemon gracefully with 0; nothing reloads.

    The upgrade holds SIGHUP's reload while it runs and gives SIGHUP back when
    it fails; a hang-up must be told from a reload all the same.
    """
    log, pidfile = tmp_path / "log.jsonl", tmp_path / "d.pid"
    argv = [str(AIODAEMON), "run", "control_app:main", "--pidfile", str(pidfile),
            "--log-file", str(log)]  # fmt: skip
    env = clean_env({"CONTROL_APP_DIR": str(tmp_path)})
    # The daemon leads the terminal's session, as in the first test: it gets the hang-up.
    job = _TerminalJob(argv, env, cwd=PROGRAMS)

    def events() -> list[object]:
        job.reaped()
        return [r["event"] for r in read_json_lines(log)] if log.exists() else []

    try:
        wait_for(lambda: "ready" in events(), what="ready")
        # The successor (the same program) waits in its startup hook, then fails.
        (tmp_path / "startup").write_text("wait-fail")
        upgrade = subprocess.Popen(
            [str(AIODAEMON), "upgrade", "--pidfile", str(pidfile), "--timeout", "60"],
            cwd=PROGRAMS, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        wait_for(lambda: "upgrade started" in events(), what="the upgrade to begin")
        if when == "after":
            (tmp_path / "release").touch()
            upgrade.wait(timeout=60)
            assert "upgrade failed" in events()
        job.hang_up()
        wait_for(job.reaped, what="the exit after the hang-up")
        _out, err = upgrade.communicate(timeout=60)
        assert upgrade.returncode == 1, err
    finally:
        job.close()
    assert job.statuses == [0]
    records = read_json_lines(log)
    assert [r for r in records if r.get("terminal") == "hung up"], records
    assert not (tmp_path / "reloads").exists()
    assert records[-1]["event"] == "exit"


def test_hangup_while_the_old_daemon_drains_after_an_upgrade_reloads_nothing(
    tmp_path: Path,
) -> None:
    """`aiodaemon run` on a terminal, upgraded, its terminal closed while it drains: the old
    process ends as it would, 0, and the new one, which has no terminal, is not reloaded.
    """
    log, pidfile = tmp_path / "log.jsonl", tmp_path / "d.pid"
    argv = [str(AIODAEMON), "run", "control_app:main", "--pidfile", str(pidfile),
            "--log-file", str(log)]  # fmt: skip
    env = clean_env({"CONTROL_APP_DIR": str(tmp_path)})
    job = _TerminalJob(argv, env, cwd=PROGRAMS)
    successor = 0

    def exited() -> bool:
        return bool(job.statuses) or job.reaped()

    def records() -> list[dict[str, object]]:
        exited()
        return read_json_lines(log) if log.exists() else []

    try:
        wait_for(lambda: "ready" in [r["event"] for r in records()], what="ready")
        # The old process drains until the test says so.
        (tmp_path / "shutdown").write_text("wait")
        upgrade = aiodaemon_cli("upgrade", "--pidfile", pidfile, cwd=PROGRAMS, env=env)
        assert upgrade.returncode == 0, upgrade.stderr
        successor = int(upgrade.stdout)
        wait_for(
            lambda: any(r["event"] == "upgrade handed over" for r in records()),
            what="the hand-over",
        )
        job.hang_up()
        wait_for(
            lambda: any(r.get("terminal") == "hung up" for r in records()),
            what="the hang-up in the old process's log",
        )
        (tmp_path / "shutdown-release").touch()
        wait_for(exited, what="the old process's exit")
        assert job.statuses == [0]
        assert is_alive(successor)
        assert not (tmp_path / "reloads").exists()
        assert not [r for r in records() if str(r["event"]).startswith("reload")]
        os.kill(successor, signal.SIGTERM)
        wait_gone(successor)
    finally:
        job.close()
        if successor:
            kill_quietly(successor)


def test_a_background_daemon_stops_at_its_first_line_under_tostop(tmp_path: Path) -> None:
    """`stty tostop`, then `aiodaemon run ... &`: the job stops (SIGTTOU) at its first line."""
    install_program("cli_app", tmp_path)
    pidfile = tmp_path / "app.pid"
    # A shell's background job: a process group of its own on the shell's terminal
    # (the shell stays: a job its shell left would be continued with a SIGHUP).
    command = shlex.join([str(AIODAEMON), "run", "app:main", "--pidfile", str(pidfile)])
    script = f"stty tostop; set -m; {command} & sleep 3600"
    job = _TerminalJob(["/bin/bash", "-c", script], clean_env(), cwd=tmp_path)
    pid = 0
    try:
        pid = read_pid(pidfile, timeout=30)

        def stopped() -> bool:
            job.drain()
            return proc_status(pid)["State"].startswith("T")

        # Its first line on the terminal (`starting`), written from the background.
        wait_for(stopped, 30, "the job stopped by SIGTTOU")
    finally:
        if pid:
            kill_quietly(pid)
        job.close()
