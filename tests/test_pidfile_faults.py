"""Pidfile faults from outside: readers racing starts, odd files at the path, garbage inside."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiodaemon import ExitCode
from aiodaemon._prefork._config import parse_options
from aiodaemon._prefork._pidfile import acquire_pidfile
from aiodaemon.exceptions import StartupError

from .support import (
    PYTHON,
    aiodaemon_cli,
    clean_env,
    install_program,
    pids_with,
    program,
    python,
    read_json_lines,
    read_pid,
    require_tool,
    spawn_program,
    wait_for,
)

#: Every command must answer within this, whatever sits at the pidfile path.
DEADLINE = 20.0


def race_starts(tmp_path: Path, rival: str, rivals: int) -> dict[str, int]:
    """Up to 20,000 starts (10 s at most) against ``rivals`` copies of ``programs/RIVAL.py``."""
    pidfile, stop = tmp_path / "d.pid", tmp_path / "stop"
    procs = [
        subprocess.Popen(
            [PYTHON, str(program(rival)), str(pidfile), str(stop), "120"],
            env=clean_env(),
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(rivals)
    ]
    attempts = []
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline() != ""
        starter = subprocess.run(
            # At most 10 s: each start that races a cleanup retries (the cleanup
            # unlinks the fresh, still empty file); correctness is what counts.
            [PYTHON, str(program("pidfile_starter")), str(pidfile), "20000", "10"],
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        stop.touch()
        attempts = [int(proc.communicate(timeout=30)[0]) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert starter.returncode == 0, starter.stderr
    assert min(attempts) > 20000, "the rivals must overlap the starts"
    result: dict[str, int] = json.loads(starter.stdout)
    return result


def test_status_probes_never_make_a_start_fail(tmp_path: Path) -> None:
    """Tight loops of status readings against a tight loop of starts: no start is refused."""
    # More readers than cores: a reader preempted while it tests the lock is
    # what a start used to run into.
    result = race_starts(tmp_path, "pidfile_prober", 3)
    # Bounded by time (10 s), not by count: a loaded machine fits fewer starts
    # (13,684 once, under a parallel run); what matters is that none failed.
    assert result["starts"] >= 1000, result
    assert (result["refused"], result["invisible"]) == (0, 0), result


def test_stale_pidfile_cleanup_never_hides_a_start(tmp_path: Path) -> None:
    """stop's stale-file cleanup racing starts: every start holds the file at the path."""
    result = race_starts(tmp_path, "pidfile_cleaner", 2)
    # Two cleanups in tight loops make every start race one: fewer starts fit.
    assert result["starts"] >= 50, result
    assert (result["refused"], result["invisible"]) == (0, 0), result


ODD_FILES = ["fifo", "directory", "socket", "device", "symlink", "dangling", "symlinked dir"]


@pytest.fixture(params=ODD_FILES)
def odd_pidfile(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """Something other than a regular file at the pidfile path, and what it is called."""
    path = tmp_path / "d.pid"
    if request.param == "fifo":
        os.mkfifo(path)
        yield path, "a FIFO"
    elif request.param == "directory":
        path.mkdir()
        yield path, "a directory"
    elif request.param == "device":
        # /dev/null's numbers: nothing the test could break through it.
        os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 3))
        yield path, "a character device"
    elif request.param in ("symlink", "dangling", "symlinked dir"):
        target = tmp_path / "target"
        if request.param == "symlink":
            target.write_text("keep me\n")
        elif request.param == "symlinked dir":
            target.mkdir()
        path.symlink_to(target)
        yield path, "a symlink"
        # Never followed: a missing target is not created, an existing one not touched.
        if request.param == "symlink":
            assert target.read_text() == "keep me\n"
        else:
            assert target.exists() == (request.param == "symlinked dir")
    else:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(str(path))
            yield path, "a socket"


def test_status_refuses_a_pidfile_that_is_not_a_regular_file(
    odd_pidfile: tuple[Path, str],
) -> None:
    """status answers at once: unknown (exit 4), naming what sits at the path."""
    path, kind = odd_pidfile
    status = aiodaemon_cli("status", "--pidfile", path, timeout=DEADLINE)
    assert status.returncode == 4
    assert status.stdout == f"unknown (pidfile {path} is {kind}, not a regular file)\n"


@pytest.mark.parametrize("command", ["stop", "reload", "upgrade"])
def test_stop_and_reload_refuse_a_pidfile_that_is_not_a_regular_file(
    odd_pidfile: tuple[Path, str], command: str
) -> None:
    """stop, reload and upgrade answer at once with one line, exit 1, and signal nothing."""
    path, kind = odd_pidfile
    result = aiodaemon_cli(command, "--pidfile", path, timeout=DEADLINE)
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("aiodaemon")
    assert line.endswith(f"nothing signalled: pidfile {path} is {kind}, not a regular file")


