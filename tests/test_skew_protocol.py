"""Version skew on the control socket: a daemon speaking another protocol version.

tests/programs/control_other_version.py is control_app whose control socket
speaks version 2, as a daemon of another aiodaemon release would: each command
names both versions, and falls back to what the pidfile and signals tell.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

import aiodaemon

from .control_support import ControlApp, open_control_app
from .support import is_alive, wait_for, wait_gone

#: What this CLI says of the daemon's refusal, after "pid N ".
SPEAKS = (
    "speaks control protocol version 2, this aiodaemon speaks 1 (its answer: bad request: "
    "protocol version 1 is not supported (this side speaks 2))"
)


@pytest.fixture
def app() -> Iterator[ControlApp]:
    with open_control_app() as app:
        yield app


def _start(app: ControlApp) -> int:
    result = app.cli("start", "control_other_version:main", "--pidfile", app.pidfile,
                     "--log-file", app.log)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return int(result.stdout)


def test_status_says_running_from_the_pidfile_and_names_both_versions(app: ControlApp) -> None:
    """Running, exit 0 (LSB), with a note on stderr: never "unknown" of a daemon that runs."""
    pid = _start(app)
    result = app.cli("status", "--pidfile", app.pidfile)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"running (pid {pid}, pidfile {app.pidfile})\n"
    assert result.stderr == f"aiodaemon: note: pid {pid} {SPEAKS}; status from the pidfile\n"
    as_json = app.cli("status", "--json", "--pidfile", app.pidfile)
    assert as_json.returncode == 0, as_json.stderr
    report = json.loads(as_json.stdout)
    assert (report["state"], report["pid"]) == ("running", pid)


def test_reload_falls_back_to_sighup_and_says_the_result_is_not_known(app: ControlApp) -> None:
    """As stop falls back to SIGTERM: the reload runs, and the command says it cannot tell how."""
    pid = _start(app)
    result = app.cli("reload", "--pidfile", app.pidfile)
    assert result.returncode == 0, result.stderr
    assert result.stderr == (
        f"aiodaemon: reload requested (pid {pid}, SIGHUP); pid {pid} {SPEAKS}, "
        "so the result is not known\n"
    )
    wait_for(lambda: app.reload_runs() == ["ok"], 10, "the reload hook")
    assert is_alive(pid)


def test_upgrade_is_refused_and_says_nothing_was_started(app: ControlApp) -> None:
    """Exit 1, no "the daemon's log says": nothing began, and the daemon serves on."""
    pid = _start(app)
    result = app.cli("upgrade", "--pidfile", app.pidfile, "--timeout", "10")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"aiodaemon: upgrade refused: pid {pid} {SPEAKS}; nothing started: "
        "use 'aiodaemon restart'\n"
    )
    assert aiodaemon.read_pidfile(app.pidfile).running_pid == pid
    assert app.records("upgrade started") == []


def test_stop_names_both_versions_and_stops_it_with_sigterm(app: ControlApp) -> None:
    """The daemon is stopped, its pidfile and control socket gone."""
    pid = _start(app)
    result = app.cli("stop", "--pidfile", app.pidfile)
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith(f"aiodaemon: pid {pid} {SPEAKS}; sending SIGTERM\n")
    wait_gone(pid, 10)
    assert not app.pidfile.exists()
    assert not app.control.exists()
