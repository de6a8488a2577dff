"""One real daemon's control socket fed arbitrary frames: it answers each well, or not at all.

Properties, over hypothesis-generated frames (random bytes, lines around the
size limit, invalid UTF-8, JSON of every shape, unknown commands and versions,
several requests on one connection, half-closed and abandoned connections):
the daemon keeps running; whatever it sends back is one JSON line of the
protocol saying ``ok`` true or false; a frame that is not exactly a request of
the protocol never gets ``ok: true`` and never reloads, stops or upgrades the
daemon; its descriptors return to their baseline once the connections close;
``aiodaemon status`` works afterwards.
"""

from __future__ import annotations

import json
import math
import os
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

import aiodaemon
from aiodaemon._prefork._control_protocol import MAX_CONNECTIONS, MAX_REQUEST

from .control_support import ControlApp, open_control_app
from .support import is_alive, wait_for

#: Derandomized: CI runs the same examples every time, and a module stays a few seconds.
FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
#: The commands that change the daemon; the fuzzer must never trigger one by accident.
ACTIONS = ("reload", "stop", "upgrade")


@dataclass
class Daemon:
    """The module's daemon: its directory, pid and descriptor count at rest."""

    app: ControlApp
    pid: int
    fds: int


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.fixture(scope="module")
def daemon() -> Iterator[Daemon]:
    """One control_app daemon for the whole module, stopped (and checked) at the end."""
    with open_control_app() as app:
        pid = app.start()
        # The first exchange loads what answering needs; the baseline is taken after it.
        assert parse_answer(send(app, b'{"v":1,"cmd":"status"}\n', "half-close"))["ok"] is True
        yield Daemon(app, pid, fd_count(pid))
        result = app.cli("stop", "--pidfile", app.pidfile, "--timeout", "20")
        assert result.returncode == 0, result.stderr
        # No frame was a bug in answering: nothing logged an exception.
        for event in ("control request failed", "control command failed"):
            assert app.records(event) == [], event


