"""Test your own daemon as a real process: start it, wait until ready, talk to it, stop it.

```python
from aiodaemon.testing import launch

async def test_echo() -> None:
    async with launch("app:main", listen={"echo": "127.0.0.1:0"}) as daemon:
        host, port = daemon.inet_address("echo")
        ...  # talk to it
        await daemon.reload()  # raises ReloadFailed with the hook's error
        assert await daemon.stop() == 0
```

The kit drives the program only from outside, the way an operator would: it runs
``aiodaemon run TARGET`` in a fresh session with a temporary directory for the
pidfile, the control socket and the JSON log; it learns readiness through the
systemd notify protocol, addresses and reload results through the ``aiodaemon``
command (the control socket's client), and log records from the log file. No
private module of aiodaemon's runtime is used, so what passes here passes in
production. Nothing here blocks the test's event loop.

Nothing outlives a test: leaving the ``async with`` block stops the daemon (SIGTERM,
then SIGKILL of its whole process group), also when the test fails or is
interrupted with Ctrl-C; a test runner killed outright takes the daemon along
(parent-death signal) and its session (a watchdog process that outlives the
runner), and an ``atexit`` safety net kills whatever is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.machinery
import io
import json
import math
import os
import re
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ._kit._block import Block
from ._kit._errors import (
    LaunchError,
    ReloadFailed,
    StartFailed,
    exit_error,
    last_message,
    startup_error,
)
from ._kit._files import create_output, open_regular, read_whole
from ._kit._options import command_flags
from ._kit._process import (
    STOP_GRACE,
    Process,
    finish,
    hand_directory_to,
    kill_group,
    peek,
    receive_notification,
    run_command,
    spawn,
    successor_running,
    terminate,
    wait_exit,
)

if TYPE_CHECKING:
    from typing import Unpack

    from aiodaemon import DaemonOptions

__all__ = ["DaemonProcess", "Launch", "LaunchError", "ReloadFailed", "StartFailed", "launch"]

Record = dict[str, Any]

#: Seconds a status or reload command may take beyond its own deadline.
_COMMAND_SLACK = 30.0


class DaemonProcess:
    """A running daemon started by ``launch``.

    Attributes:
        pid: the daemon's own process id.
        directory: the temporary directory holding its pidfile, control socket and log.
        pidfile: the daemon's pidfile (in ``directory`` unless ``pidfile=`` was given).
        log_file: its JSON-lines log (in ``directory`` unless ``log_file=`` was given).
    """

    def __init__(
        self,
        process: Process,
        directory: Path,
        pidfile: Path,
        log_file: Path,
        control: str | None = None,
        stderr_file: Path | None = None,
        stderr_start: _Position | None = None,
        log_start: _Position | None = None,
        *,
        stderr_fd: int,
    ) -> None:
        self._process = process
        self.pid = process.pid
        self.directory = directory
        self.pidfile = pidfile
        self.log_file = log_file
        #: The kit's own file behind the daemon's stderr, read through this
        #: descriptor (not its path, in a directory the daemon's account may write).
        self._stderr_fd = stderr_fd
        #: The ``stderr=`` file the daemon moves its stderr to, and where it and
        #: the log file ended before the launch: the daemon appends to files that
        #: exist, and only what it wrote is this run's.
        self._stderr_file = stderr_file
        self._stderr_start = stderr_start
        self._log_start = log_start
        self._control = ["--control", control] if control else []
        #: ``listen=`` name -> address as ``status`` says it, learnt once ready.
        self._sockets: dict[str, str] = {}
        #: The kit directory's stderr and log, read before the block removes it.
        self._kept_stderr: str | None = None
        self._kept_log: bytes | None = None

    def __repr__(self) -> str:
        return f"<DaemonProcess pid={self.pid} returncode={self._process.returncode}>"

    @property
    def returncode(self) -> int | None:
        """The exit status once the daemon has exited (``-N`` if killed by signal N), else None."""
        return peek(self._process)

    @property
    def stderr(self) -> str:
        """What the daemon wrote on its stderr so far (all of it, after the block).

        With ``stderr=`` a file, what it wrote there since the launch follows what
        it wrote before it moved its stderr there (an early error stays on the kit's).
        """
        if self._kept_stderr is not None:
            return self._kept_stderr
        text = _decode(read_whole(self._stderr_fd))
        if self._stderr_file is not None:
            # LaunchError: not a regular file any more (see _kit._files); not read.
            with contextlib.suppress(FileNotFoundError, LaunchError):
                text += _decode(_read_since(self._stderr_file, self._stderr_start))
        return text

    def address(self, name: str) -> tuple[str, int] | str:
        """Where the ``listen=`` socket ``name`` listens: ``(host, port)`` or a unix path.

        The real port is given when port 0 was asked for. :meth:`inet_address` and
        :meth:`unix_address` say the same with a precise type.

        Raises:
            KeyError: the daemon has no socket of that name.
        """
        text = self._sockets[name]
        if text.startswith("unix:"):
            return text[len("unix:") :]
        host, _, port = text.rpartition(":")
        # ":8080" is a dual-stack wildcard socket: "::" reaches it, as it did.
        return host.strip("[]") or "::", int(port)

    def inet_address(self, name: str) -> tuple[str, int]:
        """``(host, port)`` of the TCP socket ``name``: ``host, port = d.inet_address("http")``.

        Raises:
            KeyError: the daemon has no socket of that name.
            ValueError: it is a unix socket.
        """
        address = self.address(name)
        if isinstance(address, str):
            raise ValueError(f"socket {name!r} is a unix socket ({address}): use unix_address()")
        return address

    def unix_address(self, name: str) -> str:
        """The path of the unix socket ``name``.

        Raises:
            KeyError: the daemon has no socket of that name.
            ValueError: it is a TCP socket.
        """
        address = self.address(name)
        if not isinstance(address, str):
            raise ValueError(f"socket {name!r} is a TCP socket ({address}): use inet_address()")
        return address

    async def status(self, timeout: float = 10.0) -> dict[str, Any]:  # noqa: ASYNC109
        """``aiodaemon status --json``: state, pid, uptime, sockets, last reload, version.

        What the command says, never an error for the daemon's state: one that
        does not answer within ``timeout`` seconds (its loop blocked) is
        ``"unknown"``, with its pid; one that exited is ``"stopped"``, one
        killed (SIGKILL: its pidfile left) ``"dead"``.

        Raises:
            LaunchError: the command gave no JSON answer (its error is the message).
        """
        __tracebackhide__ = True  # pytest shows the test's line, not the kit's
        _, out, err = await run_command(
            "status",
            "--pidfile",
            str(self.pidfile),
            "--json",
            "--timeout",
            str(timeout),
            *self._control,
            timeout=timeout + _COMMAND_SLACK,
        )
        try:
            answer: dict[str, Any] = json.loads(out)
        except ValueError:
            raise LaunchError(f"status failed: {last_message(err)}") from None
        return answer

    async def reload(self, timeout: float = 60.0) -> None:  # noqa: ASYNC109 (passed to the command)
        """Reload as ``aiodaemon reload`` does, and wait for the result.

        Raises:
            ReloadFailed: a reload hook raised (its ``Type: message``), or the reload
                did not finish within ``timeout``.
            LaunchError: the daemon is not running: once it exited, the message
                says how (``the daemon exited (status 1): main failed: ...``).
        """
        __tracebackhide__ = True
        code, _, err = await run_command(
            "reload",
            "--pidfile",
            str(self.pidfile),
            "--timeout",
            str(timeout),
            *self._control,
            timeout=timeout + _COMMAND_SLACK,
        )
        message = last_message(err)
        if code != 0 and (gone := self._gone()) is not None:
            # "not running (no pidfile ...)" says nothing of why: the daemon's own exit does.
            raise LaunchError(f"reload failed: {gone}")
        if code == 1:
            # The command says which daemon failed; the exception carries the hook's error.
            raise ReloadFailed(re.sub(r"^reload (?:hook .+? )?failed \(pid [^)]*\): ", "", message))
        if code != 0:
            raise LaunchError(f"reload failed (exit {code}): {message}")

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the daemon (our child, not reaped before the block ends, so
        its pid cannot have been reused)."""
        if peek(self._process) is None:
            os.kill(self.pid, signum)

    def records(self) -> list[Record]:
        """Every JSON record the daemon wrote to its log so far (not a line still being written).

        With a ``log_file=`` that already held lines, only those this launch added.

        Raises:
            LaunchError: the log holds a line that is not JSON (``log_format="console"``).
        """
        try:
            data = (
                self._kept_log
                if self._kept_log is not None
                else _read_since(self.log_file, self._log_start)
            )
        except FileNotFoundError:
            return []
        lines = data.split(b"\n")[:-1]  # the part after the last newline is incomplete
        try:
            return [json.loads(line) for line in lines if line.strip()]
        except ValueError:
            raise LaunchError(
                f"{self.log_file} is not a JSON-lines log (log_format='console'?): "
                "records() reads JSON records only"
            ) from None

    async def wait_for_record(
        self,
        match: str | Callable[[Record], bool],
        timeout: float = 10.0,  # noqa: ASYNC109 (a deadline in the error message)
    ) -> Record:
        """The first log record whose ``event`` is ``match`` (or that ``match(record)`` accepts).

        Raises:
            TimeoutError: no such record within ``timeout`` seconds.
            LaunchError: the daemon exited without writing one (at once, not at the
                deadline: the message says how it ended, with its own last error).
        """
        __tracebackhide__ = True
        _check_timeout("wait_for_record", timeout)
        predicate = match if callable(match) else (lambda r: r.get("event") == match)
        deadline = time.monotonic() + timeout
        delay = 0.005
        while True:
            # Asked before the log is read: what a daemon that has exited wrote is all there.
            gone = self._gone()
            for record in self.records():
                if predicate(record):
                    return record
            if gone is not None:
                raise LaunchError(f"no log record matching {match!r}: {gone}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no log record matching {match!r} within {timeout}s")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)

    async def wait(self, timeout: float | None = None) -> int:  # noqa: ASYNC109
        """Wait for the daemon to exit on its own and return its status.

        Raises:
            TimeoutError: it still runs after ``timeout`` seconds.
        """
        __tracebackhide__ = True
        _check_timeout("wait", timeout)
        status = await wait_exit(self._process, timeout)
        if status is None:
            raise TimeoutError(f"pid {self.pid} still running after {timeout}s")
        return status

    async def stop(self, timeout: float = STOP_GRACE) -> int:  # noqa: ASYNC109 (grace before SIGKILL)
        """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL; return the exit status."""
        __tracebackhide__ = True
        _check_timeout("stop", timeout)
        return await terminate(self._process, timeout)

    def _gone(self) -> str | None:
        """How the daemon ended, once it has exited and no upgrade's successor runs; else None."""
        status = peek(self._process)
        if status is None or successor_running(self._process, self.pidfile):
            return None
        return exit_error(self.stderr, status)

    def _keep_output(self) -> None:
        """Read the stderr and the log out of the kit's directory before it is removed.

        A test asserts on them after the block too (the shutdown hooks log
        while the block is left): they must not turn into nothing then.
        """
        self._kept_stderr = self.stderr
        if self.log_file.is_relative_to(self.directory):
            # LaunchError: replaced by something the kit does not read; records() says so
            # while the block lasts, and finds nothing after it.
            with contextlib.suppress(FileNotFoundError, LaunchError):
                self._kept_log = _read_since(self.log_file, self._log_start)

    async def _learn_sockets(self) -> None:
        __tracebackhide__ = True
        sockets = (await self.status()).get("sockets")
        if isinstance(sockets, dict):
            self._sockets = dict(sockets)
            return
        # Ready, then gone before it could be asked (main raised at once, say):
        # no daemon to hand over, so the start failed, with the daemon's reason.
        status = await wait_exit(self._process, STOP_GRACE)
        if status is None:
            raise LaunchError(f"pid {self.pid} is ready but does not say its sockets")
        if status == 0:
            # A clean exit is a start that worked (a main that returns at once),
            # as it is without listen=: the test gets the handle and wait() says 0.
            return
        stderr = self.stderr
        raise StartFailed(
            f"the daemon exited right after it was ready: {startup_error(stderr, status)}",
            status,
            stderr,
        )


