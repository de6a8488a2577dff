"""Usage errors, as the CHANGELOG describes them: command-line mistakes point at --help."""

from __future__ import annotations

import pytest

from .support import aiodaemon_cli


@pytest.mark.parametrize(
    ("args", "command"),
    [
        (["start", "--bogus", "x"], "start"),
        (["start"], "start"),
        (["stop"], "stop"),
        (["bogus"], ""),
    ],
    ids=["unknown flag", "missing TARGET", "missing --pidfile", "unknown command"],
)
def test_a_command_line_mistake_ends_with_where_to_look(args: list[str], command: str) -> None:
    """An unknown flag or command, a missing argument: one line, exit 2, ending with the hint."""
    result = aiodaemon_cli(*args)
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith("aiodaemon: ")
    assert line.endswith(f"(see '{' '.join(['aiodaemon', command]).strip()} --help')")


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--umask", "8"], "aiodaemon: --umask: not an octal number: '8'"),
        (["--pidfile", ""], "aiodaemon: --pidfile: must not be empty"),
    ],
)
def test_a_bad_value_is_one_line_naming_its_flag(args: list[str], said: str) -> None:
    """A bad option value: exactly the line run() would say, with the flag for the keyword."""
    result = aiodaemon_cli("start", "tests.programs.forever:main", *args)
    assert result.returncode == 2
    assert result.stderr == said + "\n"
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--drain-delay", "x"], "aiodaemon: --drain-delay: not a number of seconds: 'x'"),
        (["--shutdown-timeout", "ten"], "aiodaemon: --shutdown-timeout: not a number of seconds"),
        (["--log-format", "xml"], "aiodaemon: --log-format: invalid choice: 'xml'"),
    ],
)
def test_a_value_argparse_refuses_reads_like_the_others(args: list[str], said: str) -> None:
    """A value refused by the parser itself: ``aiodaemon: --flag: ...``, no "argument" word."""
    result = aiodaemon_cli("run", "tests.programs.forever:main", *args)
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith(said), line
    assert line.endswith("(see 'aiodaemon run --help')")


@pytest.mark.parametrize("user", ["no-such-user-here", "4294967295", "1" * 5000])
def test_a_bad_user_reads_the_same_for_every_command(user: str) -> None:
    """--user naming no user: status, stop, reload, upgrade say exactly what start says, exit 2."""
    started = aiodaemon_cli("start", "tests.programs.forever:main", "--user", user)
    assert started.returncode == 2
    assert started.stderr.startswith("aiodaemon: --user: ")
    for command in ("status", "stop", "reload", "upgrade"):
        asked = aiodaemon_cli(command, "--pidfile", "/nonexistent/app.pid", "--user", user)
        assert (asked.returncode, asked.stderr) == (2, started.stderr), command


@pytest.mark.parametrize("flag", ["--shutdown-timeout", "--start-timeout"])
def test_a_timeout_of_zero_reads_like_a_negative_one(flag: str) -> None:
    """--shutdown-timeout 0 and -1 are refused in the same words (-1 said "non-negative")."""
    said = []
    for value in ("0", "-1"):
        result = aiodaemon_cli("run", "tests.programs.forever:main", flag, value)
        assert result.returncode == 2
        said.append(result.stderr)
    assert said == [
        f"aiodaemon: {flag}: must be a positive number of seconds: {value!r} "
        "(see 'aiodaemon run --help')\n"
        for value in ("0", "-1")
    ]
