"""``ctx.set_status()`` and ``aiodaemon.sd_notify()`` refuse a non-str at the call, systemd or not.

Before, only the notify socket's sender needed a str: ``ctx.set_status(42)``
logged ``status`` and ran on in development, and failed ``main`` under systemd
with an ``AttributeError`` from aiodaemon's own code; from a thread it failed in
the event loop, where the caller never heard of it. ``aiodaemon.sd_notify()``
given bytes returned False in development and failed under systemd with
``sequence item 0: expected str instance, bytes found``.
"""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .support import PYTHON, clean_env, program, read_json_lines

ERROR = "TypeError: text must be a str, not int"


@pytest.fixture(params=[False, True], ids=["plain", "systemd"])
def notify_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The daemon's environment: with or without a notify socket (a stand-in for systemd)."""
    if not request.param:
        yield clean_env()
        return
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind(str(path))
        yield clean_env({"NOTIFY_SOCKET": str(path)})


def _run(tmp_path: Path, case: str, env: dict[str, str]) -> tuple[int, str, list[str]]:
    log = tmp_path / "log.jsonl"
    record = tmp_path / "record.txt"
    record.touch()
    options = {"detach": False, "log_file": str(log)}
    proc = subprocess.run(
        [PYTHON, str(program("status_type")), json.dumps(options), str(record), case],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    events = [str(line["event"]) for line in read_json_lines(log)]
    assert record.read_text().splitlines() == ([ERROR] if case == "thread" else []), proc.stderr
    return proc.returncode, proc.stderr, events


def test_an_int_status_fails_main_at_the_call(tmp_path: Path, notify_env: dict[str, str]) -> None:
    """ctx.set_status(42) in main: main failed with the TypeError, exit 1, with systemd or not."""
    code, err, events = _run(tmp_path, "main", notify_env)
    assert code == 1, err
    assert err.splitlines()[-1] == f"aiodaemon: main failed: {ERROR}"
    assert "status" not in events


def test_an_int_status_from_a_thread_raises_in_the_thread(
    tmp_path: Path, notify_env: dict[str, str]
) -> None:
    """ctx.set_status(42) in a thread: the thread gets the TypeError; the event loop nothing."""
    code, err, events = _run(tmp_path, "thread", notify_env)
    assert code == 0, err
    assert "unhandled exception in event loop" not in events
    assert "status" not in events


def test_a_bytes_message_fails_main_at_the_sd_notify_call(
    tmp_path: Path, notify_env: dict[str, str]
) -> None:
    """sd_notify(b"STATUS=...") in main: main failed with a TypeError, with systemd or not."""
    code, err, _ = _run(tmp_path, "sd_notify", notify_env)
    assert code == 1, err
    assert err.splitlines()[-1] == (
        "aiodaemon: main failed: TypeError: sd_notify: each assignment must be a str"
        " ('NAME=value'), not bytes"
    )
