"""The control commands (stop, status, reload, upgrade) given generated flags and pidfiles.

Their flags come from the real parser (:func:`.test_docs_flags.flags_of`), their
values from each flag's edges and from paths nothing can be at. Whatever the
line, the command ends with a documented code and its own words, never a
traceback. No daemon runs: a pidfile here is never locked, so nothing is signalled.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from aiodaemon._cli._main import main as cli_main

from .support import aiodaemon_cli, install_program, pids_with
from .test_docs_flags import flags_of

CONTROL_COMMANDS = ("stop", "status", "reload", "upgrade")

#: LSB: init-script actions 0, 1, 2, 4, 7; status 0, 1, 3, 4.
ALLOWED = {"stop": {0, 1, 2, 4, 7}, "reload": {0, 1, 2, 4, 7}, "upgrade": {0, 1, 2, 4, 7}}
ALLOWED["status"] = {0, 1, 2, 3, 4}


def unreachable_paths(directory: Path) -> list[str]:
    """Paths ``lstat`` fails on other than with ENOENT: nothing can be at any of them."""
    (directory / "file").write_text("")
    (directory / "loop").symlink_to("loop")
    return [
        str(directory / "file" / "x.ctl"),  # ENOTDIR
        str(directory / "loop" / "x.ctl"),  # ELOOP
        str(directory / ("n" * 300)),  # ENAMETOOLONG: one name past NAME_MAX
        "/" + "p/" * 2100,  # ENAMETOOLONG: past PATH_MAX
    ]


_PIDFILE_DATA = st.one_of(
    st.none(),
    st.binary(max_size=24),
    st.sampled_from([b"1\n2\n", b"99999999999999999999\n", b"-5\n", b" 7 \n", b"\xd9\xa3\n"]),
)

_VALUES = st.one_of(
    st.sampled_from(
        [
            *("", "0", "-0", "-1", "nan", "inf", "1e309", "1e-400", "0x10", "²", "\u0661"),
            *("4294967294", "4294967295", "99999999999999999999", "nobody", "root", "a\nb"),
            *("/", "/dev/null", "/proc/self/fd/0", "unix:", "-", "--"),
        ]
    ),
    st.integers(0, 3).map(lambda i: f"@unreachable{i}"),
    st.text(max_size=10).filter(lambda t: "\0" not in t and t.isprintable()),
)


@st.composite
def _argv(draw: st.DrawFn) -> list[str]:
    command = draw(st.sampled_from(CONTROL_COMMANDS))
    flags = sorted(flag for flag in flags_of(command) if flag != "--pidfile")
    argv = [command, "--pidfile", "@pidfile"]
    for _ in range(draw(st.integers(0, 3))):
        flag = draw(st.sampled_from(flags))
        action: argparse.Action = flags_of(command)[flag]
        argv += [flag] if action.nargs == 0 else [flag, draw(_VALUES)]
    return argv


def _run(argv: list[str]) -> tuple[object, str, str]:
    """``aiodaemon ARGV`` in this process: its exit status, stdout and stderr."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            code: object = cli_main(argv)
        except SystemExit as exc:
            code = exc.code
    return code, stdout.getvalue(), stderr.getvalue()


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(argv=_argv(), data=_PIDFILE_DATA)
@example(argv=["status", "--pidfile", "@pidfile", "--control", "@unreachable2"], data=None)
@example(argv=["stop", "--pidfile", "@pidfile", "--user", "²"], data=b"5\n")
def test_any_command_line_ends_with_a_documented_code(argv: list[str], data: bytes | None) -> None:
    """stop/status/reload/upgrade with generated flags: an LSB code, its own words, no traceback."""
    with tempfile.TemporaryDirectory(prefix="aiodaemon-fuzz-") as tmp:
        directory = Path(tmp)
        pidfile = directory / "app.pid"
        if data is not None:
            pidfile.write_bytes(data)
        unreachable = unreachable_paths(directory)
        resolved = [str(pidfile) if arg == "@pidfile" else arg for arg in argv]
        for i, path in enumerate(unreachable):
            resolved = [path if arg == f"@unreachable{i}" else arg for arg in resolved]
        code, stdout, stderr = _run(resolved)
    assert code in ALLOWED[argv[0]], (code, stderr)
    assert "Traceback" not in stderr + stdout
    lines = stderr.splitlines()
    assert all(line.startswith("aiodaemon: ") for line in lines), stderr
    if code == 2:
        assert len(lines) == 1, stderr
        assert "invalid literal" not in stderr, stderr


