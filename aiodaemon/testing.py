"""Test your own daemon as a real process: start it, wait until ready, talk to it, stop it.

```python
from aiodaemon.testing import launch

async def test_echo() -> None:
    async with launch("app:main", listen={"echo": "127.0.0.1:0"}) as daemon:
        host, port = daemon.address("echo")
        ...  # talk to it
        await daemon.reload()  # raises ReloadFailed with the hook's error
        assert await daemon.stop() == 0
```

The kit drives the program only from outside, the way an operator would: it runs
``aiodaemon run TARGET`` in a fresh session with a temporary directory for the
pidfile, the control socket and the JSON log; it learns readiness through the
systemd notify protocol, addresses and reload results through the ``aiodaemon``
command (the control socket's client), and log records from the log file. No
private module of aiodaemon is used, so what passes here passes in production.

Nothing outlives a test: leaving the ``async with`` block stops the daemon (SIGTERM,
then SIGKILL of its whole process group), also when the test fails or is
interrupted with Ctrl-C; a test runner killed outright takes the daemon along
(parent-death signal), and an ``atexit`` safety net kills whatever is left.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["DaemonProcess", "LaunchError", "ReloadFailed", "StartFailed", "launch"]

#: How long a daemon gets to exit after SIGTERM when a test leaves the block.
STOP_GRACE = 10.0

Record = dict[str, Any]


class LaunchError(Exception):
    """Base class of the testing kit's errors."""


class StartFailed(LaunchError):
    """The daemon exited, or was not ready in time, instead of becoming ready.

    Attributes:
        status: the daemon's exit status (None if it was killed for being too slow).
        message: the daemon's own error message (``aiodaemon: ...`` on its stderr).
        stderr: everything the daemon wrote on stderr.
    """

    def __init__(self, message: str, status: int | None, stderr: str) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.stderr = stderr


class ReloadFailed(LaunchError):
    """A reload hook raised; the message is the hook's error, ``Type: message``."""


# --- the handle ---------------------------------------------------------------------


