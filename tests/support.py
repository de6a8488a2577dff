"""Helpers for end-to-end tests: start real daemons and observe them from outside."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
#: The daemon programs tests start: real files, linted and type-checked.
PROGRAMS = Path(__file__).resolve().parent / "programs"
#: Set in the environment of the test run, so every process it starts carries it
#: (conftest fails a run that leaves one behind). A tool that passes on only the
#: variables it is told to (systemd-socket-activate -E) must be told this one.
SESSION_VARIABLE = "AIODAEMON_TEST_SESSION"


def past_duplicate_window() -> None:
    """Let a stop signal the daemon was seen to take age past ``DUPLICATE_WINDOW``.

    The same stop signal again within it is that one delivered twice (GNU
    ``timeout`` signals the child, then its group), not a second request that
    forces the exit. Not a wait for an event: what makes the next signal a
    second request is the time between the two.
    """
    from aiodaemon._run._forced import DUPLICATE_WINDOW

    time.sleep(DUPLICATE_WINDOW + 0.01)


def wait_for(
    predicate: Callable[[], T | bool | None], timeout: float = 10.0, what: str = "condition"
) -> T:
    """Poll ``predicate`` until it returns something truthy, failing after ``timeout``."""
    deadline = time.monotonic() + timeout
    delay = 0.002
    while True:
        value = predicate()
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def proc_state(pid: int) -> str | None:
    """The one-letter state of ``pid`` from /proc, None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", errors="surrogateescape") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return None


def is_alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    return proc_state(pid) not in (None, "Z", "X")


def wait_gone(pid: int, timeout: float = 10.0) -> None:
    """Wait until ``pid`` has exited (a zombie counts as exited)."""
    wait_for(lambda: not is_alive(pid), timeout, f"pid {pid} to exit")


def proc_status(pid: int) -> dict[str, str]:
    """``/proc/PID/status`` as a mapping."""
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def signal_pending(pid: int, signum: int) -> bool:
    """Whether ``signum`` waits, undelivered, for the process (its shared or own pending set)."""
    status = proc_status(pid)
    bit = 1 << (signum - 1)
    return any(int(status[field], 16) & bit for field in ("ShdPnd", "SigPnd"))


def proc_stat_fields(pid: int) -> list[str]:
    """Fields of ``/proc/PID/stat`` after the command name (state is index 0)."""
    with open(f"/proc/{pid}/stat", errors="surrogateescape") as f:
        return f.read().rsplit(")", 1)[1].split()


def open_fds(pid: int) -> dict[int, str]:
    """The open descriptors of ``pid`` and what they point at."""
    base = f"/proc/{pid}/fd"
    result = {}
    for name in os.listdir(base):
        with contextlib.suppress(FileNotFoundError):
            result[int(name)] = os.readlink(f"{base}/{name}")
    return result


def read_pid(path: Path, timeout: float = 10.0) -> int:
    """Wait for ``path`` to hold a pid and return it."""

    def attempt() -> int | None:
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        return int(text) if text.endswith("\n") and text.strip().isdigit() else None

    return wait_for(attempt, timeout, f"a pid in {path}")


