"""Zero-downtime upgrade end to end: real daemons, real clients, code edited on disk."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .support import (
    PYTHON,
    REPO,
    aiodaemon_cli,
    clean_env,
    is_alive,
    kill_quietly,
    proc_stat_fields,
    proc_status,
    read_json_lines,
    require_tool,
    shared_python,
    wait_for,
    wait_gone,
)

if TYPE_CHECKING:
    from .test_systemd import NotifyReceiver

SCRIPT = Path(sys.executable).parent / "aiodaemon"
PROGRAM = REPO / "tests" / "programs" / "upgrade_app.py"


@dataclass
class App:
    """A copy of the test program in its own directory, and how it was started."""

    directory: Path
    how: str
    log_directory: Path | None = None

    @property
    def pidfile(self) -> Path:
        return self.directory / "app.pid"

    @property
    def log(self) -> Path:
        return (self.log_directory or self.directory) / "app.log"

    def env(self, **extra: str) -> dict[str, str]:
        return clean_env({"APP_PIDFILE": str(self.pidfile), "APP_LOG": str(self.log), **extra})

    def start(self, *options: str, **extra: str) -> int:
        """Start the daemon detached (``options``: more CLI flags); return its pid once ready."""
        if self.how == "script":
            argv = [PYTHON, "upgrade_app.py"]
        else:
            argv = [str(SCRIPT), "start", "upgrade_app:main", "--pidfile", str(self.pidfile)]
            argv += ["--listen", "http=127.0.0.1:0", "--log-file", str(self.log)]
            argv += ["--shutdown-timeout", "10", *options]
        result = subprocess.run(
            argv,
            cwd=self.directory,
            env=self.env(**extra),
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return self.pid()

    def pid(self) -> int:
        return int(self.pidfile.read_text())

    def edit(self, old: str, new: str) -> None:
        path = self.directory / "upgrade_app.py"
        text = path.read_text()
        assert old in text
        compiled = path.stat().st_mtime_ns
        path.write_text(text.replace(old, new))
        # A deploy writes new code well after the old was compiled. Edited
        # within the same second, the file keeps the mtime (whole seconds) and
        # often the size Python checks its cached bytecode against: move it on.
        later = compiled + 2_000_000_000
        os.utime(path, ns=(later, later))

    def port(self) -> int:
        # The log is written by its own thread: the record may trail the readiness.
        [record, *_] = wait_for(lambda: self.records("starting"), 10, "the starting record")
        sockets = record["sockets"]
        assert isinstance(sockets, dict)
        return int(str(sockets["http"]).rsplit(":", 1)[1])

    def get(self) -> str:
        """One request on a new connection; the body."""
        with socket.create_connection(("127.0.0.1", self.port()), timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), data
        return body.decode().strip()

    def records(self, event: str) -> list[dict[str, object]]:
        if not self.log.exists():
            return []
        return [r for r in read_json_lines(self.log) if r["event"] == event]

    def assert_given_up_gracefully(self, new: int, old: int) -> None:
        """A failed upgrade's new process ``new`` stopped as a daemon does; ``old`` serves on."""
        wait_gone(new)
        # Stopped, not killed: it ended as a daemon does (what it served was answered).
        [ended] = wait_for(
            lambda: [r for r in self.records("exit") if r["pid"] == new], 10, "its exit record"
        )
        assert ended["reason"] == "stopped by SIGTERM before it was ready"
        assert self.pid() == old
        assert self.get() == f"v1 {old}"


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the console script to completion."""
    return aiodaemon_cli(*args, timeout=timeout)


def upgrade_in_background(app: App) -> subprocess.Popen[str]:
    """``upgrade`` of ``app``'s daemon (``--timeout 60``), running; its output as text."""
    return subprocess.Popen(
        [str(SCRIPT), "upgrade", "--pidfile", str(app.pidfile), "--timeout", "60"],
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(params=["script", "cli"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[App]:
    """The test program, started as ``python upgrade_app.py`` or ``aiodaemon start``."""
    shutil.copy(PROGRAM, tmp_path / "upgrade_app.py")
    application = App(tmp_path, request.param)
    yield application
    # Only the verified lock holder is ever signalled: pids are recycled fast.
    cli("stop", "--pidfile", str(application.pidfile), "--timeout", "5")


def test_upgrade_runs_the_new_code(app: App) -> None:
    """The code edited on disk after start runs after the upgrade; pidfile and status follow."""
    old = app.start()
    assert app.get() == f"v1 {old}"
    app.edit('VERSION = "v1"', 'VERSION = "v2"')
    result = cli("upgrade", "--pidfile", str(app.pidfile))
    assert result.returncode == 0, result.stderr
    new = int(result.stdout)
    assert new != old
    assert app.pid() == new
    assert app.get() == f"v2 {new}"
    wait_gone(old)
    status = cli("status", "--pidfile", str(app.pidfile))
    assert status.returncode == 0
    assert str(new) in status.stdout
    # No hand-off variable (nor its secret) is left in the new process's environment.
    assert b"AIODAEMON_HANDOFF" not in Path(f"/proc/{new}/environ").read_bytes()
    # A proper daemon: no controlling terminal, and not a session leader that could get one.
    fields = proc_stat_fields(new)
    assert fields[4] == "0"
    assert fields[3] != str(new)


def test_sigusr2_upgrades(app: App) -> None:
    """SIGUSR2 alone replaces the daemon, with no command to report to."""
    old = app.start()
    app.edit('VERSION = "v1"', 'VERSION = "v2"')
    os.kill(old, signal.SIGUSR2)
    new = wait_for(lambda: (app.pid() != old) and app.pid(), 60, "a new pid in the pidfile")
    # The pidfile names the new process a moment before the old one stops accepting.
    wait_gone(old)
    assert app.get() == f"v2 {new}"
    [handed] = app.records("upgrade handed over")
    assert handed["pid"] == old
    assert handed["successor"] == new


@pytest.mark.parametrize(
    ("mode", "error"),
    [("raise", "RuntimeError: cannot start v2"), ("exit", "status 3")],
)
def test_failed_upgrade_rolls_back(app: App, mode: str, error: str) -> None:
    """A successor that fails is killed; the old daemon keeps serving; the error is shown."""
    old = app.start()
    app.edit('VERSION = "v1"', 'VERSION = "v2"')
    app.edit('MODE = ""', f'MODE = "{mode}"')
    result = cli("upgrade", "--pidfile", str(app.pidfile), "--timeout", "30")
    assert result.returncode == 1
    assert error in result.stderr
    assert result.stdout == ""
    assert app.pid() == old
    assert app.get() == f"v1 {old}"
    # Logged by the writer thread: the record may trail the command's answer.
    [failed] = wait_for(lambda: app.records("upgrade failed"), 10, "the upgrade failed record")
    successor = failed["successor"]
    assert isinstance(successor, int)
    wait_gone(successor)
    # Rolled back for good: the next upgrade (fixed code) still works.
    app.edit(f'MODE = "{mode}"', 'MODE = ""')
    result = cli("upgrade", "--pidfile", str(app.pidfile))
    assert result.returncode == 0, result.stderr
    assert app.get() == f"v2 {int(result.stdout)}"


def test_upgrade_to_code_that_does_not_compile(app: App) -> None:
    """New code with a syntax error: the error Python printed is what upgrade reports."""
    old = app.start()
    app.edit('VERSION = "v1"', 'VERSION = "v2" +')
    result = cli("upgrade", "--pidfile", str(app.pidfile))
    assert result.returncode == 1
    assert "SyntaxError" in result.stderr
    assert app.get() == f"v1 {old}"


def test_sigusr2_failure_is_logged(app: App) -> None:
    """With SIGUSR2 there is nobody to answer: the failure is in the log, the old one serves."""
    old = app.start()
    app.edit('MODE = ""', 'MODE = "raise"')
    os.kill(old, signal.SIGUSR2)
    [failed] = wait_for(lambda: app.records("upgrade failed"), 60, "the upgrade to fail")
    assert "RuntimeError: cannot start v1" in str(failed["error"])
    assert app.get() == f"v1 {old}"


def test_timed_out_upgrade_rolls_back(app: App) -> None:
    """A successor not ready within --timeout is killed with its process group."""
    old = app.start()
    app.edit('MODE = ""', 'MODE = "hang"')
    result = cli("upgrade", "--pidfile", str(app.pidfile), "--timeout", "2")
    assert result.returncode == 1
    assert "not ready after 2 s" in result.stderr
    # Logged by the writer thread: the record may trail the command's answer.
    [failed] = wait_for(lambda: app.records("upgrade failed"), 10, "the upgrade failed record")
    successor = failed["successor"]
    assert isinstance(successor, int)
    wait_gone(successor)
    assert app.pid() == old
    assert app.get() == f"v1 {old}"


@pytest.mark.parametrize("app", ["cli"], indirect=True)
def test_a_new_process_deaf_to_its_sigterm_is_killed_and_then_upgraded_past(app: App) -> None:
    """Not ready in time and its loop blocked: SIGTERM, SIGKILL shutdown_timeout + 1 s
    later; an upgrade asked meanwhile waits for it to be gone, then runs."""
    old = app.start("--shutdown-timeout", "2")
    app.edit('MODE = ""', 'MODE = "block60"')
    result = cli("upgrade", "--pidfile", str(app.pidfile), "--timeout", "1")
    assert result.returncode == 1
    [failed] = wait_for(lambda: app.records("upgrade failed"), 10, "the upgrade failed record")
    deaf = failed["successor"]
    assert isinstance(deaf, int)
    assert result.stderr == (
        f"aiodaemon: upgrade failed: successor (pid {deaf}) not ready after 1 s; "
        "sent it SIGTERM (SIGKILL if still running 3 s later)\n"
    )
    app.edit('MODE = "block60"', 'MODE = ""')
    app.edit('VERSION = "v1"', 'VERSION = "v2"')
    result = cli("upgrade", "--pidfile", str(app.pidfile), "--timeout", "30")
    assert result.returncode == 0, result.stderr
    assert f"new process (pid {deaf}), not ready in time, is still stopping" in result.stderr
    new = int(result.stdout)
    assert not is_alive(deaf)
    [killed] = app.records("upgrade successor killed")
    assert (killed["successor"], killed["after"]) == (deaf, 3.0)
    assert app.pid() == new != old
    assert app.get() == f"v2 {new}"


def test_stop_during_an_upgrade_abandons_it(app: App) -> None:
    """SIGTERM while the new process starts: it is sent SIGTERM and stops as a daemon not
    ready does (exit 1), the old one stops after it, nothing runs on."""
    old = app.start()
    app.edit('MODE = ""', 'MODE = "hang"')
    upgrade = upgrade_in_background(app)
    try:
        [started] = wait_for(lambda: app.records("upgrade started"), 30, "the upgrade")
        successor = started["successor"]
        assert isinstance(successor, int)
        os.kill(old, signal.SIGTERM)
        wait_gone(old, 30)
        wait_gone(successor, 30)
    finally:
        upgrade.communicate(timeout=60)
    # The answer may not make it out of a daemon that is stopping: the log says.
    assert upgrade.returncode == 1
    assert app.records("upgrade abandoned: the daemon is stopping")
    stopped = app.records("upgrade successor stopped")
    assert [(r["successor"], r["status"]) for r in stopped] == [(successor, 1)]
    assert not app.pidfile.exists()


def test_second_upgrade_is_refused(app: App) -> None:
    """During an upgrade another request, or SIGUSR2, starts nothing and says so."""
    old = app.start()
    app.edit('MODE = ""', 'MODE = "hang"')
    first = subprocess.Popen(
        [str(SCRIPT), "upgrade", "--pidfile", str(app.pidfile), "--timeout", "5"],
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: app.records("upgrade started"), 30, "the first upgrade")
        second = cli("upgrade", "--pidfile", str(app.pidfile))
        assert second.returncode == 1
        assert "already in progress" in second.stderr
        # Signals sent while one is pending merge into one: at least one arrives.
        for _ in range(3):
            os.kill(old, signal.SIGUSR2)
        wait_for(lambda: len(app.records("upgrade refused")) >= 2, 30, "the refusals")
    finally:
        _, stderr = first.communicate(timeout=60)
    assert first.returncode == 1
    assert "not ready after 5 s" in stderr
    assert len(app.records("upgrade started")) == 1
    assert app.get() == f"v1 {old}"


def test_upgrade_of_a_daemon_not_running(tmp_path: Path) -> None:
    """``upgrade`` of nothing says so and exits 7 (LSB "not running")."""
    result = cli("upgrade", "--pidfile", str(tmp_path / "none.pid"))
    assert result.returncode == 7
    assert "not running" in result.stderr


@dataclass
class Load:
    """A bounded load generator: fresh and keep-alive connections, every failure counted."""

    port: int
    ok: int = 0
    retried: int = 0
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def fresh(self) -> None:
        while not self.stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
                    sock.sendall(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
                    data = b""
                    while chunk := sock.recv(4096):
                        data += chunk
                self.check(data)
            except OSError as exc:
                self.failures.append(f"fresh: {exc!r}")

    def keep_alive(self) -> None:
        sock: socket.socket | None = None
        while not self.stop.is_set():
            reused = sock is not None
            try:
                if sock is None:
                    sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
                sock.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
                data = sock.recv(4096)
            except OSError as exc:
                data = b""
                if not reused or not isinstance(exc, ConnectionResetError | BrokenPipeError):
                    self.failures.append(f"keep-alive: {exc!r}")
            if not data:
                # An idle keep-alive connection the server closed before reading
                # our request (RFC 9112 9.3.1: a client retries on a new one).
                self.retried += 1
                if sock is not None:
                    sock.close()
                sock = None
                continue
            self.check(data)
        if sock is not None:
            sock.close()

    def check(self, data: bytes) -> None:
        if data.startswith(b"HTTP/1.1 200"):
            self.ok += 1
        else:
            self.failures.append(f"answer: {data[:60]!r}")


def test_upgrade_under_load_fails_no_request(app: App) -> None:
    """Three upgrades under load: no refused, reset or unanswered request; lock never free."""
    app.start()
    load = Load(app.port())
    threads = [threading.Thread(target=load.fresh), threading.Thread(target=load.keep_alive)]
    lock_free: list[float] = []
    statuses: list[int] = []

    def probe() -> None:
        fd = os.open(app.pidfile, os.O_RDONLY)
        try:
            while not load.stop.is_set():
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except BlockingIOError:
                    load.stop.wait(0.001)  # the sampling period, cut short by the end
                else:
                    lock_free.append(time.monotonic())
                    fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def status() -> None:
        while not load.stop.is_set():
            result = cli("status", "--pidfile", str(app.pidfile))
            statuses.append(result.returncode)
            if result.returncode:
                load.failures.append(f"status {result.returncode}: {result.stderr}")

    threads += [threading.Thread(target=probe), threading.Thread(target=status)]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: load.ok > 20, 30, "the load to get going")
        for version in ("v2", "v3", "v4"):
            app.edit('VERSION = "v', f'VERSION = "{version}"  # v')
            result = cli("upgrade", "--pidfile", str(app.pidfile))
            assert result.returncode == 0, result.stderr
            wait_for(_more_than(load, load.ok + 20), 30, "requests after the upgrade")
    finally:
        load.stop.set()
        for thread in threads:
            thread.join(30)
    assert load.failures == []
    assert lock_free == []
    assert statuses
    assert set(statuses) == {0}
    assert app.get().startswith("v4 ")


def test_upgrade_keeps_other_processes_alone(app: App) -> None:
    """Nothing is left behind: only the new daemon holds the pidfile and the port."""
    old = app.start()
    result = cli("upgrade", "--pidfile", str(app.pidfile))
    assert result.returncode == 0, result.stderr
    new = int(result.stdout)
    wait_gone(old)
    assert is_alive(new)
    holders = [
        pid
        for pid in map(int, filter(str.isdigit, os.listdir("/proc")))
        if _holds(pid, app.pidfile)
    ]
    assert holders == [new]


def _more_than(load: Load, count: int) -> Callable[[], bool]:
    return lambda: load.ok > count


def _holds(pid: int, path: Path) -> bool:
    with contextlib.suppress(OSError):
        for name in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{name}") == str(path):
                    return True
    return False


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory ``nobody`` can traverse (pytest's tmp_path is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="aiodaemon-upgrade-"))
    path.chmod(0o755)
    yield path
    cli("stop", "--pidfile", str(path / "root-only" / "app.pid"), "--timeout", "5")
    shutil.rmtree(path, ignore_errors=True)


def test_upgrade_of_a_daemon_dropped_to_nobody(shared_dir: Path) -> None:
    """Dropped to nobody, its pidfile and log in a root-only directory: upgraded without root."""
    system_python = shared_python()
    shutil.copy(PROGRAM, shared_dir / "upgrade_app.py")
    root_only = shared_dir / "root-only"
    root_only.mkdir(mode=0o700)
    # The log file too: only the old daemon, still root, could open it there.
    app = App(shared_dir, "script", log_directory=root_only)
    pidfile = root_only / "app.pid"
    site = Path(sysconfig.get_paths()["purelib"])
    env = app.env(APP_USER="nobody")
    env.update(
        APP_PIDFILE=str(pidfile),
        PYTHONPATH=os.pathsep.join([str(REPO), str(site)]),
    )
    started = subprocess.run(
        [system_python, "upgrade_app.py"],
        cwd=shared_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert started.returncode == 0, started.stderr
    old = int(pidfile.read_text())
    assert proc_status(old)["Uid"].split()[0] == "65534"
    app.edit('VERSION = "v1"', 'VERSION = "v2"')
    result = cli("upgrade", "--pidfile", str(pidfile))
    assert result.returncode == 0, result.stderr
    new = int(result.stdout)
    wait_gone(old)
    # The successor never had root, and needed none.
    assert proc_status(new)["Uid"].split() == ["65534"] * 4
    assert int(pidfile.read_text()) == new
    assert app.get() == f"v2 {new}"
    assert cli("status", "--pidfile", str(pidfile)).returncode == 0
    # The new process logs to the inherited file.
    assert wait_for(lambda: [r for r in app.records("upgrade took over") if r["pid"] == new])


@pytest.mark.root
def test_upgrade_as_pid_1_is_refused(tmp_path: Path) -> None:
    """As PID 1 of a container the upgrade is refused, saying to roll the container instead."""
    unshare = require_tool("unshare")
    shutil.copy(PROGRAM, tmp_path / "upgrade_app.py")
    log = tmp_path / "app.log"
    proc = subprocess.Popen(
        [
            *(unshare, "--pid", "--fork", "--mount-proc", "--kill-child", PYTHON),
            *("-m", "aiodaemon", "run", "upgrade_app:main", "--listen", "http=127.0.0.1:0"),
            *("--log-file", str(log)),
        ],
        cwd=tmp_path,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        app = App(tmp_path, "script")
        wait_for(lambda: app.records("ready"), 30, "the daemon to be ready")
        init = wait_for(lambda: _child_of(proc.pid), 10, "the container's PID 1")
        # PID 1 passes SIGUSR2 on to the daemon, which refuses.
        os.kill(init, signal.SIGUSR2)
        [refused] = wait_for(lambda: app.records("upgrade refused"), 30, "the refusal")
        assert "PID 1" in str(refused["reason"])
        assert "roll the container" in str(refused["reason"])
        assert app.records("upgrade started") == []
        os.kill(init, signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _child_of(pid: int) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if children:
            return int(children[0])
    return None


def _run_under_systemd(
    tmp_path: Path, receiver: NotifyReceiver, *, watchdog_usec: int
) -> tuple[App, subprocess.Popen[bytes]]:
    """``aiodaemon run`` as a Type=notify service with a watchdog: the app, its process."""
    shutil.copy(PROGRAM, tmp_path / "upgrade_app.py")
    app = App(tmp_path, "cli")
    proc = subprocess.Popen(
        [
            # As systemd does: WATCHDOG_PID names the main process (the exec keeps $$).
            *("sh", "-c", 'WATCHDOG_PID=$$ exec "$@"', "sh"),
            *(str(SCRIPT), "run", "upgrade_app:main", "--pidfile", str(app.pidfile)),
            *("--listen", "http=127.0.0.1:0", "--log-file", str(app.log)),
        ],
        cwd=tmp_path,
        env=receiver.env(WATCHDOG_USEC=str(watchdog_usec)),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return app, proc


def test_upgrade_under_systemd_moves_the_main_pid(tmp_path: Path) -> None:
    """Type=notify: the old daemon names the new one MAINPID, then falls silent; the new one
    reports READY=1 and feeds the watchdog."""
    from .test_systemd import NotifyReceiver

    receiver = NotifyReceiver(str(tmp_path / "notify.sock"))
    app, proc = _run_under_systemd(tmp_path, receiver, watchdog_usec=1_000_000)
    new: int | None = None
    try:
        [*_, ready] = receiver.receive_until("READY=1", 30)
        old = ready.pid
        assert ready.fields["MAINPID"] == str(old)
        app.edit('MODE = ""', 'MODE = "slow"')
        result = cli("upgrade", "--pidfile", str(app.pidfile))
        assert result.returncode == 0, result.stderr
        new = int(result.stdout)
        assert proc.wait(30) == 0
        seen: list[tuple[int, list[str]]] = []
        while not any(pid == new and "WATCHDOG=1" in lines for pid, lines in seen):
            datagram = receiver.receive(10)
            seen.append((datagram.pid, datagram.lines))
        environ = Path(f"/proc/{new}/environ").read_bytes()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if new is not None:
            # The successor is nobody's child here: stop it, or it outlives the test.
            kill_quietly(new, signal.SIGTERM)
            wait_gone(new, 30)
        receiver.close()
    handed = seen.index((old, [f"MAINPID={new}"]))
    # Nothing more from the old daemon once it named its successor (no STOPPING=1).
    assert [lines for pid, lines in seen[handed + 1 :] if pid == old] == []
    assert (new, ["READY=1", f"MAINPID={new}", "STATUS=running"]) in seen
    # Nor its watchdog flag: docs/security.md says aiodaemon adds no variable there.
    assert b"AIODAEMON_HANDOFF" not in environ


def test_watchdog_fed_after_upgrades(tmp_path: Path) -> None:
    """Under systemd's watchdog every generation feeds it: the third one too, after two upgrades."""
    from .test_systemd import NotifyReceiver

    receiver = NotifyReceiver(str(tmp_path / "notify.sock"))
    app, proc = _run_under_systemd(tmp_path, receiver, watchdog_usec=400_000)
    generations: list[int] = []
    try:
        receiver.receive_until("READY=1", 30)
        for _ in range(2):
            result = cli("upgrade", "--pidfile", str(app.pidfile))
            assert result.returncode == 0, result.stderr
            generations.append(int(result.stdout))
        third = generations[-1]
        fed_by: set[int] = set()
        # A ping every 0.2 s: the third generation's come within seconds or never.
        deadline = time.monotonic() + 10
        while third not in fed_by and time.monotonic() < deadline:
            if receiver.pending():
                datagram = receiver.receive()
                if "WATCHDOG=1" in datagram.lines:
                    fed_by.add(datagram.pid)
            else:
                time.sleep(0.02)
        assert third in fed_by, f"no WATCHDOG=1 from pid {third} (fed by {sorted(fed_by)})"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for pid in generations:
            # Nobody's child here: stop them, or they outlive the test.
            kill_quietly(pid, signal.SIGTERM)
            wait_gone(pid, 30)
        receiver.close()


def test_upgrade_of_python_m_restart(tmp_path: Path) -> None:
    """Started by ``python -m aiodaemon restart``: the new process starts, it stops nothing."""
    shutil.copy(PROGRAM, tmp_path / "upgrade_app.py")
    app = App(tmp_path, "cli")
    argv = [PYTHON, "-m", "aiodaemon", "restart", "upgrade_app:main", "--pidfile"]
    argv += [str(app.pidfile), "--listen", "http=127.0.0.1:0", "--log-file", str(app.log)]
    try:
        started = subprocess.run(
            argv,
            cwd=tmp_path,
            env=app.env(),
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        assert started.returncode == 0, started.stderr
        old = app.pid()
        app.edit('VERSION = "v1"', 'VERSION = "v2"')
        result = cli("upgrade", "--pidfile", str(app.pidfile))
        assert result.returncode == 0, result.stderr
        new = int(result.stdout)
        wait_gone(old)
        assert app.get() == f"v2 {new}"
        # The old daemon ended by the hand-over (exit 0), not by a stop from its successor.
        assert app.records("upgrade handed over")
        assert not any(r["pid"] == old for r in app.records("signal received"))
    finally:
        cli("stop", "--pidfile", str(app.pidfile), "--timeout", "5")
