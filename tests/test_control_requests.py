"""Malformed control requests from an allowed peer: an error answer, never a silent close."""

from __future__ import annotations

import json

import pytest

from .support import is_alive, read_json_lines
from .test_control import App, _exchange, app, start, status, stop

__all__ = ["app"]  # the fixture, re-exported for pytest


@pytest.mark.parametrize("loop", ["--uvloop", "--no-uvloop"])
def test_deeply_nested_json_is_an_ordinary_bad_request(app: App, loop: str) -> None:
    """~4000 nested "[" or "{": the same answer as any invalid JSON, and the daemon serves on."""
    log = app.dir / "log.jsonl"
    pid = start(app, loop, "--log-file", str(log))
    invalid = _exchange(app.control, b"\xff\x00 hello\n")
    assert json.loads(invalid) == {"v": 1, "ok": False, "error": "bad request: not a JSON object"}
    for payload in (b"[" * 4000 + b"\n", b'{"a":' * 800 + b"\n", b"[" * 4095):
        assert _exchange(app.control, payload) == invalid
    assert is_alive(pid)
    code, answer = status(app)
    assert (code, answer["state"], answer["pid"]) == (0, "running", pid)
    stop(app)
    errors = [r for r in read_json_lines(log) if r["level"] in ("error", "critical")]
    assert errors == []


def test_an_upgrade_timeout_of_400_digits_is_the_longest_wait(app: App) -> None:
    """``"timeout": 10**400`` is valid JSON: the upgrade runs (it was an internal error)."""
    log = app.dir / "log.jsonl"
    old = start(app, "--uvloop", "--log-file", str(log))
    request = b'{"v": 1, "cmd": "upgrade", "timeout": ' + b"9" * 400 + b"}\n"
    answer = json.loads(_exchange(app.control, request))
    assert answer["ok"] is True, answer
    assert answer["pid"] != old
    code, state = status(app)
    assert (code, state["pid"]) == (0, answer["pid"])
    stop(app)
    assert not any(r["event"] == "control command failed" for r in read_json_lines(log))