class DaemonProcess:
    """A running daemon started by ``launch``.

    Attributes:
        pid: the daemon's own process id.
        directory: the temporary directory holding its pidfile, control socket and log.
        pidfile: the daemon's pidfile (in ``directory`` unless ``pidfile=`` was given).
        log_file: its JSON-lines log (in ``directory`` unless ``log_file=`` was given).
    """

    def __init__(
        self, process: subprocess.Popen[bytes], directory: Path, pidfile: Path, log_file: Path
    ) -> None:
        self._process = process
        self.pid = process.pid
        self.directory = directory
        self.pidfile = pidfile
        self.log_file = log_file
        self._stderr_path = directory / "stderr"
        self._status: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"<DaemonProcess pid={self.pid} returncode={self._process.returncode}>"

    @property
    def returncode(self) -> int | None:
        """The exit status once the daemon has exited (``-N`` if killed by signal N), else None."""
        return _peek(self._process)

    @property
    def stderr(self) -> str:
        """What the daemon wrote on its stderr so far."""
        return self._stderr_path.read_text(errors="replace")

    def address(self, name: str) -> tuple[str, int] | str:
        """Where the ``listen=`` socket ``name`` listens: ``(host, port)`` or a unix path.

        The real port is given when port 0 was asked for.

        Raises:
            KeyError: the daemon has no socket of that name.
        """
        if self._status is None:
            self._status = self.status()
        text: str = self._status["sockets"][name]
        if text.startswith("unix:"):
            return text[len("unix:") :]
        host, _, port = text.rpartition(":")
        return host.strip("[]"), int(port)

    def status(self) -> dict[str, Any]:
        """``aiodaemon status --json``: state, pid, uptime, sockets, last reload, version.

        Raises:
            LaunchError: the daemon does not answer.
        """
        result = _aiodaemon("status", "--pidfile", str(self.pidfile), "--json")
        try:
            answer: dict[str, Any] = json.loads(result.stdout)
        except ValueError:
            raise LaunchError(f"status failed: {_last_line(result.stderr)}") from None
        return answer

    async def reload(self, timeout: float = 60.0) -> None:  # noqa: ASYNC109 (passed to the command)
        """Reload as ``aiodaemon reload`` does, and wait for the result.

        Raises:
            ReloadFailed: a reload hook raised (its ``Type: message``), or the reload
                did not finish within ``timeout``.
            LaunchError: the daemon is not running.
        """
        proc = await asyncio.create_subprocess_exec(
            *_command(),
            "reload",
            "--pidfile",
            str(self.pidfile),
            "--timeout",
            str(timeout),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        _, err = await proc.communicate()
        message = _last_line(err.decode(errors="replace"))
        if proc.returncode == 1:
            # The command says which daemon failed; the exception carries the hook's error.
            raise ReloadFailed(re.sub(r"^reload failed \([^)]*\): ", "", message))
        if proc.returncode != 0:
            raise LaunchError(f"reload failed (exit {proc.returncode}): {message}")

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the daemon (our child, not reaped before the block ends, so
        its pid cannot have been reused)."""
        if _peek(self._process) is None:
            os.kill(self.pid, signum)

    def records(self) -> list[Record]:
        """Every JSON record in the daemon's log file so far (not a line still being written)."""
        try:
            data = self.log_file.read_bytes()
        except FileNotFoundError:
            return []
        lines = data.split(b"\n")[:-1]  # the part after the last newline is incomplete
        return [json.loads(line) for line in lines if line.strip()]

    async def wait_for_record(
        self,
        match: str | Callable[[Record], bool],
        timeout: float = 10.0,  # noqa: ASYNC109 (a deadline in the error message)
    ) -> Record:
        """The first log record whose ``event`` is ``match`` (or that ``match(record)`` accepts).

        Raises:
            TimeoutError: no such record within ``timeout`` seconds.
        """
        predicate = match if callable(match) else (lambda r: r.get("event") == match)
        deadline = time.monotonic() + timeout
        delay = 0.005
        while True:
            for record in self.records():
                if predicate(record):
                    return record
            if time.monotonic() > deadline:
                raise TimeoutError(f"no log record matching {match!r} within {timeout}s")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)

    async def wait(self, timeout: float | None = None) -> int:  # noqa: ASYNC109
        """Wait for the daemon to exit on its own and return its status.

        Raises:
            TimeoutError: it still runs after ``timeout`` seconds.
        """
        status = await _wait_exit(self._process, timeout)
        if status is None:
            raise TimeoutError(f"pid {self.pid} still running after {timeout}s")
        return status

    async def stop(self, timeout: float = STOP_GRACE) -> int:  # noqa: ASYNC109 (grace before SIGKILL)
        """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL; return the exit status."""
        self.signal(signal.SIGTERM)
        status = await _wait_exit(self._process, timeout)
        if status is None:
            _kill_group(self._process)
            status = await _wait_exit(self._process, None)
            assert status is not None
        return status


