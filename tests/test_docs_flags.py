"""The documented command-line flags and defaults are the parser's: docs/options.md, --help."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

import pytest

from aiodaemon._cli._flags import daemon_options
from aiodaemon._cli._help import COMMANDS
from aiodaemon._cli._parser import build_parser
from aiodaemon._prefork._config import parse_options

from .support import REPO, aiodaemon_cli, read_json_lines
from .test_docs import DOCS, table_rows

DAEMON_COMMANDS = ("run", "start", "restart")


def parser_of(command: str) -> argparse.ArgumentParser:
    """The parser ``aiodaemon COMMAND`` uses (handlers never called)."""

    def unused(args: argparse.Namespace) -> int:
        raise AssertionError("only parsed")

    root = build_parser(dict.fromkeys(COMMANDS, unused), [command])
    (commands,) = (a for a in root._actions if isinstance(a, argparse._SubParsersAction))
    sub: argparse.ArgumentParser = commands.choices[command]
    return sub


def flags_of(command: str) -> dict[str, argparse.Action]:
    """``--flag`` -> its argparse action, for every option of ``aiodaemon COMMAND``."""
    return {
        flag: action
        for action in parser_of(command)._actions
        for flag in action.option_strings
        if flag not in ("-h", "--help")
    }


def documented_flags() -> dict[str, list[str]]:
    """Option name -> the flags docs/options.md's table gives it (none for some)."""
    rows = table_rows(DOCS / "options.md", "## Options")
    return {row[0].strip("`"): re.findall(r"--[a-z][a-z-]*", row[1]) for row in rows}


def sample_argument(option: str, tmp: Path) -> str:
    """A valid command-line value for ``option`` (a new option without one fails here)."""
    return {
        "pidfile": str(tmp / "a.pid"),
        "workdir": str(tmp),
        "umask": "027",
        "stdout": str(tmp / "out"),
        "stderr": str(tmp / "err"),
        "log_file": str(tmp / "log.jsonl"),
        "syslog": "/dev/log",
        "log_level": "debug",
        "log_format": "console",
        "listen": "http=127.0.0.1:0",
        "user": str(os.getuid()),
        "group": str(os.getgid()),
        "chroot": str(tmp),
        "shutdown_timeout": "2.5",
        "ready": "manual",
        "control": str(tmp / "c.ctl"),
        "start_timeout": "7",
        "drain_delay": "0.5",
        "health": "127.0.0.1:0",
    }[option]


def test_the_options_table_names_every_flag_of_run_start_and_restart() -> None:
    """Every flag in docs/options.md is one the daemon commands take, and none is missing."""
    documented = {flag for flags in documented_flags().values() for flag in flags}
    for command in DAEMON_COMMANDS:
        flags = set(flags_of(command)) - {"--timeout"}  # restart's, for its stop
        assert documented == flags, command


def option_set_by(flag: str, tmp: Path) -> str:
    """The one run() option ``aiodaemon run app:main FLAG [VALUE]`` sets."""
    action = flags_of("run")[flag]
    argv = ["app:main", flag]
    if action.nargs != 0:
        argv.append(sample_argument(action.dest, tmp))
    options = daemon_options(parser_of("run").parse_args(argv), detach=False)
    (option,) = (
        set(options) - {"detach"}
        if flag == "--listen"
        else set(options)
        - {
            "detach",
            "listen",
        }
    )
    return option


@pytest.mark.parametrize(
    ("option", "flag"),
    [
        # --chroot is refused unless root, before it sets anything.
        pytest.param(option, flag, marks=pytest.mark.root) if option == "chroot" else (option, flag)
        for option, flags in documented_flags().items()
        for flag in flags
    ],
)
def test_each_documented_flag_sets_its_option(option: str, flag: str, tmp_path: Path) -> None:
    """The flag docs/options.md gives an option sets that option, to a value run() accepts."""
    assert option_set_by(flag, tmp_path) == option


@pytest.mark.root  # --chroot is refused unless root, before it sets anything
def test_production_flag_table_names_the_option_each_flag_sets(tmp_path: Path) -> None:
    """docs/production.md's flag table pairs each flag with the run() option it sets."""
    rows = table_rows(DOCS / "production.md", "### Options")
    listed = set()
    for row in rows:
        options = set(re.findall(r"`([a-z_]+)", row[1]))
        for flag in re.findall(r"--[a-z][a-z-]*", row[0]):
            listed.add(flag)
            assert option_set_by(flag, tmp_path) in options, row
    assert listed == set(flags_of("run")), "production.md's table misses or invents a flag"


def help_defaults(command: str) -> dict[str, str]:
    """``--flag`` -> the ``(default: X)`` its help line in ``aiodaemon COMMAND --help`` says."""
    found = {}
    for flag, action in flags_of(command).items():
        match = re.search(r"\(default: ([^),]+)[),]", action.help or "")
        if match and flag.startswith("--") and not flag.startswith("--no-"):
            found[flag] = match.group(1)
    return found


def test_help_defaults_of_the_daemon_options_are_the_real_ones() -> None:
    """Each ``(default: X)`` of a run/start/restart flag is the default run() has."""
    defaults = parse_options({})
    shown = help_defaults("run")
    as_values = {
        "--umask": ("umask", int(shown["--umask"], 8)),
        "--shutdown-timeout": ("shutdown_timeout", float(shown["--shutdown-timeout"])),
        "--start-timeout": ("start_timeout", float(shown["--start-timeout"])),
        "--drain-delay": ("drain_delay", float(shown["--drain-delay"])),
    }
    for flag, (option, value) in as_values.items():
        assert getattr(defaults, option) == value, flag
    assert parse_options({"log_level": shown["--log-level"]}) == defaults
    # Those without a number are worded: checked by hand, listed so a new one is seen.
    worded = {
        "--log-level", "--log-format", "--uvloop", "--allow-new-privileges", "--control",
        "--workdir",
    }  # fmt: skip
    assert set(shown) - set(as_values) == worded


@pytest.mark.parametrize("command", ["stop", "reload", "status", "upgrade", "restart"])
def test_control_command_timeouts_say_their_default(command: str) -> None:
    """``--timeout``'s ``(default: S)`` is what the command waits when it is not given."""
    from aiodaemon._cli._stop import DEFAULT_TIMEOUT

    action = flags_of(command)["--timeout"]
    match = re.search(r"\(default: (\d+)", action.help or "")
    assert match, action.help
    default = DEFAULT_TIMEOUT if action.default is None else action.default
    assert float(match.group(1)) == default
    if action.default is None:  # stop's: longer when the daemon's stop budget is
        from aiodaemon._cli._stop import _BUDGET_MARGIN
        from aiodaemon._run._process_end import EXIT_GRACE

        # The daemon answers drain + shutdown + EXIT_GRACE; stop adds its margin.
        (extra,) = re.findall(r"shutdown timeout \+ (\d+) when longer", action.help or "")
        assert float(extra) == EXIT_GRACE + _BUDGET_MARGIN


def test_log_level_takes_any_case_on_the_command_line_too(tmp_path: Path) -> None:
    """``--log-level DEBUG`` runs the daemon, as ``log_level="DEBUG"`` does (options.md)."""
    log = tmp_path / "log.jsonl"
    result = aiodaemon_cli(
        "run", "tests.programs.noop:main", "--log-level", "DEBUG", "--log-file", log, cwd=REPO
    )
    assert result.returncode == 0, result.stderr
    (starting,) = [r for r in read_json_lines(log) if r["event"] == "starting"]
    assert starting["options"] == {"detach": False, "log_file": str(log), "log_level": "debug"}
