"""Paths whose bytes are not UTF-8 (legal on Linux) still make well-typed JSON log lines."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .support import program, python, read_json_lines, wait_gone


def test_a_pidfile_path_that_is_not_utf8_keeps_the_starting_record_typed(tmp_path: Path) -> None:
    """The undecodable byte shows as \\xe9; the pid stays a number and detached a boolean."""
    odd = Path(os.fsdecode(bytes(tmp_path) + b"/caf\xe9"))
    odd.mkdir()
    pidfile, log = odd / "d.pid", tmp_path / "d.jsonl"
    options = {"detach": True, "pidfile": str(pidfile), "log_file": str(log)}
    started = python([program("idle"), json.dumps(options)])
    assert started.returncode == 0, started.stderr
    pid = int(pidfile.read_text())
    starting = next(r for r in read_json_lines(log) if r["event"] == "starting")
    os.kill(pid, 15)
    wait_gone(pid)
    assert starting["pid"] == pid
    assert starting["detached"] is True
    assert isinstance(starting["options"], dict)
    assert starting["options"]["pidfile"] == str(tmp_path) + "/caf\\xe9/d.pid"
