"""Environment variables aiodaemon reads, with generated garbage in them.

systemd writes ASCII digits in LISTEN_FDS and WATCHDOG_USEC; anything else
must end in the documented one-line startup error (socket activation) or be
ignored (the watchdog), never in ``int()``'s ValueError, nor in a list sized
by the number. AIODAEMON_HANDOFF (an upgrade's) that is not what an old daemon
writes is one line too.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from aiodaemon._prefork._addresses import parse_listen_address
from aiodaemon._prefork._sockets import open_listeners
from aiodaemon._run._systemd import WATCHDOG_FLOOR, Notifier
from aiodaemon.exceptions import StartupError

from .support import AIODAEMON, aiodaemon_cli, clean_env, install_program, python
from .test_systemd import NotifyReceiver

_NUMBERS = st.one_of(
    st.text(max_size=12),
    st.integers(-(2**70), 2**70).map(str),
    st.integers(1, 4000).map(lambda n: "9" * n),
    st.sampled_from(["²", "\u0661", "\uff11", " 1 ", "+1", "1_0", "0x1", "1e3", "", "00"]),
)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(_NUMBERS)
@example("²")
@example("99999999999")
def test_any_listen_fds_matching_no_name_is_a_one_line_startup_error(count: str) -> None:
    """LISTEN_FDS of any text: a StartupError of one line naming listen, never anything else."""
    # Two names and no LISTEN_FDNAMES: no passed fd can match, so none of ours is touched.
    listen = {name: parse_listen_address(name, "127.0.0.1:0") for name in ("a", "b")}
    env = {"LISTEN_FDS": count, "LISTEN_PID": str(os.getpid())}
    with pytest.raises(StartupError) as caught:
        open_listeners(listen, env=env)
    message = str(caught.value)
    assert message.startswith("listen"), message
    assert "\n" not in message
    assert len(message) < 300, message


@pytest.mark.parametrize("count", ["²", "99999999999"])
def test_garbage_listen_fds_fails_the_start_in_one_line(tmp_path: Path, count: str) -> None:
    """aiodaemon run under LISTEN_FDS=² or 99999999999: exit 1, one line, no pidfile."""
    install_program("noop", tmp_path)
    pidfile = tmp_path / "app.pid"
    # LISTEN_PID must name the daemon itself: the shell's pid, kept by exec.
    command = (
        f"LISTEN_PID=$$ exec {shlex.quote(str(AIODAEMON))} run app:main"
        f" --pidfile {shlex.quote(str(pidfile))} --listen http=127.0.0.1:0"
    )
    result = subprocess.run(
        ["sh", "-c", command],
        cwd=tmp_path,
        env=clean_env({"LISTEN_FDS": count}),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr == (
        f"aiodaemon: --listen: bad LISTEN_FDS={count!r} from the service manager\n"
    )
    assert not pidfile.exists()
    assert not Path(f"{pidfile}.ctl").exists()


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(_NUMBERS)
@example("²")
@example("9" * 5000)
def test_any_watchdog_usec_is_a_uint64_or_ignored(usec: str) -> None:
    """WATCHDOG_USEC of any text: half of it, at least the floor, when a uint64 above 0."""
    notifier = Notifier.from_env({"NOTIFY_SOCKET": "/nonexistent/notify", "WATCHDOG_USEC": usec})
    assert notifier is not None
    try:
        text = usec.strip()
        plain = text.isascii() and text.isdigit() and len(text) <= 20
        value = int(text) if plain else 0
        expected = max(value / 2_000_000, WATCHDOG_FLOOR) if 0 < value < 2**64 else None
        assert notifier.watchdog_interval == expected
    finally:
        notifier.close()


def test_a_daemon_with_garbage_watchdog_usec_runs(tmp_path: Path) -> None:
    """WATCHDOG_USEC=² under systemd: the daemon starts, says READY=1 and exits 0."""
    install_program("noop", tmp_path)
    receiver = NotifyReceiver(str(tmp_path / "notify.sock"))
    try:
        result = python(
            ["-m", "aiodaemon", "run", "app:main", "--log-file", tmp_path / "log.jsonl"],
            cwd=tmp_path,
            env={"NOTIFY_SOCKET": receiver.env_value, "WATCHDOG_USEC": "²"},
        )
        assert result.returncode == 0, result.stderr
        assert "READY=1" in receiver.receive().lines
    finally:
        receiver.close()


# --- AIODAEMON_HANDOFF: an upgrade's hand-off, set by hand or left over -------------------

_JSON_JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(),  # Infinity and NaN too: Python's json writes and reads them
    st.text(max_size=6),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)


@st.composite
def _handoffs(draw: st.DrawFn) -> str:
    """Hand-off variables shaped like the old daemon's, with any field wrong."""
    kind = draw(st.sampled_from(["object", "text", "nested"]))
    if kind == "text":
        return draw(st.text(max_size=30).filter(lambda t: "\0" not in t))
    if kind == "nested":
        depth = draw(st.integers(1, 30_000))
        return "[" * depth + "]" * depth
    # The real parent (this test), so the checks go on past "our parent is".
    fields: dict[str, object] = {
        "v": 1,
        "parent": os.getpid(),
        "secret": "0" * 64,
        "channel": 3,
        "stderr": 2,
        "detached": False,
        "uid": os.geteuid(),
        "gid": os.getegid(),
        "fds": [],
    }
    for key in draw(st.lists(st.sampled_from(sorted(fields)), min_size=1, max_size=3)):
        fields[key] = draw(_JSON_JUNK)
    if draw(st.booleans()):
        fd: dict[str, object] = {"role": "listen", "name": "http", "fd": draw(_JSON_JUNK)}
        fields["fds"] = [{**fd, "configured": "", "identity": "", "unix_file": ""}]
    return json.dumps(fields)


