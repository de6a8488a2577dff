"""A refused start leaves nothing behind, whatever outputs it was given.

The acquire phase opens the log and stdio files before it binds sockets and
connects to syslog; when a later step fails, the files it created on the way
(still empty) go with the pidfile and sockets. Files that were there before
stay, as they were.
"""

from __future__ import annotations

import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from .support import aiodaemon_cli, install_program, pids_with

#: flag -> file name, for each output the acquire phase opens before it binds.
OUTPUTS = {"--log-file": "app.jsonl", "--stdout": "out.txt", "--stderr": "err.txt"}

#: what makes the acquire phase fail after the outputs are open.
FAILURES = ("listen in use", "health in use", "syslog unreachable")


@contextmanager
def _port_in_use() -> Iterator[int]:
    """A port something listens on for the duration."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def _failing_flags(failure: str, port: int, directory: Path) -> list[str]:
    if failure == "listen in use":
        return ["--listen", f"http=127.0.0.1:{port}"]
    if failure == "health in use":
        return ["--health", f"127.0.0.1:{port}"]
    return ["--syslog", str(directory / "no-syslog-here")]


# A real start per example: a few seconds in all.
@settings(max_examples=8, deadline=None, derandomize=True, database=None)
@given(
    outputs=st.lists(st.sampled_from(sorted(OUTPUTS)), min_size=1, unique=True),
    existing=st.sets(st.sampled_from(sorted(OUTPUTS))),
    failure=st.sampled_from(FAILURES),
)
def test_a_refused_start_leaves_only_what_was_there(
    outputs: list[str], existing: set[str], failure: str
) -> None:
    """start refused after opening its outputs: exit 1, one line, no file it created remains."""
    with tempfile.TemporaryDirectory(prefix="aiodaemon-fuzz-") as tmp, _port_in_use() as port:
        directory = Path(tmp)
        install_program("noop", directory)
        before: dict[str, str] = {}
        for flag in existing & set(outputs):
            path = directory / OUTPUTS[flag]
            path.write_text("" if flag == "--stderr" else "kept\n")
            before[path.name] = path.read_text()
        argv = ["start", "app:main", "--pidfile", str(directory / "app.pid")]
        for flag in outputs:
            argv += [flag, str(directory / OUTPUTS[flag])]
        result = aiodaemon_cli(*argv, *_failing_flags(failure, port, directory), cwd=directory)
        assert result.returncode == 1, result.stderr
        assert result.stderr.count("\n") == 1, result.stderr
        left = {p.name for p in directory.iterdir()} - {"app.py", "__pycache__"}
        assert left == set(before), result.stderr
        assert {name: (directory / name).read_text() for name in left} == before


@pytest.mark.parametrize("flag", sorted(OUTPUTS))
@pytest.mark.parametrize("spelling", ["same", "dot segments", "symlinked directory"])
def test_an_output_that_is_the_pidfile_is_refused(tmp_path: Path, flag: str, spelling: str) -> None:
    """--log-file/--stdout/--stderr naming the pidfile: exit 2, one line, nothing created.

    Accepted, the daemon's records went into its pidfile, removed at exit.
    """
    install_program("noop", tmp_path)
    pidfile = tmp_path / "app.pid"
    (tmp_path / "link").symlink_to(tmp_path)
    same = {
        "same": str(pidfile),
        "dot segments": f"{tmp_path}/./app.pid",
        "symlinked directory": str(tmp_path / "link" / "app.pid"),
    }[spelling]
    result = aiodaemon_cli("start", "app:main", "--pidfile", pidfile, flag, same, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    said = f"aiodaemon: {flag}: is the pidfile {pidfile}, which holds the pid and goes at exit\n"
    assert result.stderr == said
    assert not pidfile.exists()


@pytest.mark.parametrize(("timeout", "shown"), [("1e-09", "0.000000001"), ("0.001", "0.001")])
def test_a_start_timeout_shorter_than_the_fork_leaves_no_daemon(
    tmp_path: Path, timeout: str, shown: str
) -> None:
    """start --start-timeout 1e-9: exit 1 "not ready", and no daemon outlives the verdict.

    The time ran out before the launcher had read the daemon's pid: it stopped
    nothing, and the daemon went on (to ready, at times) without its pidfile.
    """
    install_program("forever", tmp_path)
    for _ in range(3):
        result = aiodaemon_cli(
            "start",
            "app:main",
            "--pidfile",
            tmp_path / "app.pid",
            "--start-timeout",
            timeout,
            cwd=tmp_path,
        )
        assert result.returncode == 1, result.stderr
        assert result.stderr == f"aiodaemon: not ready after {shown} s\n"
        assert pids_with(str(tmp_path)) == []
        assert not (tmp_path / "app.pid").exists()


def _not_a_pid(data: bytes) -> bool:
    """Whether ``data`` is something else than a pidfile's (blank, or a number and spaces)."""
    text = data.strip()
    return bool(text) and not (text.isdigit() and len(data) <= 64)


# A real start per example: a few seconds in all.
@settings(max_examples=8, deadline=None, derandomize=True, database=None)
@given(
    st.one_of(
        st.binary(min_size=1, max_size=200),
        st.text(min_size=1, max_size=80).map(str.encode),
        st.sampled_from([b"1\n2\n", b"import asyncio\n", b"9" * 100, "\u0663\n".encode()]),
    ).filter(_not_a_pid)
)
@example(b"async def main() -> None:\n    ...\n")
def test_a_file_that_is_no_pidfile_is_never_overwritten(data: bytes) -> None:
    """start --pidfile naming a file that holds no pid: exit 1, one line, the file as it was.

    A mistyped --pidfile (app.py) was truncated to the pid, then removed at exit.
    """
    with tempfile.TemporaryDirectory(prefix="aiodaemon-fuzz-") as tmp:
        directory = Path(tmp)
        install_program("forever", directory)
        notes = directory / "notes.txt"
        notes.write_bytes(data)
        result = aiodaemon_cli("start", "app:main", "--pidfile", notes, cwd=directory)
        assert result.returncode == 1, result.stderr
        assert result.stderr.startswith(f"aiodaemon: --pidfile: {notes} holds something other"), (
            result.stderr
        )
        assert result.stderr.count("\n") == 1
        assert notes.read_bytes() == data
        assert pids_with(tmp) == []


def test_a_typo_beside_a_running_daemon_is_a_usage_error(tmp_path: Path) -> None:
    """run/start/restart, a --log-file in no directory, the daemon running: exit 2, it runs on.

    restart said "already running; not restarted" and exited 4, LSB's "insufficient
    privilege", which is for another user's daemon, not for a typo.
    """
    install_program("forever", tmp_path)
    pidfile = tmp_path / "app.pid"
    started = aiodaemon_cli("start", "app:main", "--pidfile", pidfile, cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    daemon = int(started.stdout)
    try:
        for command in ("restart", "start", "run"):
            result = aiodaemon_cli(
                command,
                "app:main",
                "--pidfile",
                pidfile,
                "--log-file",
                tmp_path / "no" / "x.log",
                cwd=tmp_path,
            )
            assert result.returncode == 2, (command, result.stderr)
            assert (
                result.stderr == f"aiodaemon: --log-file: directory does not exist: {tmp_path}/no\n"
            )
            assert pids_with(str(tmp_path)) == [daemon]
    finally:
        stopped = aiodaemon_cli("stop", "--pidfile", pidfile)
    assert stopped.returncode == 0, stopped.stderr