def send(app: ControlApp, frame: bytes, how: str, cuts: Sequence[int] = ()) -> bytes | None:
    """Send ``frame`` on one connection; the bytes answered (None when not read).

    ``cuts``: offsets where the frame is split into separate writes.

    ``how``: "half-close" (shut the write side, read to the end), "line" (read
    to the end without shutting it: ``frame`` holds a newline), "abandon"
    (close without reading).
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(20)
        conn.connect(str(app.control))
        try:
            start = 0
            for cut in [*sorted(set(cuts)), len(frame)]:
                conn.sendall(frame[start:cut])
                start = max(start, cut)
            if how == "half-close":
                conn.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the daemon refused an oversized frame before reading all of it
        if how == "abandon":
            return None
        data = b""
        try:
            while chunk := conn.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass  # closed with our unread bytes: what it sent before is still here
        return data


def parse_answer(data: bytes | None) -> dict[str, Any]:
    """``data`` as the one answer line of the protocol; fails the test otherwise."""
    assert data is not None
    assert data.endswith(b"\n"), data
    assert data.count(b"\n") == 1, data
    answer = json.loads(data, parse_constant=_refuse_constant)
    assert isinstance(answer, dict), data
    assert type(answer.get("v")) is int, data
    assert answer["v"] == 1, data
    assert isinstance(answer.get("ok"), bool), data
    if answer["ok"] is False:
        error = answer.get("error")
        assert isinstance(error, str), data
        assert error, data
        assert error.isprintable(), data
    return answer


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is not a finite number")
    return value


def exact_request(frame: bytes) -> dict[str, Any] | None:
    """The request ``frame`` is by the letter of the protocol, None when it is not one.

    Its first line (newline included) fits in MAX_REQUEST, is UTF-8 strict JSON
    (no NaN or Infinity) of an object whose ``v`` is the integer 1 and whose
    ``cmd`` is a string.
    """
    line, newline, _ = frame.partition(b"\n")
    if len(line) + len(newline) > MAX_REQUEST:
        return None
    try:
        message = json.loads(
            line.decode("utf-8"), parse_constant=_refuse_constant, parse_float=_finite
        )
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(message, dict) or type(message.get("v")) is not int:
        return None
    if message["v"] != 1 or not isinstance(message.get("cmd"), str):
        return None
    return message


def valid_reload(request: dict[str, Any] | None) -> bool:
    """Whether ``request`` asks for a reload with a timeout the protocol accepts."""
    if request is None or request.get("cmd") != "reload":
        return False
    timeout = request.get("timeout", 60.0)
    return type(timeout) in (int, float) and timeout > 0


# --- frames --------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN and the infinities too: Python's json writes them
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
versions = st.sampled_from([1, 1.0, True, 0, 2, -1, "1", None, [1], 10**30])
commands = (
    st.sampled_from(
        [
            "status",
            "reload",
            "stop",
            "upgrade",
            "",
            "STATUS",
            "status ",
            "st\x00atus",
            "format-disk",
        ]
    )
    | st.text(max_size=12)
    | json_values
)
timeouts: st.SearchStrategy[object] = (
    st.integers() | st.floats() | st.sampled_from([10**400, "1", True, None, [], 0.0001])
)


@st.composite
def requests_like(draw: st.DrawFn) -> bytes:
    """Objects shaped like requests, with wrong or right versions, commands, timeouts."""
    message: dict[str, Any] = {}
    if draw(st.integers(0, 9)):
        message["v"] = draw(versions)
    if draw(st.integers(0, 9)):
        message["cmd"] = draw(commands)
    if draw(st.booleans()):
        message["timeout"] = draw(timeouts)
    message.update(draw(st.dictionaries(st.text(max_size=6), json_values, max_size=2)))
    return json.dumps(message).encode()


def around_the_limit(size: int) -> bytes:
    """A status request padded with spaces to ``size`` bytes, newline included."""
    core = b'{"v":1,"cmd":"status"}'
    return core + b" " * max(0, size - len(core) - 1) + b"\n"


lines = st.one_of(
    st.binary(max_size=300),
    st.binary(min_size=4000, max_size=9000),
    requests_like(),
    json_values.map(lambda v: json.dumps(v).encode()),
    # invalid UTF-8 inside an otherwise good request
    st.tuples(
        requests_like(), st.integers(0, 40), st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80"])
    ).map(lambda t: t[0][: t[1]] + t[2] + t[0][t[1] :]),
    st.integers(MAX_REQUEST - 3, MAX_REQUEST + 3).map(around_the_limit).map(lambda b: b[:-1]),
    st.integers(1, 6000).map(lambda n: b"[" * n),
)


@st.composite
def frames(draw: st.DrawFn) -> tuple[bytes, str]:
    """One connection's bytes (one or several lines) and how it ends."""
    parts = draw(st.lists(lines, min_size=1, max_size=3))
    frame = b"\n".join(parts)
    if draw(st.booleans()):
        frame += b"\n"
    how = draw(st.sampled_from(["half-close", "line", "abandon"]))
    if how == "line" and b"\n" not in frame:
        how = "half-close"  # without a newline or an end, only the request timeout ends it
    return frame, how


def reload_runs(daemon: Daemon) -> int:
    return len(daemon.app.reload_runs())


# --- properties ----------------------------------------------------------------------