# A child interpreter per example: a few seconds in all.
@settings(max_examples=25, deadline=None, derandomize=True, database=None)
@given(_handoffs())
@example('{"v": 1, "parent": Infinity}')
@example("[" * 50_000 + "]" * 50_000)
def test_any_handoff_variable_is_a_one_line_error(value: str) -> None:
    """AIODAEMON_HANDOFF garbage: exit 1 and one line saying what is wrong, no traceback."""
    assume(value.strip())
    result = aiodaemon_cli(
        "status", "--pidfile", "/nonexistent/app.pid", env={"AIODAEMON_HANDOFF": value}
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("aiodaemon: upgrade: "), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr


# --- NOTIFY_SOCKET that names no socket systemd could have made ----------------------------

_NOTIFY_VALUES = st.one_of(
    st.sampled_from(["@", "relative", " /run/notify", "@" + "n" * 120, "/" + "n" * 200]),
    st.text(st.characters(blacklist_characters="\0/@"), min_size=1, max_size=20),
    # An abstract name past sun_path's 107 bytes.
    st.text(st.characters(blacklist_characters="\0"), min_size=1, max_size=20).map(
        lambda t: "@" + t * (110 // len(t) + 1)
    ),
)


def _refused_notify_start(tmp_path: Path, value: str) -> subprocess.CompletedProcess[str]:
    """``aiodaemon start`` with log and stdio files under NOTIFY_SOCKET=``value``."""
    install_program("noop", tmp_path)
    return aiodaemon_cli(
        "start",
        "app:main",
        *("--pidfile", tmp_path / "app.pid", "--log-file", tmp_path / "log.jsonl"),
        *("--stdout", tmp_path / "out", "--stderr", tmp_path / "err"),
        cwd=tmp_path,
        env={"NOTIFY_SOCKET": value},
    )


def _left(directory: Path) -> set[str]:
    """What a start left in ``directory`` besides the program (and its bytecode)."""
    return {p.name for p in directory.iterdir()} - {"app.py", "__pycache__"}


@pytest.mark.parametrize("value", ["relative", "@" + "n" * 120])
def test_a_bad_notify_socket_fails_the_start_leaving_nothing(tmp_path: Path, value: str) -> None:
    """NOTIFY_SOCKET=relative or too long: exit 1, one line, no log or stdio file left."""
    result = _refused_notify_start(tmp_path, value)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("aiodaemon: NOTIFY_SOCKET: "), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert _left(tmp_path) == set()


# A child interpreter per example: a few seconds in all.
@settings(max_examples=10, deadline=None, derandomize=True, database=None)
@given(_NOTIFY_VALUES)
def test_any_notify_socket_systemd_cannot_set_leaves_nothing(value: str) -> None:
    """NOTIFY_SOCKET of text that is no /path or @name that fits: one line, nothing on disk."""
    with tempfile.TemporaryDirectory(prefix="aiodaemon-fuzz-") as tmp:
        result = _refused_notify_start(Path(tmp), value)
        assert result.returncode == 1, result.stderr
        assert result.stderr.startswith("aiodaemon: NOTIFY_SOCKET: "), result.stderr
        assert result.stderr.count("\n") == 1, result.stderr
        assert _left(Path(tmp)) == set()