@pytest.mark.parametrize("command", CONTROL_COMMANDS)
def test_a_control_path_nothing_can_be_at_is_no_daemon(tmp_path: Path, command: str) -> None:
    """No pidfile and a --control path lstat cannot reach: "not running", as for a missing one."""
    pidfile = tmp_path / "app.pid"
    for control in unreachable_paths(tmp_path):
        result = aiodaemon_cli(command, "--pidfile", pidfile, "--control", control)
        assert "Traceback" not in result.stderr, result.stderr
        expected = {"stop": 0, "status": 3}.get(command, 7)
        assert result.returncode == expected, (control[:80], result.stderr)
        said = result.stdout if command == "status" else result.stderr
        assert said.splitlines() == [
            ("" if command == "status" else "aiodaemon: ") + f"not running (no pidfile {pidfile})"
        ]


@pytest.mark.parametrize("user", ["²", "\u0661\u0662", "4294967295", "99999999999999999999"])
def test_a_user_that_is_no_uid_is_a_usage_error(tmp_path: Path, user: str) -> None:
    """--user in non-ASCII digits or past the uid range: exit 2 naming --user, not int()'s."""
    result = aiodaemon_cli("status", "--pidfile", tmp_path / "app.pid", "--user", user)
    assert result.returncode == 2, result.stderr
    assert result.stderr in (
        f"aiodaemon: --user: unknown user {user!r}\n",
        f"aiodaemon: --user: id out of range: {user!r}\n",
    )
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("command", ["status", "reload", "upgrade"])
@pytest.mark.parametrize("timeout", ["0", "-0", "0.0", "0e5"])
def test_no_time_to_answer_is_a_usage_error(tmp_path: Path, command: str, timeout: str) -> None:
    """status/reload/upgrade --timeout 0: exit 2 naming --timeout (the daemon refused it: 1)."""
    result = aiodaemon_cli(command, "--pidfile", tmp_path / "app.pid", "--timeout", timeout)
    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        f"aiodaemon: --timeout: must be a positive number of seconds: {timeout!r}"
        f" (see 'aiodaemon {command} --help')\n"
    )


#: a regular file no read succeeds on (EIO at offset 0), as on a failing disk or NFS.
UNREADABLE = "/proc/self/mem"


@pytest.mark.parametrize("command", CONTROL_COMMANDS)
def test_a_pidfile_that_cannot_be_read_is_unknown(command: str) -> None:
    """status/stop/reload/upgrade, a pidfile whose read fails (EIO): one line, no traceback."""
    result = aiodaemon_cli(command, "--pidfile", UNREADABLE)
    reason = f"cannot read {UNREADABLE}: Input/output error"
    if command == "status":
        assert result.returncode == 4, result.stderr
        assert result.stdout == f"unknown ({reason})\n"
    else:
        assert result.returncode == 1, result.stderr
        assert result.stderr == (
            f"aiodaemon: cannot tell whether the daemon runs, nothing signalled: {reason}\n"
        )


def test_a_start_on_a_pidfile_that_cannot_be_read_fails_in_one_line(tmp_path: Path) -> None:
    """start --pidfile naming a file whose read fails (EIO): exit 1, one line naming --pidfile."""
    install_program("forever", tmp_path)
    result = aiodaemon_cli("start", "app:main", "--pidfile", UNREADABLE, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert result.stderr == f"aiodaemon: --pidfile: cannot use {UNREADABLE}: Input/output error\n"
    assert pids_with(str(tmp_path)) == []
