"""Unix socket paths in ``listen=``, ``health=`` and ``syslog=`` are checked as other paths are.

A lone surrogate (no file name holds one) ended ``run()`` in a
``UnicodeEncodeError`` traceback, and a control character passed where every
other path option refuses it: now one line naming the option, exit 2.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiodaemon._prefork._addresses import UnixAddress
from aiodaemon._prefork._config import parse_options
from aiodaemon.exceptions import ConfigError

from .support import aiodaemon_cli, free_port, install_program, program, python

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


# --- a socket path another of the daemon's files or sockets takes -------------------------

_OWN = "each of the daemon's files and sockets needs a path of its own"


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (
            ["--pidfile", "@/d.pid", "--control", "@/d.pid"],
            "--control: @/d.pid is also the pidfile",
        ),
        (
            ["--log-file", "@/log", "--control", "@/log"],
            "--control: @/log is also the log file",
        ),
        (
            ["--pidfile", "@/d.pid", "--listen", "a=unix:@/d.pid.ctl"],
            "--listen a: @/d.pid.ctl is also the control socket",
        ),
        (
            ["--listen", "a=unix:@/s", "--listen", "b=unix:@/s"],
            "--listen b: @/s is also listen socket 'a'",
        ),
        (
            ["--listen", "a=unix:@/s", "--health", "unix:@/s"],
            "--health: @/s is also listen socket 'a'",
        ),
        (
            ["--stderr", "@/err", "--health", "unix:@/err"],
            "--health: @/err is also the stderr file",
        ),
        (
            ["--pidfile", "@/d.pid", "--log-file", "@/d.pid.ctl"],
            "--log-file: @/d.pid.ctl is also the control socket (the pidfile's path + .ctl)",
        ),
    ],
    ids=[
        "control-pidfile",
        "control-log",
        "listen-control",
        "listen-listen",
        "health",
        "stderr",
        "log-default-control",
    ],
)
def test_a_socket_at_another_files_path_is_a_usage_error(
    tmp_path: Path, args: list[str], said: str
) -> None:
    """Two of the daemon's files or sockets at one path: exit 2, one line, nothing left.

    Found by the bind, this was exit 1 with "Address already in use" or "file
    exists and is a regular file", for a file the same start had just made.
    """
    install_program("noop", tmp_path)
    args = [arg.replace("@", str(tmp_path)) for arg in args]
    result = aiodaemon_cli("start", "app:main", *args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr == f"aiodaemon: {said.replace('@', str(tmp_path))}; {_OWN}\n"
    assert {p.name for p in tmp_path.iterdir()} - {"__pycache__"} == {"app.py"}


_PATH_OPTIONS = ("pidfile", "log_file", "stdout", "stderr", "control", "health", "a", "b")


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.dictionaries(st.sampled_from(_PATH_OPTIONS), st.sampled_from("xyz"), min_size=2))
def test_a_socket_path_is_never_taken_twice(chosen: dict[str, str]) -> None:
    """Any options sharing a few names: refused, or every socket at a path of its own."""
    with tempfile.TemporaryDirectory(prefix="aiodaemon-fuzz-") as tmp:
        raw: dict[str, Any] = {"listen": {}}
        for option, name in chosen.items():
            path = f"{tmp}/{name}"
            if option in ("a", "b"):
                raw["listen"][option] = f"unix:{path}"
            elif option == "health":
                raw["health"] = f"unix:{path}"
            else:
                raw[option] = path
        try:
            options = parse_options(raw)
        except ConfigError as exc:
            refused = str(exc)
        else:
            refused = ""
        if refused:
            assert "\n" not in refused
            return
        addresses = [*options.listen.values(), options.health]
        sockets = [address.path for address in addresses if isinstance(address, UnixAddress)]
        if options.control is not None:
            sockets.append(options.control)
        files = {options.pidfile, options.log_file, options.stdout, options.stderr} - {None}
        assert len(set(sockets)) == len(sockets), options
        assert not set(sockets) & files, options


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (
            [
                "--listen",
                "a=127.0.0.1:{port}?reuseport",
                "--listen",
                "b=127.0.0.1:{port}?reuseport",
            ],
            "--listen b: 127.0.0.1:{port} is also listen socket 'a'",
        ),
        (
            ["--listen", "a=127.0.0.1:{port}", "--listen", "b=127.0.0.1:{port}"],
            "--listen b: 127.0.0.1:{port} is also listen socket 'a'",
        ),
        (
            ["--listen", "a=127.0.0.1:{port}", "--health", "127.0.0.1:{port}"],
            "--health: 127.0.0.1:{port} is also listen socket 'a'",
        ),
    ],
    ids=["reuseport", "plain", "health"],
)
def test_a_tcp_address_given_twice_is_a_usage_error(
    tmp_path: Path, args: list[str], said: str
) -> None:
    """Two of the daemon's sockets on one host and port: exit 2, one line, nothing started.

    With ``?reuseport`` both were bound and the kernel split the connections
    between them; without, the bind failed (exit 1, "Address already in use").
    """
    port = str(free_port())
    install_program("noop", tmp_path)
    pidfile = tmp_path / "d.pid"
    args = [arg.replace("{port}", port) for arg in args]
    result = aiodaemon_cli("start", "app:main", "--pidfile", str(pidfile), *args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    own = "each of the daemon's sockets needs an address of its own"
    assert result.stderr == f"aiodaemon: {said.replace('{port}', port)}; {own}\n"
    assert not pidfile.exists()


def test_port_zero_twice_is_two_sockets() -> None:
    """Port 0 asks the kernel for a free port each time: not a duplicate."""
    options = parse_options(
        {"listen": {"a": "127.0.0.1:0", "b": "127.0.0.1:0"}, "health": "127.0.0.1:0"}
    )
    assert list(options.listen) == ["a", "b"]
