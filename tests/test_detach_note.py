"""``detach=None`` under INVOCATION_ID alone: the foreground, as the contract says, and why.

systemd sets INVOCATION_ID for every unit, and a desktop terminal that runs as
one passes it to its shells (systemd issue 14089): a program run there by hand
stays in the foreground. On a terminal, the launch says why in one line.
"""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import time
import uuid

from .support import PYTHON, clean_env, kill_quietly, program, wait_gone

NOTE = (
    "aiodaemon: note: staying in the foreground, as INVOCATION_ID is set (systemd sets it"
    " for a service, and some terminals pass it on); pass detach=True to detach"
)


def _read_until(fd: int, wanted: bytes, timeout: float = 30.0) -> bytes:
    """What the terminal shows, read until ``wanted`` appears or the deadline passes."""
    seen = b""
    deadline = time.monotonic() + timeout
    while wanted not in seen and (left := deadline - time.monotonic()) > 0:
        if select.select([fd], [], [], left)[0]:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the other side is closed
                break
            if not chunk:
                break
            seen += chunk
    return seen


def test_on_a_terminal_the_foreground_is_explained() -> None:
    """INVOCATION_ID, stdio a terminal, detach=None: the note, then a foreground daemon."""
    primary, secondary = pty.openpty()
    try:
        proc = subprocess.Popen(
            [PYTHON, str(program("idle")), json.dumps({})],
            stdin=secondary,
            stdout=secondary,
            stderr=secondary,
            env=clean_env({"INVOCATION_ID": uuid.uuid4().hex, "NO_COLOR": "1"}),
        )
        os.close(secondary)
        try:
            # On a terminal the log is the console format: ``... [info] ready ...``.
            shown = _read_until(primary, b" ready")
            assert b" ready" in shown, shown
            lines = shown.decode(errors="replace").splitlines()
            assert lines[0].strip() == NOTE
            assert proc.poll() is None  # not detached: the launcher is the daemon
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
    finally:
        kill_quietly(proc.pid)
        os.close(primary)
    wait_gone(proc.pid)


def test_without_a_terminal_nothing_is_said() -> None:
    """INVOCATION_ID with stdio not a terminal (a service): the foreground, no note."""
    proc = subprocess.Popen(
        [PYTHON, str(program("idle")), json.dumps({})],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env({"INVOCATION_ID": uuid.uuid4().hex}),
    )
    shown = ""
    try:
        assert proc.stderr is not None
        while '"event":"ready"' not in shown and (line := proc.stderr.readline()):
            shown += line
        assert shown.startswith('{"timestamp"'), shown
        assert proc.poll() is None  # not detached
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "note:" not in shown + err