def kill_quietly(pid: int, sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to ``pid`` if it still exists."""
    if pid <= 1:
        # 0 is our process group, -1 every process we may signal (all of them,
        # as root), 1 the machine's init: never what a test means.
        raise ValueError(f"refusing to signal pid {pid}")
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def kill_pidfile_holder(pidfile: Path) -> None:
    """Kill the daemon whose pid ``pidfile`` names, if it names one (a test's end).

    Only for a pidfile in the test's own tmp_path: only a daemon that test
    started can have written it.
    """
    try:
        text = pidfile.read_text().strip()
    except FileNotFoundError:
        return
    if text.isdigit() and int(text) > 1:
        kill_quietly(int(text))


def program(name: str) -> Path:
    """The path of ``tests/programs/NAME.py``."""
    path = PROGRAMS / f"{name}.py"
    if not path.is_file():
        raise FileNotFoundError(path)
    return path


def spawn_program(name: str, *args: str | os.PathLike[str]) -> subprocess.Popen[str]:
    """Start ``tests/programs/NAME.py ARGS`` as our child: no stdin, stdout dropped, stderr kept."""
    return subprocess.Popen(
        [PYTHON, str(program(name)), *map(str, args)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )


def full_pipe() -> tuple[int, int]:
    """A pipe (read end, write end) whose reader reads nothing yet: full, so a write blocks."""
    import fcntl  # only these tests

    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)
    os.set_blocking(write_end, False)
    while True:
        try:
            os.write(write_end, b"x" * 4096)
        except BlockingIOError:
            break
    os.set_blocking(write_end, True)
    return read_end, write_end


def has_line(path: Path, line: str) -> bool:
    """Whether the file ``path`` (a program's record of what it did) holds ``line``."""
    return line in path.read_text().splitlines()


def install_program(name: str, directory: Path, as_name: str = "app.py") -> Path:
    """Copy ``tests/programs/NAME.py`` to ``directory/as_name``.

    For programs found by module name from their directory (CLI targets), or
    whose file name shows in what the test checks (tracebacks, syslog app name).
    """
    path = directory / as_name
    shutil.copyfile(program(name), path)
    return path


def start_installed(directory: Path, *options: str | os.PathLike[str]) -> int:
    """``aiodaemon start app:main --pidfile DIRECTORY/app.pid OPTIONS`` from ``directory``.

    For a program put there by :func:`install_program`; its pid, once ready.
    """
    result = aiodaemon_cli(
        "start", "app:main", "--pidfile", directory / "app.pid", *options, cwd=directory
    )
    assert result.returncode == 0, result.stderr
    return int(result.stdout)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port on 127.0.0.1 free right now for ``kind`` (SOCK_STREAM or SOCK_DGRAM)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_binds(port: int) -> bool:
    """Whether 127.0.0.1:``port`` can be bound and listened on again, as a start does."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
        except OSError:
            return False
    return True


def free_privileged_port() -> int:
    """A port below 1024 on 127.0.0.1 that nothing listens on right now."""
    for port in range(900, 1000):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port between 900 and 999")


def cmdline(pid: int) -> str:
    """The NUL-separated command line of ``pid``, empty once it is gone."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            # Any process on the machine may have arguments that are not UTF-8
            # (the fuzz tests pass some): decoded as the OS decodes file names.
            return os.fsdecode(f.read())
    except OSError:
        return ""


def pids_with(marker: str) -> list[int]:
    """Every process whose command line contains ``marker``."""
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and marker in cmdline(int(p))]


def children(pid: int) -> list[int]:
    """The pids whose parent is ``pid``."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if int(proc_stat_fields(int(name))[1]) == pid:
                    found.append(int(name))
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
    return found


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def python(
    args: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 30.0,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the test interpreter to completion, capturing text output."""
    return subprocess.run(
        [PYTHON, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=clean_env(env),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        check=False,
    )


#: The installed console script. pip puts it next to the interpreter; going
#: through a pyenv or PATH shim would test the shim, not our entry point.
AIODAEMON = Path(sys.executable).parent / "aiodaemon"


def aiodaemon_cli(
    *args: str | os.PathLike[str],
    cwd: Path | None = None,
    module: bool = False,
    timeout: float = 45.0,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``aiodaemon ARGS`` (or ``python -m aiodaemon ARGS``) to completion, as text.

    ``env``: variables added to the test's clean environment.
    """
    prefix = [PYTHON, "-m", "aiodaemon"] if module else [str(AIODAEMON)]
    return subprocess.run(
        [*prefix, *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=clean_env(env),
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        check=False,
    )


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The test's environment without service-manager variables, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "NOTIFY_SOCKET",
            "LISTEN_FDS",
            "LISTEN_PID",
            "LISTEN_FDNAMES",
            "INVOCATION_ID",
            "WATCHDOG_USEC",
            "WATCHDOG_PID",
        )
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    if extra:
        env.update(extra)
    return env


#: The version under test, as in interpreter names (``python3.12``).
_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"
#: The environment variable naming a Python of the tested version that any account may run.
SHARED_PYTHON_VARIABLE = "AIODAEMON_TEST_SHARED_PYTHON"


@functools.cache
def _shared_python() -> str | None:
    version = _VERSION
    candidates = [
        os.environ.get(SHARED_PYTHON_VARIABLE),
        sys.executable,
        f"/usr/bin/python{version}",
        f"/usr/local/bin/python{version}",
    ]
    for candidate in filter(None, candidates):
        if not os.access(candidate, os.X_OK):
            continue
        # Run as nobody: the version it reports, if it may run at all.
        try:
            probe = subprocess.run(
                [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                user=65534,
                group=65534,
                extra_groups=[],
                env={"PATH": "/usr/bin:/bin"},
                timeout=30,
                check=False,
            )
        except OSError:  # exec refused: a directory on its path is closed to nobody
            continue
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return candidate
    return None


def shared_python() -> str:
    """A Python of the version under test that every account may run, for daemons that drop.

    Such a daemon runs (and an upgrade re-executes) the interpreter as its user, with
    the test's site-packages, whose compiled modules (orjson, uvloop) load in the
    same version only. The test interpreter qualifies unless it lives where other
    accounts cannot enter (pyenv under /root); else ``/usr/bin/pythonX.Y``, or the
    one ``AIODAEMON_TEST_SHARED_PYTHON`` names. Without one the test cannot run:
    it fails under CI (whose Debian Python is such an interpreter), else it is
    skipped saying what to provide.
    """
    import pytest

    found = _shared_python()
    if found is not None:
        return found
    version = _VERSION
    reason = (
        f"needs a Python {version} that any account may run (a daemon dropped to another"
        f" user runs it): {sys.executable} is not one and /usr/bin/python{version} is"
        f" missing; name one in {SHARED_PYTHON_VARIABLE}"
    )
    if os.environ.get("CI"):
        pytest.fail(reason)
    raise pytest.skip.Exception(reason)


def read_json_lines(path: Path) -> list[dict[str, object]]:
    """Every complete line of a JSON-lines log file, parsed."""
    text = path.read_text()
    # A daemon may be writing right now: a last line without its newline is
    # still in flight, left for the next read.
    complete = text[: text.rfind("\n") + 1]
    # split, not splitlines: a JSON line may hold U+2028 and the like, which it splits on.
    return [json.loads(line) for line in complete.split("\n") if line.strip()]


def require_tool(name: str) -> str:
    """The path of an outside program a test needs; a missing one fails the test, never skips."""
    import shutil

    import pytest

    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        pytest.fail(f"{name} is required by this test and is not installed (.ci/run installs it)")
    return path


def run_logrotate(config: Path, state: Path) -> None:
    """Force one rotation with the real logrotate, failing the test if it reports an error."""
    result = subprocess.run(
        [require_tool("logrotate"), "-f", "-s", str(state), str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr


class ForegroundDaemon:
    """A foreground daemon from ``tests/programs`` in a child, with its log file and record.

    The program gets the options as JSON in argv[1] and the record file in argv[2]
    (``tests/programs/recorder.py`` reads them), then ``args``.
    """

    def __init__(self, tmp_path: Path, name: str, *args: str, **options: Any) -> None:
        self.log = tmp_path / "log.jsonl"
        self.record = tmp_path / "record.txt"
        self.record.touch()
        options = {"detach": False, "log_file": str(self.log), **options}
        self.proc = subprocess.Popen(
            [PYTHON, str(program(name)), json.dumps(options), str(self.record), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(),
        )
        self.pid = self.proc.pid

    def events(self) -> list[str]:
        """The ``event`` of every log line so far."""
        if not self.log.exists():
            return []
        return [str(line["event"]) for line in read_json_lines(self.log)]

    def lines(self) -> list[dict[str, object]]:
        """Every log line so far."""
        return read_json_lines(self.log) if self.log.exists() else []

    def recorded(self) -> list[str]:
        """What the program recorded, line by line."""
        return self.record.read_text().splitlines()

    def wait_event(self, event: str, count: int = 1, timeout: float = 10.0) -> None:
        """Wait until the log holds ``count`` lines with this event."""
        wait_for(lambda: self.events().count(event) >= count, timeout, f"{count}x {event!r}")

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the daemon."""
        os.kill(self.pid, sig)

    def wait(self, timeout: float = 15.0) -> int:
        """Wait for the exit status."""
        return self.proc.wait(timeout=timeout)

    def stderr(self) -> str:
        """Everything the daemon wrote on stderr (after it exited)."""
        assert self.proc.stderr is not None
        return self.proc.stderr.read()

    def kill(self) -> None:
        """SIGKILL the daemon if it still runs, reap it, close its pipes."""
        kill_quietly(self.pid)
        self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def log_child_env(*, detached: bool = True, queue_size: int = 32768) -> dict[str, str]:
    """The variables shaping a logging child's writer (``tests/programs/logchild.py``)."""
    return {"LOG_CHILD_DETACHED": "1" if detached else "0", "LOG_CHILD_QUEUE_SIZE": str(queue_size)}


class Rsyslog:
    """A private rsyslogd: a Unix socket, TCP and UDP inputs, everything into one file."""

    def __init__(self, directory: Path) -> None:
        self.binary = require_tool("rsyslogd")
        self.directory = directory
        self.socket = directory / "log.sock"
        self.output = directory / "received.log"
        self.tcp_port = free_port(socket.SOCK_STREAM)
        self.udp_port = free_port(socket.SOCK_DGRAM)
        self.config = directory / "rsyslog.conf"
        self.config.write_text(
            textwrap.dedent(f"""\
            global(workDirectory="{directory}")
            module(load="imuxsock" SysSock.Use="off")
            input(type="imuxsock" Socket="{self.socket}")
            module(load="imtcp")
            input(type="imtcp" address="127.0.0.1" port="{self.tcp_port}")
            module(load="imudp")
            input(type="imudp" address="127.0.0.1" port="{self.udp_port}")
            template(name="fields" type="list") {{
                property(name="syslogseverity") constant(value="|")
                property(name="syslogfacility-text") constant(value="|")
                property(name="app-name") constant(value="|")
                property(name="procid") constant(value="|")
                property(name="structured-data") constant(value="|")
                property(name="msg" droplastlf="on") constant(value="\\n")
            }}
            *.* action(type="omfile" file="{self.output}" template="fields")
            """)
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start rsyslogd in the foreground and wait until all its inputs listen."""
        self.proc = subprocess.Popen(
            [self.binary, "-n", "-f", str(self.config), "-i", str(self.directory / "rsyslog.pid")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self.socket.is_socket, what="rsyslogd's socket")
        wait_for(self._tcp_listening, what="rsyslogd's TCP input")

    def _tcp_listening(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.tcp_port), timeout=1).close()
        except OSError:
            return False
        return True

    def stop(self) -> None:
        """Stop rsyslogd and wait for it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def messages(self) -> list[tuple[int, str, str, int, str, str]]:
        """(severity, facility, app, pid, structured data, msg) of every message received."""
        try:
            text = self.output.read_text()
        except FileNotFoundError:
            return []
        result = []
        # Not splitlines(): a message may hold U+2028 and the like, which it splits on.
        for line in text.split("\n")[:-1]:
            sev, facility, app, pid, data, msg = line.split("|", 5)
            result.append((int(sev), facility, app, int(pid), data, msg.strip()))
        return result


def run_on_terminal(
    argv: Sequence[str | os.PathLike[str]], env: Mapping[str, str] | None = None
) -> tuple[str, int]:
    """Run ``argv`` with a pty as its stderr; what it showed there and its exit status."""
    import pty
    import select

    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        [str(arg) for arg in argv],
        env=clean_env(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=terminal,
    )
    os.close(terminal)
    output = b""
    try:
        while True:
            ready, _, _ = select.select([controller], [], [], 10)
            assert ready, "no output on the terminal"
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(controller)
        status = proc.wait(10)
    return output.decode(), status


def python_snippets(page: Path) -> list[str]:
    """The ```python blocks of a Markdown page, in order."""
    import re

    return re.findall(r"```python\n(.*?)```", page.read_text(), re.S)


def mypy_strict(directory: Path, sources: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``mypy --strict`` on ``sources`` (file name -> code), written to ``directory``.

    As a user's checker would see aiodaemon: the checkout on MYPYPATH, a cache
    of the test's own.
    """
    for name, code in sources.items():
        (directory / name).write_text(code)
    config = directory / "mypy.ini"
    config.write_text("[mypy]\nstrict = True\n")
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--no-error-summary",
            "--config-file",
            str(config),
            "--cache-dir",
            str(directory / "cache"),
            *sources,
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=clean_env({"MYPYPATH": str(REPO)}),
        cwd=directory,
        check=False,
    )


def unix_inode(path: Path) -> int:
    """The inode of the unix socket bound at ``path`` (from /proc/net/unix)."""
    # Another test's socket may have a path that is not UTF-8 (test_log_nonutf8.py).
    table = Path("/proc/net/unix").read_text(errors="surrogateescape")
    for line in table.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 8 and fields[7] == str(path):
            return int(fields[6])
    raise AssertionError(f"no socket bound at {path}")


def get_logged_listener(log: Path, name: str = "http") -> str:
    """One ``GET /`` to listener ``name`` at the port the log's first ``starting`` names: the body.

    An upgrade keeps the port (the new process inherits the socket), so the
    first record names it for every generation.
    """
    [record, *_] = wait_for(
        lambda: [r for r in read_json_lines(log) if r["event"] == "starting"],
        what="the starting record",
    )
    sockets = record["sockets"]
    assert isinstance(sockets, dict)
    return get_body(int(str(sockets[name]).rsplit(":", 1)[1]))


def get_body(port: int) -> str:
    """One ``GET /`` on 127.0.0.1:``port``, the connection closed after it: the body, stripped."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    return data.partition(b"\r\n\r\n")[2].decode().strip()


def without_nproc_note(text: str) -> str:
    """``text`` less the RLIMIT_NPROC note a refused fork or thread adds at the limit.

    Tests of what a refusal leaves behind run at a limit of 1 or 2, which other
    processes of the same user may or may not have reached: the note's own
    tests (test_nproc_limit.py) check it.
    """
    return re.sub(r" \(RLIMIT_NPROC \d+ reached: uid \d+ has \d+ processes and threads\)", "", text)
