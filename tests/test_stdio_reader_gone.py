"""A foreground daemon whose stdout's reader is gone: a closed pipe, a hung-up terminal.

Before, a print left in stdout's buffer made the process exit 120 while its
``exit`` record said 0 (the interpreter's last flush failed), and a print
after the reader went raised ``BrokenPipeError`` or ``OSError: [Errno 5]``
into ``main``, which stopped the daemon (qa6 e24, e13, e13b).
"""

from __future__ import annotations

import os
import pty
import subprocess
from pathlib import Path

from .support import (
    AIODAEMON,
    aiodaemon_cli,
    clean_env,
    kill_quietly,
    program,
    read_json_lines,
    read_pid,
    wait_for,
)


def start_foreground(tmp_path: Path, stdio: int, *, flush: bool) -> subprocess.Popen[bytes]:
    """``aiodaemon run prints_on:main`` in a session of its own, stdout and stderr on ``stdio``."""
    return subprocess.Popen(
        [
            str(AIODAEMON),
            "run",
            "prints_on:main",
            "--pidfile",
            str(tmp_path / "app.pid"),
            "--log-file",
            str(tmp_path / "log"),
        ],
        cwd=program("prints_on").parent,
        env=clean_env({"PRINTS_FLUSH": "1" if flush else "0", "PYTHONUNBUFFERED": ""}),
        stdin=subprocess.DEVNULL,
        stdout=stdio,
        stderr=stdio,
        # No controlling terminal: a hang-up sends it no SIGHUP (setsid, nohup).
        start_new_session=True,
    )


def ticks(log: Path) -> list[int]:
    """The ``n`` of each ``tick`` record so far."""
    if not log.exists():
        return []
    return [int(str(r["n"])) for r in read_json_lines(log) if r.get("event") == "tick"]


def ticks_after_the_reader_went(log: Path, proc: subprocess.Popen[bytes]) -> None:
    """Wait until the program has printed a few more lines since now, or has exited."""
    wait_for(lambda: ticks(log), timeout=20, what="a tick")
    last = ticks(log)[-1]
    wait_for(
        lambda: proc.poll() is not None or ticks(log)[-1] >= last + 5, timeout=20, what="ticks"
    )
    assert proc.poll() is None, "the daemon ended"


def stop_and_wait(tmp_path: Path, proc: subprocess.Popen[bytes]) -> tuple[int, dict[str, object]]:
    """``aiodaemon stop``; the process's exit status and its ``exit`` record."""
    pid = read_pid(tmp_path / "app.pid")
    try:
        stopped = aiodaemon_cli("stop", "--pidfile", tmp_path / "app.pid")
        assert stopped.returncode == 0, stopped.stderr
        status = proc.wait(30)
    finally:
        kill_quietly(pid)
    records = read_json_lines(tmp_path / "log")
    exits = [r for r in records if r.get("event") == "exit"]
    assert len(exits) == 1
    return status, exits[0]


def test_a_print_left_for_a_closed_pipe_keeps_the_exit_records_status(tmp_path: Path) -> None:
    """`aiodaemon run ... | a reader that exits`, `stop`: exit 0, as the record says."""
    reader, writer = os.pipe()
    proc = start_foreground(tmp_path, writer, flush=False)
    os.close(writer)
    ticks_after_the_reader_went(tmp_path / "log", proc)  # what it printed is still in its buffer
    os.close(reader)
    ticks_after_the_reader_went(tmp_path / "log", proc)
    status, record = stop_and_wait(tmp_path, proc)
    assert (status, record["status"], record["reason"]) == (0, 0, None)


def losses(tmp_path: Path) -> list[dict[str, object]]:
    """The log's records about lost output."""
    records = read_json_lines(tmp_path / "log")
    return [r for r in records if str(r.get("event")).startswith("output ")]


def test_a_print_to_a_closed_pipe_is_lost_and_the_daemon_runs_on(tmp_path: Path) -> None:
    """Prints after the pipe's reader exited are dropped, said once; main goes on, exit 0."""
    reader, writer = os.pipe()
    proc = start_foreground(tmp_path, writer, flush=True)
    os.close(writer)
    ticks_after_the_reader_went(tmp_path / "log", proc)
    os.close(reader)
    ticks_after_the_reader_went(tmp_path / "log", proc)
    status, record = stop_and_wait(tmp_path, proc)
    assert (status, record["status"], record["reason"]) == (0, 0, None)
    told = losses(tmp_path)
    assert [(r["event"], r["file"]) for r in told] == [
        ("output lost", "stdout (pipe)"),
        ("output still lost", "stdout (pipe)"),
    ]
    assert "Broken pipe" in str(told[0]["error"])
    assert int(str(told[1]["lost"])) > 0


def test_a_print_to_a_hung_up_terminal_is_lost_and_the_daemon_runs_on(tmp_path: Path) -> None:
    """`setsid aiodaemon run ...`, its terminal closed: prints are dropped, said once; exit 0."""
    controller, terminal = pty.openpty()
    proc = start_foreground(tmp_path, terminal, flush=True)
    os.close(terminal)
    ticks_after_the_reader_went(tmp_path / "log", proc)
    os.close(controller)  # the hang-up: no SIGHUP, not its controlling terminal
    ticks_after_the_reader_went(tmp_path / "log", proc)
    status, record = stop_and_wait(tmp_path, proc)
    assert (status, record["status"], record["reason"]) == (0, 0, None)
    told = losses(tmp_path)
    assert [(r["event"], r["file"]) for r in told][:1] == [("output lost", "stdout (terminal)")]
    assert "Input/output error" in str(told[0]["error"])
    assert [r["event"] for r in told].count("output lost") == len({r["file"] for r in told})