# --- launch -------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def launch(
    target: str | os.PathLike[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    **options: Any,
) -> AsyncIterator[DaemonProcess]:
    """Start ``target`` as a real daemon process, wait until it is ready, and yield it.

    Args:
        target: ``module:attr`` (imported with ``cwd`` on ``sys.path``) or the path of a
            script (``app.py`` or ``app.py:attr``; ``attr`` defaults to ``main``).
        env: extra environment variables for the daemon.
        cwd: the directory to start it in (default: the current one).
        **options: the options of ``aiodaemon.run`` (``listen``, ``log_level``,
            ``shutdown_timeout``...). ``pidfile`` and ``log_file`` default to files in a
            fresh temporary directory; the daemon always stays in the foreground.

    Raises:
        StartFailed: the daemon exited, or was not ready within ``start_timeout``
            (default 90 s), instead of becoming ready.
        ValueError: an option the kit cannot pass on (``detach``, ``files_preserve``).
    """
    directory = Path(tempfile.mkdtemp(prefix="aiodaemon-test-"))
    try:
        pidfile = Path(options.pop("pidfile", None) or directory / "daemon.pid")
        log_file = Path(options.pop("log_file", None) or directory / "daemon.jsonl")
        module, path_entry = _resolve_target(str(target))
        argv = [
            *_command(),
            "run",
            module,
            "--pidfile",
            str(pidfile),
            "--log-file",
            str(log_file),
            *_flags(options),
        ]
        process, notify = _spawn(argv, directory, env, cwd, path_entry)
        daemon = DaemonProcess(process, directory, pidfile, log_file)
        try:
            start_timeout = float(options.get("start_timeout", 90.0))
            await _wait_ready(daemon, process, notify, start_timeout + STOP_GRACE)
            yield daemon
        finally:
            notify.close()
            _finish(process)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _resolve_target(target: str) -> tuple[str, str | None]:
    """``module:attr`` for the CLI, and the directory to put on ``sys.path`` for a script."""
    path, _, attr = target.partition(":")
    if path.endswith(".py"):
        script = Path(path).resolve()
        if not script.is_file():
            raise StartFailed(f"no such script: {path}", None, "")
        return f"{script.stem}:{attr or 'main'}", str(script.parent)
    return target, None


def _flags(options: Mapping[str, Any]) -> list[str]:
    """Translate ``run()`` keyword options into ``aiodaemon run`` flags."""
    flags: list[str] = []
    for name, value in options.items():
        if name in ("detach", "files_preserve"):
            raise ValueError(f"launch() cannot pass {name}= to a daemon it runs in the foreground")
        flag = "--" + name.replace("_", "-")
        if value is None:
            continue
        if name == "listen":
            for key, address in dict(value).items():
                flags += ["--listen", f"{key}={address}"]
        elif name == "umask":
            flags += ["--umask", f"{int(value):o}"]
        elif name == "syslog":
            flags.append("--syslog" if value is True else f"--syslog={value}")
        elif name == "prevent_core":
            if not value:
                flags.append("--no-prevent-core")
        elif name == "uvloop":
            flags.append("--uvloop" if value else "--no-uvloop")
        elif name == "control" and value is False:
            flags.append("--no-control")
        else:
            flags += [flag, str(value)]
    return flags


def _spawn(
    argv: list[str],
    directory: Path,
    env: Mapping[str, str] | None,
    cwd: str | os.PathLike[str] | None,
    path_entry: str | None,
) -> tuple[subprocess.Popen[bytes], socket.socket]:
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify_path = directory / "notify"
    notify.bind(str(notify_path))
    notify.setblocking(False)
    environment = {k: v for k, v in os.environ.items() if not _is_service_manager_variable(k)}
    environment.update(env or {})
    # The notify protocol tells us when it is ready, exactly as systemd would learn it.
    environment["NOTIFY_SOCKET"] = str(notify_path)
    if path_entry is not None:
        environment["PYTHONPATH"] = os.pathsep.join(
            filter(None, [path_entry, environment.get("PYTHONPATH")])
        )
    with open(directory / "stderr", "wb") as stderr, open(directory / "stdout", "wb") as stdout:
        # A session of its own: Ctrl-C in the test's terminal reaches the test, not the
        # daemon, and the whole group (the daemon's children too) can be killed at the end.
        process = subprocess.Popen(
            [*_die_with_us(), *argv],
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            env=environment,
            cwd=cwd,
            start_new_session=True,
        )
    _running.add(process)
    return process, notify


def _is_service_manager_variable(name: str) -> bool:
    return name in ("NOTIFY_SOCKET", "INVOCATION_ID", "WATCHDOG_USEC", "WATCHDOG_PID") or (
        name.startswith("LISTEN_")
    )