class Launch(Protocol):
    """The type of :func:`launch` and of the ``aiodaemon_launch`` fixture (for annotations)."""

    def __call__(
        self,
        target: str | os.PathLike[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        **options: Unpack[DaemonOptions],
    ) -> contextlib.AbstractAsyncContextManager[DaemonProcess]: ...


def launch(
    target: str | os.PathLike[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    **options: Unpack[DaemonOptions],
) -> contextlib.AbstractAsyncContextManager[DaemonProcess]:
    """Start ``target`` as a real daemon process, wait until it is ready, and yield it.

    Args:
        target: ``module:attr`` (imported with ``cwd`` on ``sys.path``) or the path of a
            script (``app.py`` or ``app.py:attr``; ``attr`` defaults to ``main``).
        env: extra environment variables for the daemon.
        cwd: the directory to start it in (default: the current one). Relative
            paths (the script, ``pidfile``, ``log_file``, ``control``) are
            relative to it, for the kit as for the daemon.
        **options: the options of ``aiodaemon.run`` (``listen``, ``log_level``,
            ``shutdown_timeout``...). ``pidfile`` and ``log_file`` default to files in a
            fresh temporary directory; the daemon always stays in the foreground.

    Raises:
        StartFailed: the daemon exited, or was not ready within ``start_timeout``
            (default 90 s), instead of becoming ready; or the script does not
            exist, or would not be imported as itself (a name that is not a
            module name, a module of its name in ``cwd``, the name of a module
            the daemon imports itself: ``json.py``, ``structlog.py``).
        TypeError: an option ``aiodaemon.run`` does not have, or a value of a
            type it refuses (``umask=True``, ``control=5``).
        ValueError: an option the kit cannot pass on (``detach=True``,
            ``files_preserve``, ``control=False``, ``log_format="console"`` for the
            kit's own log file).
    """
    # Not contextlib.asynccontextmanager, whose frame pytest would print with
    # its source between the test's line and the error (see _kit._block).
    return Block(_launch(target, env, cwd, options))


async def _launch(
    target: str | os.PathLike[str],
    env: Mapping[str, str] | None,
    cwd: str | os.PathLike[str] | None,
    options: Mapping[str, Any],
) -> AsyncGenerator[DaemonProcess, None]:
    """The body of :func:`launch`: the start before its ``yield``, the stop after it."""
    # pytest shows the test's ``async with`` line and the error, not the kit's frames.
    __tracebackhide__ = True
    given: dict[str, Any] = dict(options)
    pidfile_option, log_option = given.pop("pidfile", None), given.pop("log_file", None)
    _check_kit_types(pidfile_option, log_option, given)
    if log_option is None and given.get("log_format") == "console":
        raise ValueError(
            "launch() keeps the daemon's log as JSON lines for records(): "
            "log_format='console' is refused unless log_file= is given too"
        )
    # Relative paths mean what they mean to the daemon, which starts in ``cwd``:
    # the kit reads the same pidfile, log and control socket, and finds the script there.
    base = Path.cwd() if cwd is None else Path.cwd() / cwd
    if isinstance(given.get("control"), str | os.PathLike):
        given["control"] = str(base / given["control"])
    flags = command_flags(given)
    directory = Path(tempfile.mkdtemp(prefix="aiodaemon-test-"))
    outputs: list[int] = []
    try:
        # Created before the directory is handed to the daemon's account, which
        # could plant a symlink there for us to truncate (see _kit._files).
        outputs += [create_output(directory / "stdout"), create_output(directory / "stderr")]
        hand_directory_to(directory, given.get("user"), given.get("group"))
        pidfile = base / (pidfile_option or directory / "daemon.pid")
        log_file = base / (log_option or directory / "daemon.jsonl")
        module, path_entry = _resolve_target(str(target), base)
        argv = ["run", module, "--pidfile", str(pidfile), "--log-file", str(log_file), *flags]
        stderr_option = given.get("stderr")
        stderr_file = None if stderr_option is None else base / stderr_option
        stderr_start = None if stderr_file is None else _position(stderr_file)
        log_start = _position(log_file)
        process, notify = spawn(argv, (outputs[0], outputs[1]), env, cwd, path_entry)
        control = given.get("control")
        daemon = DaemonProcess(
            process,
            directory,
            pidfile,
            log_file,
            None if control is None else str(control),
            stderr_file,
            stderr_start,
            log_start,
            stderr_fd=outputs[1],
        )
        try:
            start_timeout = float(given.get("start_timeout", 90.0))
            await _wait_ready(daemon, process, notify, start_timeout)
            if given.get("listen") or given.get("health"):
                await daemon._learn_sockets()
            yield daemon
        finally:
            notify.close()
            try:
                await finish(process, pidfile)
            finally:
                daemon._keep_output()
    finally:
        for fd in outputs:
            os.close(fd)
        shutil.rmtree(directory, ignore_errors=True)


def _check_timeout(method: str, timeout: float | None) -> None:
    """Refuse a NaN ``timeout``: no deadline compares with it, and uvloop's timers reject it.

    Raises:
        ValueError: naming the method.
    """
    __tracebackhide__ = True
    if timeout is not None and math.isnan(timeout):
        raise ValueError(f"{method}(): timeout must be a number of seconds, not {timeout!r}")


#: A file's device, inode and size: where a launch found it ending.
_Position = tuple[int, int, int]


def _position(path: Path) -> _Position | None:
    """The device, inode and size of ``path``, or None if it does not exist yet."""
    try:
        info = path.stat()
    except OSError:  # absent, or out of our reach: the daemon says why, if it matters
        return None
    return info.st_dev, info.st_ino, info.st_size


def _read_since(path: Path, start: _Position | None) -> bytes:
    """What was appended to ``path`` since it was at ``start``.

    A file that is not the one found then (rotated: renamed, and reopened by
    the daemon), or is shorter than it was (truncated), is new: read whole.

    Raises:
        FileNotFoundError: there is no file at ``path``.
        LaunchError: what is there is not a regular file of one link (see
            ``_kit._files``); nothing was read.
    """
    # Not followed, not waited on: the directory may be the daemon's account's.
    with open(open_regular(path), "rb") as file:
        if start is not None:
            device, inode, size = start
            now = os.fstat(file.fileno())
            if (now.st_dev, now.st_ino) == (device, inode) and now.st_size >= size:
                file.seek(size)
        return file.read()


def _decode(data: bytes) -> str:
    """The daemon's stderr as text, as a text file in the locale's encoding reads it."""
    return io.TextIOWrapper(io.BytesIO(data), encoding="locale", errors="replace").read()


def _check_kit_types(pidfile: object, log_file: object, options: dict[str, Any]) -> None:
    """Refuse values of a type ``run()`` refuses where the kit itself uses them.

    The kit joins the paths, reads ``start_timeout`` and looks ``user`` up
    before the daemon would say so: a wrong type failed there with Python's
    words (``unsupported operand type(s) for /``, ``getpwnam() argument``).

    Raises:
        TypeError: naming the option.
    """
    __tracebackhide__ = True
    for name, value in (("pidfile", pidfile), ("log_file", log_file)):
        if value is not None and not isinstance(value, str | os.PathLike):
            raise TypeError(f"launch(): {name} must be a path, not {value!r}")
    timeout = options.get("start_timeout", 90.0)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(f"launch(): start_timeout must be a number of seconds, not {timeout!r}")
    for name in ("user", "group"):
        value = options.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, str | int)):
            raise TypeError(f"launch(): {name} must be a name or a numeric id, not {value!r}")


