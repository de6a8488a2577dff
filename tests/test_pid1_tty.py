"""As PID 1 on a terminal (``docker run -it``), the daemon reads it and Ctrl-C stops it."""

from __future__ import annotations

import fcntl
import os
import pty
import subprocess
import termios
from pathlib import Path

import pytest

from .support import PYTHON, clean_env, program, read_json_lines, require_tool, wait_for
from .test_container import PtyLines


def _take_as_controlling_terminal() -> None:
    """In the new session: the pty on fd 0 becomes its terminal, as a container runtime's -t."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


@pytest.mark.root
def test_a_pid1_daemon_reads_its_terminal_and_ctrl_c_stops_it(tmp_path: Path) -> None:
    """Not stopped by SIGTTIN as a background job: it reads a line; Ctrl-C ends it with 0."""
    log = tmp_path / "log.jsonl"
    master, slave = pty.openpty()
    namespace = [require_tool("unshare"), "--pid", "--fork", "--mount-proc", "--kill-child"]
    proc = subprocess.Popen(
        [*namespace, PYTHON, str(program("tty_reader")), str(log)],
        env=clean_env(),
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
        preexec_fn=_take_as_controlling_terminal,
    )
    os.close(slave)
    output = PtyLines(master)
    try:
        wait_for(lambda: "ready for a line" in output.lines, what="main to ask for a line")
        os.write(master, b"hello\n")
        wait_for(lambda: "got hello" in output.lines, what="the line read from the terminal")
        os.write(master, b"\x03")  # Ctrl-C
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    assert read_json_lines(log)[-1]["event"] == "exit"
