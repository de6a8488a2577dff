"""A foreground daemon that drops from root leaves root's terminal: no keystroke injection.

Root types into an interactive bash on a real pty, as an admin would; the
daemon, once it runs as the service account, pushes a command into the
terminal with ``TIOCSTI`` (on fds 0 and 1 and on ``/dev/tty``) and looks for a
way to read what root types. Root's shell must run nothing, nothing may read
the terminal, the daemon's output must still show, and Ctrl-C must still stop it.
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import re
import select
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .security_support import User, arena, intruder, own_dir, records
from .support import PYTHON, REPO, clean_env, kill_quietly, wait_for

pytestmark = pytest.mark.root

__all__ = ["arena", "intruder"]  # fixtures, re-exported for pytest

INJECTOR = REPO / "tests" / "programs" / "tty_injector.py"
#: The exit status RootShell.run has the shell print after the command.
_RC = re.compile(rb"__rc=(\d+)__")


class Terminal:
    """A program on a real pty, read and typed into like a person at the keyboard."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        pid, fd = pty.fork()
        if pid == 0:  # pragma: no cover - the child
            try:
                os.chdir(REPO)
                os.execve(argv[0], argv, env)
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        self.output = b""
        self.status: int | None = None

    def type(self, text: str) -> None:
        """Type ``text`` (a line ends with ``\\n``; ``\\x03`` is Ctrl-C)."""
        os.write(self.fd, text.encode())

    def _read(self, timeout: float) -> bool:
        """Read what is there within ``timeout``; False once the terminal is closed."""
        if not select.select([self.fd], [], [], timeout)[0]:
            return True
        try:
            chunk = os.read(self.fd, 4096)
        except OSError:  # EIO: every process on the terminal has gone
            return False
        self.output += chunk
        return bool(chunk)

    def expect(self, pattern: re.Pattern[bytes], timeout: float = 30.0) -> re.Match[bytes]:
        """Wait for ``pattern`` in the output after what earlier calls consumed."""
        deadline = time.monotonic() + timeout
        while True:
            match = pattern.search(self.output)
            if match is not None:
                self.output = self.output[match.end() :]
                return match
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(min(left, 0.5)):
                tail = self.output[-600:].decode(errors="replace")
                raise AssertionError(f"no {pattern.pattern!r} on the terminal; it shows:\n{tail}")

    def wait_exit(self, timeout: float = 30.0) -> int:
        """Read until the program has exited; its exit status."""

        def gone() -> bool:
            self._read(0.05)
            waited, status = os.waitpid(self.pid, os.WNOHANG)
            if waited:
                self.status = os.waitstatus_to_exitcode(status)
            return bool(waited)

        wait_for(gone, timeout, "the program on the terminal to exit")
        assert self.status is not None
        return self.status

    def close(self) -> None:
        """End whatever still runs on the terminal."""
        if self.status is None:
            kill_quietly(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        os.close(self.fd)


class RootShell(Terminal):
    """An interactive root bash on a pty."""

    def __init__(self, env: dict[str, str]) -> None:
        super().__init__(["/bin/bash", "--norc", "--noprofile", "-i"], {**env, "PS1": "$ "})

    def run(self, command: str, timeout: float = 60.0) -> int:
        """Type ``command`` and wait for it to finish; its exit status."""
        self.type(f"{command}; echo __rc=$?__\n")
        return int(self.expect(_RC, timeout).group(1))

    def settle(self) -> None:
        """Wait until the shell has read and run everything typed (or injected) so far."""
        self.type("echo __settled__\n")
        self.expect(re.compile(rb"^__settled__", re.M))


@contextlib.contextmanager
def root_shell(env: dict[str, str]) -> Iterator[RootShell]:
    """An interactive root bash on a pty, exited at the end."""
    shell = RootShell(env)
    try:
        yield shell
        shell.type("exit\n")
        shell.wait_exit()
    finally:
        shell.close()


def _injection_env(arena: Path, user: User) -> tuple[dict[str, str], Path, Path]:
    """The attack's environment; the file root's shell would create, and the report's path."""
    out = own_dir(arena / "out", user)
    pwned = arena / "pwned"
    env = clean_env(
        {
            "TERM": "dumb",
            "TTY_COMMAND": f"touch {pwned}",
            "TTY_GREETING": "__injector-still-writes__",
            "TTY_REPORT": str(out / "report.json"),
        }
    )
    return env, pwned, out / "report.json"


def _report(path: Path) -> dict[str, object]:
    report: dict[str, object] = json.loads(path.read_text())
    return report


def test_a_dropped_foreground_daemon_cannot_type_into_roots_shell(
    arena: Path, intruder: User
) -> None:
    """aiodaemon run --user: TIOCSTI is refused on fd 0 and /dev/tty; root's shell runs nothing."""
    env, pwned, report = _injection_env(arena, intruder)
    with root_shell(env) as shell:
        command = f"{PYTHON} -m aiodaemon run tests.programs.tty_injector:main"
        shell.type(f"{command} --user {intruder.name} --log-level error; echo __rc=$?__\n")
        shell.expect(re.compile(rb"__injector-still-writes__"))
        assert int(shell.expect(_RC).group(1)) == 0
        shell.settle()
    assert not pwned.exists(), "root's shell ran the service account's command"
    assert _report(report) == {
        "uid": intruder.uid,
        "stdin": os.strerror(25),  # ENOTTY: stdin is /dev/null, not root's terminal
        "stdout": os.strerror(1),  # EPERM: not its controlling terminal any more
        "dev_tty": f"open: {os.strerror(6)}",  # ENXIO: it has none
        "readable": [],  # no descriptor that reads root's keystrokes
        "reopen": os.strerror(13),  # EACCES: root's pty is not the service account's
    }


def test_a_dropped_session_leader_loses_the_terminal_without_a_reload(
    arena: Path, intruder: User
) -> None:
    """Started as the terminal's session leader: the kernel's hangup is no reload, no injection."""
    env, pwned, report = _injection_env(arena, intruder)
    own_dir(arena / "log", intruder)
    log = arena / "log" / "app.log"
    terminal = Terminal(
        [
            *(PYTHON, "-m", "aiodaemon", "run", "tests.programs.tty_injector:main"),
            *("--user", intruder.name, "--log-file", str(log)),
        ],
        env,
    )
    try:
        assert terminal.wait_exit() == 0
    finally:
        terminal.close()
    assert _report(report)["dev_tty"] == f"open: {os.strerror(6)}"
    assert _report(report)["stdout"] == os.strerror(1)
    assert _report(report)["readable"] == []
    events = [r["event"] for r in records(log)]
    assert "main returned" in events
    assert not [e for e in events if "reload" in str(e)]
    assert not pwned.exists()


def test_pep3143_in_the_foreground_cannot_type_into_roots_shell(
    arena: Path, intruder: User
) -> None:
    """DaemonContext(uid=..., detach_process=False): /dev/tty is gone, root's shell runs nothing."""
    env, pwned, report = _injection_env(arena, intruder)
    with root_shell(env) as shell:
        assert shell.run(f"{PYTHON} {INJECTOR} {intruder.uid} {intruder.gid}") == 0
        shell.settle()
    assert not pwned.exists(), "root's shell ran the service account's command"
    assert _report(report)["uid"] == intruder.uid
    assert _report(report)["dev_tty"] == f"open: {os.strerror(6)}"
    assert _report(report)["readable"] == []


def _tty_nr(pid: int) -> int:
    """The controlling terminal ``ps`` shows for ``pid`` (0: none, shown as ``?``)."""
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[4])