def _resolve_target(target: str, base: Path) -> tuple[str, str | None]:
    """``module:attr`` for the CLI, and the directory to put on ``sys.path`` for a script.

    A relative script path is relative to ``base``, the daemon's directory.
    """
    __tracebackhide__ = True
    path, _, attr = target.partition(":")
    if path.endswith(".py"):
        script = (base / path).resolve()
        if not script.is_file():
            raise StartFailed(f"no such script: {path}", None, "")
        _check_importable(path, script, base)
        return f"{script.stem}:{attr or 'main'}", str(script.parent)
    return target, None


def _check_importable(path: str, script: Path, base: Path) -> None:
    """Refuse a script the daemon would not import as itself.

    ``aiodaemon run`` imports it as module ``script.stem``, with the script's
    directory on ``PYTHONPATH`` but the daemon's own directory first on
    ``sys.path``: a module of that name there would run in its place.

    Raises:
        StartFailed: naming the script, and why.
    """
    __tracebackhide__ = True
    name = script.stem
    if not name.isidentifier():
        suggestion = re.sub(r"\W", "_", name)
        raise StartFailed(
            f"script {path} cannot be imported: {name!r} is not a module name (the daemon "
            f"imports the script as a module; rename it, e.g. {suggestion}.py)",
            None,
            "",
        )
    owner = _owner_of_module_name(name)
    if owner is not None:
        raise StartFailed(
            f"script {path} cannot be imported as itself: its module name {name!r} is "
            f"{owner} {name} (rename it, e.g. {name}_app.py)",
            None,
            "",
        )
    if base.resolve() == script.parent:
        return
    found = importlib.machinery.PathFinder.find_spec(name, [str(base)])
    origin = None if found is None else found.origin
    if origin is not None and Path(origin).resolve() != script:
        raise StartFailed(
            f"script {path} cannot run in {base}: the daemon imports it as module {name!r}, "
            f"and {origin} would be imported instead (launch it with cwd= its directory, "
            "or rename one of them)",
            None,
            "",
        )


