"""The options of run() are typed: a type checker rejects a misspelt or mistyped one."""

from __future__ import annotations

import os
import ssl
import subprocess
import typing
from pathlib import Path
from typing import Any

import pytest

from aiodaemon import DaemonOptions
from aiodaemon._options import ServerOptions
from aiodaemon._prefork._config import parse_options
from aiodaemon.exceptions import ConfigError
from tests.support import mypy_strict

PROGRAM = """\
import aiodaemon

async def main() -> None: ...

daemon = aiodaemon.Daemon()

def good() -> None:
    aiodaemon.run(main, pidfile="/run/app.pid", shutdown_timeout=10, listen={{"http": ":80"}})

{bad}
"""


def mypy(tmp_path: Path, bad: str) -> subprocess.CompletedProcess[str]:
    """Run mypy --strict on a small program that ends with ``bad``."""
    return mypy_strict(tmp_path, {"app.py": PROGRAM.format(bad=bad)})


# mypy, cold (a cache of its own), on a busy machine: more than the suite's 60 s.
@pytest.mark.timeout(300)
def test_mypy_rejects_a_misspelt_and_a_mistyped_option(tmp_path: Path) -> None:
    """pid_file= and shutdown_timeout="ten" are type errors, for run() and Daemon.run()."""
    result = mypy(
        tmp_path,
        # One call per function: run() never returns, so code after it is unreachable.
        'def misspelt() -> None:\n    aiodaemon.run(main, pid_file="/run/app.pid")\n'
        'def mistyped() -> None:\n    aiodaemon.run(main, shutdown_timeout="ten")\n'
        'def method() -> None:\n    daemon.run(main, log_format="yaml")\n',
    )
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert result.returncode == 1, result.stdout + result.stderr
    assert [line.split(":")[1] for line in errors] == ["11", "13", "15"], errors
    assert '"pid_file"' in errors[0]
    assert "shutdown_timeout" in errors[1]
    assert "log_format" in errors[2]


@pytest.mark.timeout(300)
def test_mypy_rejects_a_misspelt_public_name(tmp_path: Path) -> None:
    """The lazy exports do not make every attribute of aiodaemon an Any to a type checker."""
    result = mypy(
        tmp_path,
        'def typo() -> None:\n    aiodaemon.runn(main, pid_file="/run/app.pid")\n'
        "def version() -> str:\n    return aiodaemon.__version__\n",
    )
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert result.returncode == 1, result.stdout + result.stderr
    assert len(errors) == 1, errors
    assert 'Module has no attribute "runn"' in errors[0]


@pytest.mark.timeout(300)
def test_mypy_accepts_good_options(tmp_path: Path) -> None:
    """The same program with only well-typed options passes mypy --strict."""
    result = mypy(
        tmp_path,
        "def method() -> None:\n"
        '    daemon.run(main, detach=False, log_level="debug", umask=0o027)\n',
    )
    assert result.returncode == 0, result.stdout + result.stderr


def sample_values(tmp_path: Path) -> dict[str, Any]:
    """One valid value per option of DaemonOptions."""
    return {
        "pidfile": tmp_path / "d.pid",
        "detach": False,
        "workdir": tmp_path,
        "umask": 0o027,
        "stdout": tmp_path / "out.log",
        "stderr": str(tmp_path / "err.log"),
        "log_file": tmp_path / "d.jsonl",
        "syslog": "udp://127.0.0.1:514",
        "log_level": "debug",
        "log_format": "json",
        "listen": {"http": "127.0.0.1:0"},
        "user": os.getuid(),
        "group": os.getgid(),
        "chroot": None,
        "prevent_core": False,
        "no_new_privileges": False,
        "files_preserve": [0],
        "shutdown_timeout": 5,
        "uvloop": None,
        "ready": "manual",
        "control": tmp_path / "d.ctl",
        "start_timeout": 10.0,
        "drain_delay": 0.5,
        "health": "127.0.0.1:0",
    }


def test_every_typed_option_has_a_sample() -> None:
    """This file's samples cover exactly the keys of DaemonOptions."""
    assert set(sample_values(Path("/tmp"))) == set(DaemonOptions.__optional_keys__)
    assert not DaemonOptions.__required_keys__


#: Options other engineers are adding in this round: drop a name from here once
#: parse_options accepts it (the strict xfail then fails, to say so).
PENDING: set[str] = set()


@pytest.mark.parametrize(
    "option",
    [
        pytest.param(
            name,
            marks=pytest.mark.xfail(
                name in PENDING, raises=ConfigError, strict=True, reason="not implemented yet"
            ),
        )
        for name in sorted(DaemonOptions.__optional_keys__)
    ],
)
def test_parse_options_accepts_every_typed_option(option: str, tmp_path: Path) -> None:
    """Each key a type checker allows is one run() accepts, with a well-typed value."""
    parse_options({option: sample_values(tmp_path)[option]})


def test_syslog_takes_a_path_object_as_the_other_path_options_do() -> None:
    """syslog=Path("/dev/log") is the same target as "/dev/log", not "must be a socket path"."""
    by_path = parse_options({"syslog": Path("/dev/log")}).syslog
    assert by_path is not None
    assert by_path == parse_options({"syslog": "/dev/log"}).syslog


def test_the_typed_options_resolve_at_run_time() -> None:
    """typing.get_type_hints of run()'s and start_server()'s options names real types."""
    assert set(typing.get_type_hints(DaemonOptions)) == DaemonOptions.__optional_keys__
    assert typing.get_type_hints(ServerOptions)["ssl"] == ssl.SSLContext | None
