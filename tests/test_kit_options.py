"""The testing kit passes every option of run() to the daemon it launches, or refuses it."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import pytest

from aiodaemon import DaemonOptions
from aiodaemon._cli._flags import daemon_options
from aiodaemon._cli._help import COMMANDS
from aiodaemon._cli._parser import build_parser
from aiodaemon._kit._options import TRANSLATORS, command_flags
from aiodaemon._prefork._config import Options, parse_options
from aiodaemon.testing import LaunchError, ReloadFailed, launch

from .support import REPO, is_alive

PROGRAM = REPO / "tests" / "programs" / "kit_app.py"
OPTION_NAMES = sorted(DaemonOptions.__optional_keys__ | DaemonOptions.__required_keys__)


def samples(tmp: Path) -> dict[str, list[Any]]:
    """Valid values of every option of run(): a new option without samples fails the test."""
    return {
        "pidfile": [str(tmp / "a.pid"), tmp / "b.pid", None],
        "detach": [False, None],
        "workdir": [str(tmp), tmp],
        "umask": [0o077, 0, 0o022],
        "stdout": [str(tmp / "out"), None],
        "stderr": [tmp / "err"],
        "log_file": [tmp / "log.jsonl", None],
        "syslog": [True, False, None, "/dev/log", "udp://127.0.0.1:514"],
        "log_level": ["debug", "WARNING", "warn", logging.ERROR, 50],
        "log_format": ["json", "console", None],
        "listen": [
            {"http": "127.0.0.1:0", "v6": "[::1]:8080", "sock": f"unix:{tmp}/s.sock"},
            {},
            None,
        ],
        "user": ["nobody", 65534, None],
        "group": ["nogroup", 65534],
        "chroot": [str(tmp), None],
        "prevent_core": [True, False],
        "no_new_privileges": [True, False],
        "files_preserve": [(), []],
        "shutdown_timeout": [2.5, 30],
        "uvloop": [None, True, False],
        "ready": ["startup", "manual"],
        "control": [tmp / "c.ctl", str(tmp / "d.ctl"), None],
        "start_timeout": [7.0, 1],
        "drain_delay": [0.25, 0.0],
        "health": ["127.0.0.1:0", f"unix:{tmp}/h.sock", None],
    }


def comparable(options: Options) -> tuple[object, ...]:
    """``options`` with the resolved user and group as plain values."""
    identity = options.identity
    ids = None if identity is None else (identity.uid, identity.gid, identity.user_name)
    return (*options._replace(identity=None), ids)


def through_the_command_line(flags: list[str]) -> tuple[object, ...]:
    """The options ``aiodaemon run app:main FLAGS`` starts a daemon with."""
    argv = ["run", "app:main", *flags]

    def unused(args: argparse.Namespace) -> int:
        raise AssertionError("only parsed")

    args = build_parser(dict.fromkeys(COMMANDS, unused), argv).parse_args(argv)
    return comparable(parse_options(daemon_options(args, detach=False)))


def test_every_option_of_run_has_a_translation() -> None:
    """The kit knows every key of DaemonOptions, and nothing else."""
    assert sorted(TRANSLATORS) == OPTION_NAMES


@pytest.mark.parametrize(
    "name",
    [
        # Samples that change identity or the root directory are refused unless root.
        pytest.param(name, marks=pytest.mark.root) if name in ("user", "group", "chroot") else name
        for name in OPTION_NAMES
    ],
)
def test_each_option_reaches_the_daemon_unchanged(name: str, tmp_path: Path) -> None:
    """Each value of each option becomes flags the command turns back into the same option."""
    for value in samples(tmp_path)[name]:
        flags = command_flags({name: value})
        # The kit always runs the daemon in the foreground.
        expected = comparable(parse_options({name: value, "detach": False}))
        assert through_the_command_line(flags) == expected, (name, value, flags)


@pytest.mark.parametrize(
    ("name", "value"), [("detach", True), ("files_preserve", [0]), ("control", False)]
)
def test_options_the_kit_cannot_honour_are_refused(name: str, value: object) -> None:
    """A daemon in the foreground, started as a new program, told by its control socket."""
    with pytest.raises(ValueError, match=name):
        command_flags({name: value})


async def test_an_unknown_option_is_a_type_error() -> None:
    """A misspelt option fails at once, naming it, as a keyword argument would."""
    with pytest.raises(TypeError, match="pid_file"):
        async with launch(PROGRAM, pid_file="x"):  # type: ignore[call-arg]
            pytest.fail("the block must not run")


async def test_control_false_is_refused_before_anything_starts() -> None:
    """reload() could not tell a failed hook without the control socket: no silent pass."""
    with pytest.raises(ValueError, match=r"control=False"):
        async with launch(PROGRAM, listen={"echo": "127.0.0.1:0"}, control=False):
            pytest.fail("the block must not run")


async def test_a_control_socket_elsewhere_still_reports_reloads(tmp_path: Path) -> None:
    """With control= a path, reload() and address() ask that socket: a failed hook fails."""
    error = tmp_path / "error"
    error.write_text("bad config")
    control = tmp_path / "app.ctl"
    async with launch(
        PROGRAM,
        listen={"echo": "127.0.0.1:0"},
        control=control,
        env={"KIT_RELOAD_ERROR": str(error)},
    ) as daemon:
        assert control.exists()
        assert daemon.inet_address("echo")[1] != 0
        with pytest.raises(ReloadFailed, match=r"^ValueError: bad config$"):
            await daemon.reload()
        assert (await daemon.status())["last_reload"]["ok"] is False


async def test_console_logs_are_refused_in_the_kits_own_log_file() -> None:
    """records() reads JSON: log_format="console" is refused unless the user gives log_file."""
    with pytest.raises(ValueError, match="log_format='console'"):
        async with launch(PROGRAM, listen={"echo": "127.0.0.1:0"}, log_format="console"):
            pytest.fail("the block must not run")


async def test_records_of_a_console_log_file_fail_clearly(tmp_path: Path) -> None:
    """With the user's own console log file, records() says why it cannot parse it."""
    log = tmp_path / "console.log"
    async with launch(
        PROGRAM, listen={"echo": "127.0.0.1:0"}, log_format="console", log_file=log
    ) as daemon:
        assert daemon.log_file == log
        with pytest.raises(LaunchError, match="not a JSON-lines log"):
            await daemon.wait_for_record("ready")
        assert is_alive(daemon.pid)
