"""The working directory a daemon runs in: `/` once detached, the supervisor's in the foreground."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .support import aiodaemon_cli, install_program, program, python, wait_for


def _run(options: dict[str, Any], report: Path, cwd: Path) -> None:
    ran = python(
        [program("cwd_report"), json.dumps(options)], cwd=cwd, env={"CWD_REPORT": str(report)}
    )
    assert ran.returncode == 0, ran.stderr


def _report(path: Path) -> dict[str, Any]:
    wait_for(path.exists, what="the daemon's report")
    report: dict[str, Any] = json.loads(path.read_text())
    return report


@pytest.fixture
def started_in(tmp_path: Path) -> Path:
    """Where the daemon is started from, as systemd's WorkingDirectory= or a WORKDIR puts it."""
    directory = tmp_path / "app"
    directory.mkdir()
    (directory / "config.txt").write_text("from the app's directory")
    return directory


def test_in_the_foreground_the_daemon_stays_where_it_was_started(
    started_in: Path, tmp_path: Path
) -> None:
    """No workdir: the current directory is kept, and relative paths read from it."""
    report = tmp_path / "report.json"
    _run({"detach": False}, report, started_in)
    assert _report(report) == {"cwd": str(started_in), "config": "from the app's directory"}


def test_aiodaemon_run_stays_in_the_supervisors_directory(started_in: Path, tmp_path: Path) -> None:
    """`aiodaemon run app:main` under a supervisor that set its directory keeps it."""
    install_program("cwd_report", started_in, "app.py")
    report = tmp_path / "report.json"
    ran = aiodaemon_cli("run", "app:main", cwd=started_in, env={"CWD_REPORT": str(report)})
    assert ran.returncode == 0, ran.stderr
    assert _report(report) == {"cwd": str(started_in), "config": "from the app's directory"}


def test_a_workdir_given_is_entered_in_the_foreground(started_in: Path, tmp_path: Path) -> None:
    """workdir= still applies in the foreground."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    report = tmp_path / "report.json"
    options = {"detach": False, "workdir": str(elsewhere)}
    _run(options, report, started_in)
    assert _report(report) == {"cwd": str(elsewhere), "config": "FileNotFoundError"}


def test_a_detached_daemon_enters_the_root_directory(started_in: Path, tmp_path: Path) -> None:
    """No workdir, detached: ``/``, so it keeps no mount point busy."""
    report = tmp_path / "report.json"
    _run({"detach": True}, report, started_in)
    assert _report(report) == {"cwd": "/", "config": "FileNotFoundError"}