@FUZZ
@given(frames(), st.lists(st.integers(1, 9000), max_size=3))
@example((b'{"v": true, "cmd": "reload"}\n', "line"), [])  # a bool is not the version 1
@example((b'{"v": 1.0, "cmd": "reload"}\n', "line"), [])  # nor is a float
@example((b'{"v": true, "cmd": "stop"}\n', "line"), [])  # it stopped the daemon
@example((b'{"v": 1, "cmd": "reload", "timeout": NaN}\n', "line"), [])  # NaN is not JSON
@example((b'{"v": 1, "cmd": "reload", "timeout": 1e999}\n', "line"), [])  # nor is infinity
@example((b'{"v": 1, "cmd": "reload", "timeout": ' + b"9" * 400 + b"}\n", "line"), [])
@example((b'{"v":1,"cmd":"status"}\n' + b"x" * 5000, "half-close"), [])  # a good line, then more
@example((around_the_limit(MAX_REQUEST), "line"), [])
@example((around_the_limit(MAX_REQUEST + 1), "line"), [])
@example((b"[" * 4000, "half-close"), [])
@example((b'{"v":1,"cmd":"status"}\n' + b"x" * 5000, "half-close"), [10, 4000])
def test_any_frame_gets_one_well_formed_answer_and_changes_nothing(
    daemon: Daemon, frame: tuple[bytes, str], cuts: list[int]
) -> None:
    """Any frame: one protocol answer line (or none), never ok for a non-request, no side effect."""
    data, how = frame
    request = exact_request(data)
    # A real stop or upgrade would end the module's daemon: those are tested elsewhere.
    assume(request is None or request.get("cmd") not in ("stop", "upgrade"))
    runs = reload_runs(daemon)
    answered = send(daemon.app, data, how, cuts)
    answer: dict[str, Any] = {}
    if answered is not None and answered:
        answer = parse_answer(answered)
        if answer["ok"]:
            assert request is not None, (data, answer)
            assert request["cmd"] in ("status", "reload"), (data, answer)
        elif request == {"v": 1, "cmd": "status"}:
            raise AssertionError(f"a status request refused: {answer}")
    elif answered is not None:
        # Nothing at all: only a frame refused before it was read (the daemon
        # closed with our bytes unread, dropping its answer), never a request.
        assert request is None or len(data) > MAX_REQUEST, data
    if answered is not None:
        expected = runs + (1 if valid_reload(request) and answered else 0)
        if answer.get("timeout") is True:
            # Answered at its timeout (microseconds, say): the reload it asked for
            # runs all the same, once the log files are reopened.
            wait_for(lambda: reload_runs(daemon) >= expected, what="the timed-out reload's run")
        # Else its answer was sent after the reload it asked for, if any, was recorded.
        assert reload_runs(daemon) == expected, data
    assert is_alive(daemon.pid)
    assert aiodaemon.read_pidfile(daemon.app.pidfile).running_pid == daemon.pid
    wait_for(lambda: fd_count(daemon.pid) == daemon.fds, what="the fd baseline")


@settings(max_examples=15, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(
    st.lists(
        st.binary(max_size=64) | requests_like(),
        min_size=MAX_CONNECTIONS + 1,
        max_size=MAX_CONNECTIONS + 8,
    )
)
def test_many_connections_at_once_each_get_one_answer(
    daemon: Daemon, connections: list[bytes]
) -> None:
    """More connections at once than the cap: each gets one answer line (maybe "busy")."""
    for data in connections:
        request = exact_request(data)
        assume(request is None or request.get("cmd") not in ACTIONS)
    opened = []
    try:
        for _ in connections:
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            opened.append(conn)
            conn.settimeout(20)
            conn.connect(str(daemon.app.control))
        # All connected before any sends: the first ones hold their slots meanwhile.
        for conn, data in zip(opened, connections, strict=True):
            try:
                conn.sendall(data)
                conn.shutdown(socket.SHUT_WR)
            except (BrokenPipeError, ConnectionResetError):
                pass
        for conn, data in zip(opened, connections, strict=True):
            got = b""
            try:
                while chunk := conn.recv(65536):
                    got += chunk
            except ConnectionResetError:
                pass
            if got:
                answer = parse_answer(got)
                if answer["ok"]:
                    assert exact_request(data) is not None
            else:
                assert exact_request(data) is None
                assert len(data) > MAX_REQUEST
    finally:
        for conn in opened:
            conn.close()
    assert is_alive(daemon.pid)
    wait_for(lambda: fd_count(daemon.pid) == daemon.fds, what="the fd baseline")


def test_status_works_after_the_fuzzing(daemon: Daemon) -> None:
    """After every frame above, ``aiodaemon status --json`` reports the same running daemon."""
    result = daemon.app.cli("status", "--pidfile", daemon.app.pidfile, "--json")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert (answer["state"], answer["pid"]) == ("running", daemon.pid)
    # The command exits once it has read the answer, which the daemon writes
    # before it closes its end: the descriptor goes a moment later.
    wait_for(lambda: fd_count(daemon.pid) == daemon.fds, what="the fd baseline")