#: Modules the daemon's runtime imports besides the standard library's.
_RUNTIME_MODULES = frozenset({"aiodaemon", "orjson", "structlog", "uvloop"})


def _owner_of_module_name(name: str) -> str | None:
    """Whose module ``name`` is, when the daemon imports one of that name itself.

    A script of that name cannot be imported as itself there: a built-in or
    already imported module runs in its place (``module 'time' has no
    attribute 'main'``), or the script, first on the path, takes the module's
    place for the whole daemon (``module 'json' has no attribute 'dumps'``).
    """
    if name in sys.stdlib_module_names:
        return "the standard library's"
    if name in _RUNTIME_MODULES:
        return "a module aiodaemon itself imports:"
    return None


async def _wait_ready(
    daemon: DaemonProcess, process: Process, notify: socket.socket, start_timeout: float
) -> None:
    """Return once the daemon says READY=1.

    Raises:
        StartFailed: it exited first; or its log says its start timed out
            while its event loop was blocked (it is killed at once: it could
            not read a SIGTERM, and would end by itself only ``shutdown_timeout``
            later); or it is still not ready a grace period after its
            ``start_timeout`` (in which it fails the start itself, when its
            loop still runs). The message names ``start_timeout``, as the
            daemon's own does.
    """
    __tracebackhide__ = True
    # A value the daemon refuses (NaN, not above 0) has it exit at once with its
    # own error: no deadline of ours may kill it first, nor reach the loop's timer.
    limit = start_timeout + STOP_GRACE if start_timeout > 0 else None
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def on_notify() -> None:
        while not ready.done():
            try:
                message = receive_notification(notify, process.pid)
            except (BlockingIOError, InterruptedError):
                return
            if message is not None and b"READY=1" in message.split(b"\n"):
                ready.set_result(None)

    exited = asyncio.ensure_future(wait_exit(process, limit))
    # A reader of our own, removed before we return, not a loop.sock_recv: a
    # cancelled sock_recv unwatches its descriptor only on the loop's next turn,
    # after the caller has closed the socket and the number went to another
    # descriptor (on Python 3.12, create_subprocess_exec's pidfd: its wait hung).
    # By number, not the socket: the selector's lookup of a socket object builds
    # its repr, whose abstract (bytes) address is a BytesWarning under -b.
    loop.add_reader(notify.fileno(), on_notify)
    waiters: list[asyncio.Future[Any]] = [ready, exited]
    blocked = None
    if limit is not None:
        blocked = asyncio.ensure_future(_wait_blocked_start(daemon, start_timeout))
        waiters.append(blocked)
    try:
        done, _ = await asyncio.wait(waiters, timeout=limit, return_when=asyncio.FIRST_COMPLETED)
        if ready in done:
            return
        status = exited.result() if exited in done else None
        if status is not None:
            stderr = daemon.stderr
            raise StartFailed(startup_error(stderr, status), status, stderr)
        if blocked is not None and blocked in done:
            # Its SIGTERM would wait with the blocked loop until the daemon's
            # own forced exit, shutdown_timeout away: this one it cannot outwait.
            kill_group(process)
            await wait_exit(process, None)
            raise StartFailed(blocked.result(), None, daemon.stderr)
        await terminate(process, STOP_GRACE)
        stderr = daemon.stderr
        raise StartFailed(f"not ready after {start_timeout:g} s", None, stderr)
    finally:
        loop.remove_reader(notify.fileno())
        exited.cancel()
        if blocked is not None:
            blocked.cancel()


async def _wait_blocked_start(daemon: DaemonProcess, start_timeout: float) -> str:
    """The daemon's own error once its log says its start timed out on a blocked loop.

    Its backstop thread logs ``not ready after S s`` with ``loop: blocked``
    (or ``process: stopped``) a moment after ``start_timeout``, while the
    forced exit that ends such a daemon comes only ``shutdown_timeout`` later.
    A start whose loop runs is left to fail by itself.
    """
    await asyncio.sleep(start_timeout)  # nothing to read before it
    delay = 0.01
    while True:
        with contextlib.suppress(LaunchError):  # a console-format log: no records to read
            for record in daemon.records():
                if record.get("logger") == "aiodaemon" and "start_timeout" in record:
                    if record.get("loop") == "blocked":
                        return f"{record['event']}, event loop blocked"
                    if record.get("process") == "stopped":
                        return (
                            f"{record['event']}, process not running: stopped, frozen,"
                            " or a call blocked holding the GIL"
                        )
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.1)
