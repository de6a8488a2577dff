"""The CLI against a control socket that answers hypothesis-generated garbage.

A real process holds the pidfile's lock and listens on the control socket the
test serves (tests/programs/control_holder.py), so the CLI trusts what the test
writes: random bytes, JSON of wrong shapes, oversized lines, no newline before
the close, half an answer and then silence, no answer at all. Properties,
for ``status``, ``status --json``, ``reload``, ``upgrade`` and ``stop``: the
CLI never prints a traceback, exits with a documented LSB code, says what
happened in a few printable lines (``status --json``: exactly one JSON object on stdout), and
ends within its ``--timeout`` (the subprocess timeout bounds it).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import aiodaemon
from aiodaemon._cli._control import ControlCode
from aiodaemon._cli._status_command import StatusCode
from aiodaemon._prefork._control_protocol import MAX_ANSWER, ProtocolError, decode

from .control_support import open_control_app
from .support import AIODAEMON, PROGRAMS, PYTHON, clean_env, is_alive

FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
STATUS_KEYS = {"state", "pid", "uptime", "sockets", "last_reload", "version"}
#: The CLI's own --timeout in these tests; the subprocess gets this much more.
TIMEOUT = 0.5
#: reload waits its timeout plus 2 s of grace for the answer; stop retries a
#: broken socket for 2 s, then SIGTERMs and waits; all well within this.
MARGIN = 20.0


@dataclass(frozen=True)
class Answer:
    """What the fake daemon does with one connection once the request is read."""

    data: bytes = b""
    #: keep the connection open after ``data`` (the CLI must give up on its own).
    hold: bool = False
    #: then end the lock holder, as a daemon that stops does.
    end_holder: bool = False


@dataclass
class FakeDaemon:
    """A pidfile held by a real process, and a control socket the test answers."""

    dir: Path
    holder: subprocess.Popen[str]
    listener: socket.socket
    answer: Answer = field(default_factory=Answer)
    requests: list[bytes] = field(default_factory=list)
    held: list[socket.socket] = field(default_factory=list)

    @property
    def pidfile(self) -> Path:
        return self.dir / "app.pid"

    def serve(self) -> None:
        """Answer every connection with ``self.answer`` until the listener shuts down."""
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            conn.settimeout(10)
            try:
                request = b""
                while b"\n" not in request and (chunk := conn.recv(4096)):
                    request += chunk
                self.requests.append(request)
                if self.answer.data:
                    conn.sendall(self.answer.data)
            except OSError:
                pass  # the CLI gave up (a huge answer it refused to read)
            if self.answer.hold:
                self.held.append(conn)
            else:
                conn.close()
            if self.answer.end_holder and self.holder.stdin is not None:
                self.holder.stdin.close()

    def release(self) -> None:
        """Close the connections held open by the last example."""
        while self.held:
            self.held.pop().close()

    def cli(
        self, *args: str, wait: float, timeout: str | None = str(TIMEOUT)
    ) -> subprocess.CompletedProcess[str]:
        """``aiodaemon ARGS --pidfile P --timeout TIMEOUT``, bounded by ``wait`` more seconds."""
        given = [] if timeout is None else ["--timeout", timeout]
        return subprocess.run(
            [str(AIODAEMON), *args, "--pidfile", str(self.pidfile), *given],
            capture_output=True,
            text=True,
            cwd=PROGRAMS,
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            timeout=TIMEOUT + wait,  # a huge --timeout is only given when the answer comes
            check=False,
        )


@contextlib.contextmanager
def open_fake_daemon(directory: Path) -> Iterator[FakeDaemon]:
    """A lock holder and a served control socket in ``directory``; both gone at the end."""
    control = directory / "app.pid.ctl"
    control.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(control))
    holder = subprocess.Popen(
        [
            PYTHON,
            str(PROGRAMS / "control_holder.py"),
            directory / "app.pid",
            str(listener.fileno()),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        pass_fds=[listener.fileno()],
    )
    fake = FakeDaemon(directory, holder, listener)
    thread = threading.Thread(target=fake.serve, daemon=True)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "ready\n"
        thread.start()
        yield fake
    finally:
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)
        thread.join(10)
        listener.close()
        fake.release()
        holder.kill()
        holder.wait()
        for pipe in (holder.stdin, holder.stdout):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A short directory (a unix socket path has 108 bytes at most)."""
    path = Path(tempfile.mkdtemp(prefix="aiodaemon-fz-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def fake(workdir: Path) -> Iterator[FakeDaemon]:
    """One fake daemon for a whole hypothesis run (status and reload never end it)."""
    with open_fake_daemon(workdir) as daemon:
        yield daemon


# --- answers -----------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def answers_like(draw: st.DrawFn) -> dict[str, Any]:
    """Objects shaped like answers: right or wrong version, ok, and the keys of each command."""
    answer: dict[str, Any] = {}
    keys = st.sampled_from(
        ["v", "ok", "error", "state", "pid", "uptime", "sockets", "last_reload", "version",
         "reload", "already_stopping", "exits_within", "socket_files", "transient", "timeout"]
    )  # fmt: skip
    good: dict[str, Any] = {
        "v": 1,
        "ok": True,
        "state": "running",
        "pid": 1,
        "uptime": 1.5,
        "sockets": {"web": "127.0.0.1:80"},
        "last_reload": None,
        "version": "1",
        "reload": {"ok": True, "error": None, "at": "2026-11-22T00:00:00Z"},
        "socket_files": {"/nonexistent/aiodaemon.sock": [1, 2]},
    }
    for key in draw(st.lists(keys, unique=True, max_size=15)):
        answer[key] = good[key] if key in good and draw(st.booleans()) else draw(json_values)
    return answer


def line(message: object) -> bytes:
    """``message`` as Python's json writes it (NaN and Infinity included), one line."""
    return json.dumps(message).encode() + b"\n"


answer_bytes = st.one_of(
    st.binary(max_size=200),
    st.binary(max_size=200).map(lambda b: b.replace(b"\n", b"") + b"\n"),
    answers_like().map(line),
    answers_like().map(lambda a: line(a)[:-1]),  # no newline, then the close
    answers_like().map(lambda a: line(a)[: len(line(a)) // 2]),  # half of it
    json_values.map(line),
    st.sampled_from([b"\n", b"{}\n", b"null\n", b"[]\n", b'"ok"\n', b"\xff\xfe\n"]),
)
#: Rare: each costs the CLI its whole timeout, or a megabyte.
slow_answers = st.one_of(
    st.builds(Answer, answer_bytes, st.just(True)),  # then silence
    st.just(Answer(b"x" * (MAX_ANSWER + 10))),  # more than a client reads
    st.just(Answer(b"{" + b" " * MAX_ANSWER + b"\n")),  # a huge line
)
answers = st.integers(0, 9).flatmap(
    lambda n: slow_answers if n == 0 else st.builds(Answer, answer_bytes)
)

#: Regression examples: answers that made the CLI fail before the protocol refused them.
INFINITE_UPTIME = Answer(
    b'{"v":1,"ok":true,"state":"running","pid":1,"uptime":Infinity,'
    b'"sockets":{},"last_reload":null}\n'
)
NAN_UPTIME = Answer(INFINITE_UPTIME.data.replace(b"Infinity", b"NaN"))
BIG_UPTIME = Answer(INFINITE_UPTIME.data.replace(b"Infinity", b"1e999"))
#: Shapes status must not pass on as the daemon's: a bool for a pid, a reload without a result.
BOOL_PID = Answer(
    INFINITE_UPTIME.data.replace(b'"pid":1', b'"pid":true').replace(b"Infinity", b"1")
)
EMPTY_RELOAD = Answer(
    INFINITE_UPTIME.data.replace(b"Infinity", b"1").replace(b"null", b'{"ok":"yes"}')
)


# --- properties --------------------------------------------------------------------


def check_output(result: subprocess.CompletedProcess[str], codes: set[int], lines: int) -> None:
    """No traceback, a documented code, and at most ``lines`` printable lines on stderr."""
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    assert result.returncode in codes, (result.returncode, result.stderr)
    said = result.stderr.splitlines()
    assert len(said) <= lines, said
    for text in said + result.stdout.splitlines():
        assert text.isprintable(), text


@settings(FUZZ, max_examples=40)
@given(answers, st.booleans())
@example(INFINITE_UPTIME, False)
@example(INFINITE_UPTIME, True)
@example(NAN_UPTIME, False)
@example(BIG_UPTIME, False)
@example(BOOL_PID, True)
@example(EMPTY_RELOAD, True)
@example(Answer(b"", hold=True), True)  # never answers
def test_status_reports_a_documented_code_whatever_the_answer(
    fake: FakeDaemon, answer: Answer, as_json: bool
) -> None:
    """status: an LSB code, no traceback, one line (or one JSON object), within its timeout."""
    fake.answer = answer
    fake.requests.clear()
    try:
        result = fake.cli("status", *(["--json"] if as_json else []), wait=MARGIN)
    finally:
        fake.release()
    check_output(result, {code.value for code in StatusCode}, lines=1)
    if as_json:
        # Exactly one strict JSON object, whatever came over the socket.
        assert result.stdout.count("\n") == 1, result.stdout
        printed = json.loads(result.stdout, parse_constant=_not_json)
        assert set(printed) == STATUS_KEYS
        if result.returncode == StatusCode.RUNNING and printed["sockets"] is not None:
            check_status_shape(printed)
    elif result.returncode != StatusCode.RUNNING:
        assert result.stdout.count("\n") == 1, result.stdout
    # Whatever it was answered, what the CLI asked was a status request and nothing else.
    for request in fake.requests:
        assert json.loads(request) == {"v": 1, "cmd": "status"}, request
    assert is_alive(fake.holder.pid)


def check_status_shape(printed: dict[str, Any]) -> None:
    """The types DESIGN.md promises for ``status --json`` of a daemon that answered."""
    assert isinstance(printed["state"], str), printed
    assert type(printed["pid"]) is int, printed
    assert type(printed["uptime"]) in (int, float), printed
    assert all(isinstance(value, str) for value in printed["sockets"].values()), printed
    last = printed["last_reload"]
    if last is not None:
        assert isinstance(last.get("ok"), bool), printed
        assert last.get("error") is None or isinstance(last["error"], str), printed
        assert isinstance(last.get("at"), str), printed


def _not_json(name: str) -> object:
    raise AssertionError(f"{name} is not JSON")


@settings(FUZZ, max_examples=30)
@given(answers)
@example(Answer(b"", hold=True))
@example(Answer(b'{"v":1,"ok":true,"reload":{"ok":NaN}}\n'))
def test_reload_reports_a_documented_code_whatever_the_answer(
    fake: FakeDaemon, answer: Answer
) -> None:
    """reload: 0, 1 or 4, no traceback, a line or two, no SIGHUP instead, within its timeout."""
    fake.answer = answer
    try:
        result = fake.cli("reload", wait=MARGIN)
    finally:
        fake.release()
    # Two lines at most: a transient refusal is said once, then the verdict.
    check_output(result, {ControlCode.OK, ControlCode.FAILURE, ControlCode.NO_PERMISSION}, 2)
    assert result.stderr, "reload says how it went"
    # A daemon that has a control socket is never SIGHUPed instead (it would die of it).
    assert is_alive(fake.holder.pid)


def decodes(data: bytes) -> bool:
    """Whether the CLI reads ``data`` as an answer (an unreadable one costs upgrade 2 s)."""
    try:
        decode(data)
    except ProtocolError:
        return False
    return True


#: Readable answers of every shape: each unreadable one makes upgrade wait 2 s
#: for an exit (a daemon dying mid-upgrade), so only the examples below have those.
readable_answers = (
    answers_like().map(lambda answer: line({**answer, "v": 1})).filter(decodes).map(Answer)
)


@settings(FUZZ, max_examples=20)
@given(readable_answers)
@example(Answer(b'{"v":1,"ok":true,"pid":true}\n'))
@example(Answer(b"\x00garbage\n"))
def test_upgrade_reports_a_documented_code_whatever_the_answer(
    fake: FakeDaemon, answer: Answer
) -> None:
    """upgrade: 0 (printing a pid), 1 or 4, no traceback, a line or two, no SIGUSR2 instead."""
    fake.answer = answer
    result = fake.cli("upgrade", wait=MARGIN)
    check_output(result, {ControlCode.OK, ControlCode.FAILURE, ControlCode.NO_PERMISSION}, 2)
    if result.returncode == ControlCode.OK:
        assert result.stdout.strip().isdigit(), result.stdout
    else:
        assert result.stderr, "upgrade says why it failed"
    # The holder has a control socket: never signalled instead (SIGUSR2 would end it).
    assert is_alive(fake.holder.pid)


@settings(FUZZ, max_examples=2)
@given(answers)
@example(Answer(b"", hold=True))
@example(Answer(b'{"v":1,"ok":true,"already_stopping":true,"exits_within":1e308}\n'))
def test_stop_reports_a_documented_code_whatever_the_answer(workdir: Path, answer: Answer) -> None:
    """stop: 0, 1 or 4, no traceback, a few lines, the holder gone, within its timeout."""
    with open_fake_daemon(workdir) as fake:
        fake.answer = answer
        result = fake.cli("stop", wait=MARGIN)
        fake.release()
        check_output(result, {ControlCode.OK, ControlCode.FAILURE, ControlCode.NO_PERMISSION}, 3)
        assert fake.holder.wait(10) is not None


# --- waits too long for the kernel --------------------------------------------------


def good_answer(pid: int) -> Answer:
    """One answer that satisfies status, reload and upgrade (the new pid: ``pid``)."""
    reload = {"ok": True, "error": None, "at": "x"}
    status = {"state": "running", "pid": pid, "uptime": 1.0, "sockets": {}, "last_reload": None}
    return Answer(line({"v": 1, "ok": True, **status, "version": "1", "reload": reload}))


@settings(FUZZ, max_examples=4)
@given(st.floats(min_value=1e9, max_value=1.7e308))
@example(1e12)
def test_a_huge_timeout_means_as_long_as_it_takes(fake: FakeDaemon, timeout: float) -> None:
    """status, reload, upgrade --timeout 1e12 and more: no overflow, the answer as usual."""
    fake.answer = good_answer(fake.holder.pid)
    for command, code in (("status", StatusCode.RUNNING), ("reload", 0), ("upgrade", 0)):
        result = fake.cli(command, wait=MARGIN, timeout=repr(timeout))
        check_output(result, {code}, lines=1)


@settings(FUZZ, max_examples=2)
@given(st.floats(min_value=1e9, max_value=1.7e308))
@example(1e300)
def test_stop_takes_a_huge_timeout_or_stop_budget(workdir: Path, budget: float) -> None:
    """stop: --timeout 1e300, or a daemon's stop budget of 1e300 s, is waited on: no overflow."""
    for given_timeout in (repr(budget), None):
        with open_fake_daemon(workdir) as fake:
            answer = {"v": 1, "ok": True, "already_stopping": False, "exits_within": budget}
            fake.answer = Answer(line(answer), end_holder=True)
            result = fake.cli("stop", wait=MARGIN, timeout=given_timeout)
            check_output(result, {ControlCode.OK}, lines=1)
            assert fake.holder.wait(10) is not None


def test_start_with_a_huge_start_timeout_waits_for_ready() -> None:
    """start --start-timeout 1e12: the launcher waits for ready (it exited 1, silently)."""
    with open_control_app() as app:
        result = app.cli("start", "control_app:main", "--pidfile", app.pidfile,
                         "--log-file", app.log, "--start-timeout", "1e12")  # fmt: skip
        assert (result.returncode, result.stderr) == (0, "")
        assert int(result.stdout) == aiodaemon.read_pidfile(app.pidfile).running_pid
        stopped = app.cli("stop", "--pidfile", app.pidfile, "--timeout", "20")
        assert stopped.returncode == 0, stopped.stderr
