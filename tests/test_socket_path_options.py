"""Unix socket paths in ``listen=``, ``health=`` and ``syslog=`` are checked as other paths are.

A lone surrogate (no file name holds one) ended ``run()`` in a
``UnicodeEncodeError`` traceback, and a control character passed where every
other path option refuses it: now one line naming the option, exit 2.
"""

from __future__ import annotations

import json

import pytest

from .support import aiodaemon_cli, program, python

#: No file name holds a lone surrogate (os.fsencode refuses it).
_ODD = "/tmp/\ud800"
_NOT_A_NAME = "not encodable as a file name"
_CONTROL = "must not contain control characters"


@pytest.mark.parametrize(
    ("options", "said"),
    [
        ({"listen": {"x": f"unix:{_ODD}"}}, rf"listen[x]: {_NOT_A_NAME}: 'unix:/tmp/\ud800'"),
        ({"health": f"unix:{_ODD}"}, rf"health: {_NOT_A_NAME}: 'unix:/tmp/\ud800'"),
        ({"syslog": _ODD}, rf"syslog: {_NOT_A_NAME}: '/tmp/\ud800'"),
        ({"listen": {"x": "unix:/tmp/a\nb"}}, rf"listen[x]: {_CONTROL}: 'unix:/tmp/a\nb'"),
    ],
    ids=["listen", "health", "syslog", "newline"],
)
def test_run_refuses_a_socket_path_no_file_can_have(options: dict[str, object], said: str) -> None:
    """``run()``: one line, exit 2, nothing started."""
    # JSON carries the lone surrogate as its escape, and json.loads gives it back.
    result = python([program("idle"), json.dumps({"detach": False, **options})])
    assert result.returncode == 2
    assert result.stderr == f"aiodaemon: {said}\n"


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--listen", "x=unix:/tmp/a\nb"], rf"--listen x: {_CONTROL}: 'unix:/tmp/a\nb'"),
        (["--health", "unix:/tmp/a\rb"], rf"--health: {_CONTROL}: 'unix:/tmp/a\rb'"),
        (["--syslog", "/tmp/a\x1bb"], rf"--syslog: {_CONTROL}: '/tmp/a\x1bb'"),
    ],
    ids=["listen", "health", "syslog"],
)
def test_the_cli_refuses_a_socket_path_with_a_control_character(args: list[str], said: str) -> None:
    """As ``--pidfile`` or ``--log-file`` with one: the same line, exit 2."""
    result = aiodaemon_cli("start", "tests.programs.forever:main", *args)
    assert result.returncode == 2
    assert result.stderr == f"aiodaemon: {said}\n"
    assert result.stdout == ""
