"""A launcher whose stdout fails (a reader gone, a full disk) with a banner still buffered."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from .support import (
    PYTHON,
    clean_env,
    kill_quietly,
    program,
    read_json_lines,
    read_pid,
    wait_for,
    wait_gone,
)


@pytest.mark.parametrize("target", ["reader-gone", "full-disk"])
def test_a_start_goes_on_when_stdout_cannot_take_what_the_program_printed(
    tmp_path: Path, target: str
) -> None:
    """The daemon starts and the launcher exits 0, not with an EPIPE or ENOSPC traceback."""
    pidfile, log = tmp_path / "d.pid", tmp_path / "log"
    options = {"detach": True, "pidfile": str(pidfile), "log_file": str(log), "control": False}
    if target == "full-disk":
        stdout = os.open("/dev/full", os.O_WRONLY)
    else:
        reader, stdout = os.pipe()
        os.close(reader)
    try:
        started = subprocess.run(
            [PYTHON, str(program("unflushed_banner")), json.dumps(options)],
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(),
            timeout=30,
            check=False,
        )
    finally:
        os.close(stdout)
    assert (started.returncode, started.stderr) == (0, "")
    pid = read_pid(pidfile)
    try:
        wait_for(
            lambda: "ready" in [r["event"] for r in read_json_lines(log)],
            what="the ready record",
        )
        os.kill(pid, signal.SIGTERM)
        wait_gone(pid)
    finally:
        kill_quietly(pid)
    assert read_json_lines(log)[-1]["status"] == 0
    assert not pidfile.exists()