async def _wait_ready(
    daemon: DaemonProcess, process: subprocess.Popen[bytes], notify: socket.socket, limit: float
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    exited = asyncio.ensure_future(_wait_exit(process, limit))
    try:
        while True:
            received = asyncio.ensure_future(loop.sock_recv(notify, 4096))
            done, _ = await asyncio.wait(
                [received, exited],
                timeout=max(0.0, deadline - loop.time()),
                return_when=asyncio.FIRST_COMPLETED,
            )
            if received in done:
                if b"READY=1" in received.result().split(b"\n"):
                    return
                continue
            received.cancel()
            status = exited.result() if exited in done else None
            if status is not None:
                stderr = daemon.stderr
                raise StartFailed(_failure(stderr, status), status, stderr)
            _finish(process)
            stderr = daemon.stderr
            raise StartFailed(f"not ready after {limit:g} s", None, stderr)
    finally:
        exited.cancel()


async def _wait_exit(process: subprocess.Popen[bytes], limit: float | None) -> int | None:
    """Wait for our child to exit without blocking the loop; None after ``limit`` seconds.

    The child is not reaped: its pid (and process group) stay reserved until
    ``_finish`` has killed whatever is left of the group.
    """
    status = _peek(process)
    if status is not None:
        return status
    loop = asyncio.get_running_loop()
    pidfd = os.pidfd_open(process.pid)
    exited: asyncio.Future[None] = loop.create_future()

    def on_exit() -> None:
        if not exited.done():
            exited.set_result(None)

    loop.add_reader(pidfd, on_exit)
    try:
        await asyncio.wait_for(exited, limit)
    except TimeoutError:
        return None
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)
    return _peek(process)


def _peek(process: subprocess.Popen[bytes]) -> int | None:
    """The child's exit status (``-N`` for signal N) if it has exited, without reaping it."""
    if process.returncode is not None:
        return process.returncode
    info = os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    if info is None:
        return None
    return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status


def _failure(stderr: str, status: int) -> str:
    """The daemon's own one-line error, as the launching command would show it."""
    for line in reversed(stderr.splitlines()):
        if _PREFIX.match(line):
            return _PREFIX.sub("", line, count=1)
    return _last_line(stderr) or f"exited with status {status} before it was ready"


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return _PREFIX.sub("", lines[-1], count=1) if lines else ""


#: ``aiodaemon: `` or ``aiodaemon reload: ``, the prefix of the command's own messages.
_PREFIX = re.compile(r"^aiodaemon(?: [a-z]+)?: ")


# --- cleanup ------------------------------------------------------------------------

#: Daemons started and not yet reaped, for the atexit safety net.
_running: set[subprocess.Popen[bytes]] = set()


def _finish(process: subprocess.Popen[bytes]) -> None:
    """Stop ``process`` and its group, synchronously: this also runs on Ctrl-C.

    SIGTERM for a graceful stop; after STOP_GRACE, or once the daemon is gone,
    SIGKILL to the whole group (children it left behind), and only then reap it.
    """
    if process.returncode is None:
        pidfd = os.pidfd_open(process.pid)
        try:
            if not select.select([pidfd], [], [], 0)[0]:
                os.kill(process.pid, signal.SIGTERM)
                select.select([pidfd], [], [], STOP_GRACE)
        finally:
            os.close(pidfd)
        _kill_group(process)
        process.wait()
    _running.discard(process)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL what is left of the daemon's session: its own children must not outlive it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


@atexit.register
def _kill_leftovers() -> None:
    for process in list(_running):
        if process.returncode is None:
            _kill_group(process)
            process.wait()


# --- running the aiodaemon command --------------------------------------------------


def _command() -> list[str]:
    return [sys.executable, "-m", "aiodaemon"]


def _die_with_us() -> list[str]:
    """A prefix that makes the kernel SIGKILL the daemon when the test process dies.

    The last safety net, for a test runner killed without running any cleanup
    (SIGKILL, pytest-timeout's ``os._exit``): util-linux's ``setpriv`` sets the
    parent-death signal and execs the daemon, so its pid stays the daemon's.
    """
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []


def _aiodaemon(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_command(), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