def _ready(log: Path) -> list[dict[str, Any]]:
    return [record for record in records(log) if record["event"] == "ready"]


def test_ctrl_c_still_stops_a_dropped_foreground_daemon(arena: Path, intruder: User) -> None:
    """Ctrl-C in root's shell stops aiodaemon run --user gracefully; it has no terminal itself."""
    own_dir(arena / "log", intruder)
    log = arena / "log" / "app.log"
    with root_shell(clean_env({"TERM": "dumb"})) as shell:
        shell.type(
            f"{PYTHON} -m aiodaemon run tests.programs.security_daemon:main"
            f" --user {intruder.name} --log-file {log}; echo __rc=$?__\n"
        )
        # Ready, not just started: a Ctrl-C before ready is a failed start (exit 1).
        [ready] = wait_for(lambda: log.exists() and _ready(log), 30, "the daemon to be ready")
        pid = int(ready["pid"])
        try:
            assert _tty_nr(pid) == 0, "the dropped daemon still has root's terminal"
            shell.type("\x03")
            assert int(shell.expect(_RC).group(1)) == 0
        finally:
            kill_quietly(pid)
    exit_records = [r for r in records(log) if r["event"] == "exit"]
    assert [r["status"] for r in exit_records] == [0]
    assert [r for r in records(log) if r["event"] == "shutdown finished"]


@pytest.mark.parametrize("at", ["open", "ioctl"])
def test_a_sighup_held_when_a_session_leader_gives_up_its_terminal_still_reloads(
    arena: Path, intruder: User, at: str
) -> None:
    """A reload's SIGHUP pending as the terminal is given up: the daemon still reloads once.

    ``ioctl``: sent by another process in the instant between the daemon's look
    at what is pending and the kernel's own hang-up, which merges into it.
    """
    env, _, _ = _injection_env(arena, intruder)
    env["AIODAEMON_TEST_SIGHUP_AT"] = at
    own_dir(arena / "log", intruder)
    log = arena / "log" / "app.log"
    terminal = Terminal(
        [
            *(PYTHON, "-m", "aiodaemon", "run", "tests.programs.held_sighup_drop:main"),
            *("--user", intruder.name, "--log-file", str(log)),
        ],
        env,
    )
    try:

        def events() -> list[object]:
            terminal._read(0)
            return [r["event"] for r in records(log)] if log.exists() else []

        wait_for(lambda: "reload finished" in events(), what="the held SIGHUP's reload")
        os.kill(terminal.pid, signal.SIGTERM)
        assert terminal.wait_exit() == 0
    finally:
        terminal.close()
    received = [r for r in records(log) if r["event"] == "signal received"]
    assert [(r["signal"], r.get("terminal")) for r in received] == [
        ("SIGHUP", None),
        ("SIGTERM", None),
    ]