def refusal(path: Path, kind: str) -> str:
    """How a start refuses ``kind`` at the pidfile path, after the option's name."""
    if kind == "a symlink":
        return f"{path} is a symlink; refusing to follow it"
    return f"{path} is {kind}, not a regular file"


@pytest.mark.parametrize("command", ["start", "run", "restart"])
def test_a_start_refuses_a_pidfile_that_is_not_a_regular_file_as_a_bad_option(
    odd_pidfile: tuple[Path, str], tmp_path: Path, command: str
) -> None:
    """start, run and restart: the usage error (exit 2) a directory was, one line naming it.

    A FIFO, a socket, a device or a symlink at the path was found only by the
    acquire (exit 1; restart said "cannot tell whether the daemon runs").
    """
    path, kind = odd_pidfile
    install_program("cli_app", tmp_path, "app.py")
    result = aiodaemon_cli(command, "app:main", "--pidfile", path, cwd=tmp_path, timeout=DEADLINE)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"aiodaemon: --pidfile: {refusal(path, kind)}\n"
    assert not (tmp_path / "started").exists()
    assert not pids_with(str(path))


def test_run_refuses_a_pidfile_that_is_not_a_regular_file_as_a_bad_option(
    odd_pidfile: tuple[Path, str], tmp_path: Path
) -> None:
    """run(pidfile=...) says it as for any bad option: ``pidfile: ...``, exit 2, nothing run."""
    path, kind = odd_pidfile
    mark = tmp_path / "ran"
    code = (
        "import aiodaemon, pathlib, sys\n"
        "async def main(): pathlib.Path(sys.argv[2]).touch()\n"
        "aiodaemon.run(main, pidfile=sys.argv[1], detach=False)\n"
    )
    result = python(["-c", code, path, mark], timeout=DEADLINE)
    assert (result.returncode, result.stderr) == (2, f"aiodaemon: pidfile: {refusal(path, kind)}\n")
    assert not mark.exists()


@pytest.mark.parametrize("planted", ["fifo", "symlink"])
def test_a_file_planted_after_the_options_check_is_refused_by_the_acquire(
    tmp_path: Path, planted: str
) -> None:
    """Put there between the options' check and the open: refused by the open, not followed."""
    path, victim = tmp_path / "d.pid", tmp_path / "victim"
    victim.write_text("keep me\n")
    options = parse_options({"pidfile": str(path)})  # nothing there yet: accepted
    if planted == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to(victim)
    with pytest.raises(StartupError) as refused:
        acquire_pidfile(options.pidfile or "")
    assert refused.value.exit_code == ExitCode.FAILURE
    kind = "a FIFO" if planted == "fifo" else "a symlink"
    assert str(refused.value) == f"pidfile {refusal(path, kind)}"
    assert victim.read_text() == "keep me\n"
    assert stat.S_ISFIFO(os.lstat(path).st_mode) == (planted == "fifo")


@pytest.mark.parametrize(
    ("content", "shown"),
    [(b"hello\n", "'hello\\n'"), (b"\x00\xff12\x1b[2J", "'\\x00\\xff12\\x1b[2J'")],
    ids=["text", "binary"],
)
@pytest.mark.parametrize("command", ["status", "stop"])
def test_a_pidfile_holding_garbage_is_called_so(
    tmp_path: Path, command: str, content: bytes, shown: str
) -> None:
    """A pidfile with no pid but other bytes: unparsable, with an escaped excerpt; status 4."""
    path = tmp_path / "d.pid"
    path.write_bytes(content)
    result = aiodaemon_cli(command, "--pidfile", path, timeout=DEADLINE)
    output = result.stdout if command == "status" else result.stderr
    assert f"pidfile {path} holds no pid but unparsable data: {shown}" in output
    assert "empty" not in output
    assert len(output.splitlines()) == 1
    assert "\x1b" not in output
    # status: LSB "unknown"; stop: an unlocked file is stale, removed (exit 0).
    assert result.returncode == (4 if command == "status" else 0)


#: Files that are no pidfile though they start like one: a pid line with more after
#: it, a pid no process can have, more bytes than a pidfile holds.
NOT_A_PIDFILE = {
    "garbage after the pid line": b"123\nxyz",
    "a second number": b"123\n456\n",
    "pid 0": b"0\n",
    "eleven digits": b"99999999999\n",
    "oversized": b"123\n" + b" " * 64 + b"x",
}
#: Pidfiles as a daemon (or a hand) writes them: each names pid 123.
A_PIDFILE = {"no newline": b"123", "leading zeros": b"00123\n", "crlf": b" 123 \r\n"}


