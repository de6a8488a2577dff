"""Usage errors, as the CHANGELOG describes them: command-line mistakes point at --help."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .support import aiodaemon_cli, install_program, python


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


def test_an_empty_control_path_reads_the_same_for_every_command(tmp_path: Path) -> None:
    """--control "" (an unset variable): every command refuses it as start does, exit 2.

    status, stop, reload and upgrade took it for a socket nobody serves: reload
    sent a bare SIGHUP ("no control socket served at , ..."), upgrade replaced
    the daemon by SIGUSR2, stop sent SIGTERM.
    """
    install_program("forever", tmp_path)
    pidfile = tmp_path / "app.pid"
    refused = aiodaemon_cli(
        "start", "app:main", "--pidfile", pidfile, "--control", "", cwd=tmp_path
    )
    assert (refused.returncode, refused.stderr) == (2, "aiodaemon: --control: must not be empty\n")
    started = aiodaemon_cli("start", "app:main", "--pidfile", pidfile, cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    try:
        for command in ("status", "reload", "upgrade", "stop"):
            asked = aiodaemon_cli(command, "--pidfile", pidfile, "--control", "")
            assert (asked.returncode, asked.stderr) == (2, refused.stderr), command
            assert asked.stdout == "", command
        assert pidfile.read_text() == started.stdout, "the daemon was replaced or stopped"
        status = aiodaemon_cli("status", "--pidfile", pidfile, "--json")
        assert json.loads(status.stdout)["last_reload"] is None, "the daemon was reloaded"
    finally:
        stopped = aiodaemon_cli("stop", "--pidfile", pidfile)
    assert stopped.returncode == 0, stopped.stderr


@pytest.mark.parametrize("flag", ["--pidfile", "--log-file", "--stdout", "--control"])
@pytest.mark.parametrize("tail", ["/", "/."])
def test_a_file_path_ending_as_a_directory_is_refused(tmp_path: Path, flag: str, tail: str) -> None:
    """start --pidfile /run/app.pid/: exit 2 naming the flag, no file made at /run/app.pid.

    The slash was dropped: the daemon ran with its pidfile at /run/app.pid,
    where `status --pidfile /run/app.pid/` (the same argument) could not look:
    "unknown (cannot open ...: Not a directory)", exit 4; stop exited 1.
    """
    install_program("forever", tmp_path)
    path = f"{tmp_path / 'app.file'}{tail}"
    args = ["--pidfile", str(tmp_path / "app.pid")] if flag != "--pidfile" else []
    result = aiodaemon_cli("start", "app:main", *args, flag, path, cwd=tmp_path)
    assert (result.returncode, result.stderr) == (
        2,
        f"aiodaemon: {flag}: not a file path: {path}\n",
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.py"]


@pytest.mark.parametrize("level", ["warn", "WARN", "warning"])
def test_log_level_warn_is_taken_as_run_takes_it(tmp_path: Path, level: str) -> None:
    """``--log-level warn`` is ``warning``, as ``run(log_level="warn")`` is (it was refused)."""
    (tmp_path / "app.py").write_text("async def main(ctx):\n    pass\n", encoding="utf-8")
    log = tmp_path / "log.jsonl"
    result = aiodaemon_cli("run", "app:main", "--log-level", level, "--log-file", log, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    # At warning, none of a clean run's info records (starting, ready, exit).
    levels = [json.loads(line)["level"] for line in log.read_text().splitlines()]
    assert "info" not in levels


def test_log_level_help_and_errors_list_warn_as_taken(tmp_path: Path) -> None:
    """``--help``, a bad ``--log-level`` and run()'s error name ``warn``, which is taken.

    They listed debug, info, warning, error, critical (argparse's choices),
    where options.md documents ``warn`` too.
    """
    levels = "debug, info, warning (or warn), error, critical"
    shown = " ".join(aiodaemon_cli("run", "--help").stdout.split())
    assert f"--log-level LEVEL {levels}; any case (default: info)" in shown
    bad = aiodaemon_cli("run", "app:main", "--log-level", "loud", cwd=tmp_path)
    assert (bad.returncode, bad.stderr) == (
        2,
        f"aiodaemon: --log-level: must be one of {levels} (any case), not 'loud'"
        " (see 'aiodaemon run --help')\n",
    )
    (tmp_path / "loud.py").write_text(
        "import aiodaemon\n\nasync def main():\n    pass\n\n"
        "aiodaemon.run(main, detach=False, log_level='loud')\n",
        encoding="utf-8",
    )
    refused = python([tmp_path / "loud.py"], cwd=tmp_path)
    assert (refused.returncode, refused.stderr) == (
        2,
        f"aiodaemon: log_level: must be one of {levels}, not 'loud'\n",
    )


@pytest.mark.parametrize(
    "command",
    [
        ["run", "tests.programs.forever:main", "--shutdown-timeout"],
        ["start", "tests.programs.forever:main", "--start-timeout"],
        ["restart", "tests.programs.forever:main", "--drain-delay"],
        ["run", "tests.programs.forever:main", "--umask"],
        ["restart", "tests.programs.forever:main", "--timeout"],
        ["stop", "--pidfile", "/nonexistent/app.pid", "--timeout"],
        ["reload", "--pidfile", "/nonexistent/app.pid", "--timeout"],
        ["status", "--pidfile", "/nonexistent/app.pid", "--timeout"],
        ["upgrade", "--pidfile", "/nonexistent/app.pid", "--timeout"],
    ],
    ids=lambda command: f"{command[0]} {command[-1]}",
)
def test_a_negative_number_is_refused_as_its_flag_refuses_it(command: list[str]) -> None:
    """``--timeout -inf`` says what ``--timeout=-inf`` says ("expected one argument" before).

    argparse took only ``-1`` and ``-0.5`` for values: ``-inf``, ``-nan`` or
    ``-1e3`` looked like an unknown option, so the flag seemed to lack its value.
    """
    for value in ("-1", "-0.5", "-inf", "-nan", "-1e3", "-Infinity", "-0o22"):
        spaced = aiodaemon_cli(*command, value)
        joined = aiodaemon_cli(*command[:-1], f"{command[-1]}={value}")
        assert (spaced.returncode, spaced.stderr) == (2, joined.stderr), value
        (line,) = spaced.stderr.splitlines()
        assert line.startswith(f"aiodaemon: {command[-1]}: "), line
        assert value in line or "-0o1" in line, line