@pytest.mark.parametrize("content", NOT_A_PIDFILE.values(), ids=NOT_A_PIDFILE)
def test_status_stop_and_start_agree_a_file_is_no_pidfile(tmp_path: Path, content: bytes) -> None:
    """status says unknown (4), stop leaves it (0) in its words, start refuses it (1)."""
    install_program("forever", tmp_path)
    path = tmp_path / "d.pid"
    path.write_bytes(content)
    status = aiodaemon_cli("status", "--pidfile", path, timeout=DEADLINE)
    assert (status.returncode, status.stdout.split(" ")[0]) == (4, "unknown"), status.stdout
    assert "holds no pid but unparsable data" in status.stdout
    stop = aiodaemon_cli("stop", "--pidfile", path, timeout=DEADLINE)
    assert stop.returncode == 0
    assert stop.stderr.startswith("aiodaemon: nothing to stop: pidfile ")
    assert "holds no pid but unparsable data" in stop.stderr
    assert stop.stderr.endswith("(not a pidfile?); left alone\n")
    start = aiodaemon_cli("start", "app:main", "--pidfile", path, cwd=tmp_path, timeout=DEADLINE)
    assert start.returncode == 1, start.stdout
    assert f"{path} holds something other than a pid" in start.stderr
    assert path.read_bytes() == content
    assert pids_with(str(tmp_path)) == []


@pytest.mark.parametrize("content", A_PIDFILE.values(), ids=A_PIDFILE)
def test_status_stop_and_start_agree_a_file_names_a_dead_pid(
    tmp_path: Path, content: bytes
) -> None:
    """status says dead (1) naming the pid, stop removes the file (0), start takes it over."""
    install_program("forever", tmp_path)
    path = tmp_path / "d.pid"
    path.write_bytes(content)
    status = aiodaemon_cli("status", "--pidfile", path, timeout=DEADLINE)
    assert status.returncode == 1, status.stdout
    assert "names pid 123," in status.stdout
    stop = aiodaemon_cli("stop", "--pidfile", path, timeout=DEADLINE)
    assert stop.returncode == 0
    removed = f"aiodaemon: not running; removed stale pidfile {path} (it named pid 123)\n"
    assert stop.stderr == removed
    assert not path.exists()
    path.write_bytes(content)
    start = aiodaemon_cli("start", "app:main", "--pidfile", path, cwd=tmp_path, timeout=DEADLINE)
    assert start.returncode == 0, start.stderr
    try:
        assert path.read_text() == f"{int(start.stdout)}\n"
    finally:
        stopped = aiodaemon_cli("stop", "--pidfile", path, timeout=DEADLINE)
    assert stopped.returncode == 0, stopped.stderr


@pytest.mark.root
def test_a_pidfile_that_cannot_be_removed_nor_emptied_leaves_a_clean_stop(
    tmp_path: Path,
) -> None:
    """Made immutable while the daemon runs: the stop still ends in status 0, no traceback."""
    chattr = require_tool("chattr")
    pidfile, log = tmp_path / "d.pid", tmp_path / "log"
    options = {"detach": False, "pidfile": str(pidfile), "log_file": str(log)}
    proc = spawn_program("idle", json.dumps(options))
    try:
        assert read_pid(pidfile) == proc.pid
        # The pid is written before the startup hooks run; a SIGTERM before ready
        # ends the start with status 1 (docs/lifecycle.md), which is not this test.
        wait_for(lambda: _has_event(log, "ready"), what="the ready record")
        # Neither unlinked nor truncated, by root either (as on a disk gone bad).
        subprocess.run([chattr, "+i", str(pidfile)], check=True)
        proc.terminate()
        _, err = proc.communicate(timeout=DEADLINE)
        assert (proc.returncode, err) == (0, "")
        # Left unlocked, it reads as a dead daemon's: the next start is not refused.
        state = aiodaemon_cli("status", "--pidfile", pidfile)
        assert state.returncode == 1, state.stdout + state.stderr
    finally:
        subprocess.run([chattr, "-i", str(pidfile)], check=False)
        proc.kill()
        proc.communicate()


def _has_event(log: Path, event: str) -> bool:
    """Whether the log file holds a record of ``event`` yet."""
    return log.exists() and any(r["event"] == event for r in read_json_lines(log))


@pytest.mark.parametrize("command", ["reload", "upgrade"])
def test_reload_and_upgrade_of_an_unlocked_file_holding_no_pid_cannot_tell(
    tmp_path: Path, command: str
) -> None:
    """Exit 1, "cannot tell", as status's unknown: it said "not running", exit 7."""
    path = tmp_path / "d.pid"
    path.write_bytes(b"hello\n")
    result = aiodaemon_cli(command, "--pidfile", path, timeout=DEADLINE)
    assert (result.returncode, result.stdout, result.stderr) == (
        1,
        "",
        "aiodaemon: cannot tell whether the daemon runs, nothing signalled:"
        f" pidfile {path} holds no pid but unparsable data: 'hello\\n'\n",
    )
    assert path.read_bytes() == b"hello\n"
