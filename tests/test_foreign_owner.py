"""Output files another account owns: the start goes on and says who can read and rewrite them.

A root daemon's log left owned by the service account of an earlier ``user=``
run (DESIGN section 6: that account may be compromised later) was appended to
without a word.
"""

from __future__ import annotations

import json
import os
import pwd
import signal
import subprocess
from pathlib import Path

import pytest

from .security_support import arena  # noqa: F401  (fixture)
from .support import aiodaemon_cli, install_program, program, python, wait_for, wait_gone

pytestmark = pytest.mark.root

NOBODY = pwd.getpwnam("nobody")


def _stopped(started: subprocess.CompletedProcess[str], pidfile: Path) -> list[str]:
    """The start's stderr lines, after checking it started and stopping its daemon."""
    assert started.returncode == 0, started.stderr
    pid = int(pidfile.read_text())
    os.kill(pid, signal.SIGTERM)
    wait_gone(pid)
    return started.stderr.splitlines()


def _owned_by_nobody(path: Path) -> Path:
    path.touch()
    os.chown(path, NOBODY.pw_uid, NOBODY.pw_gid)
    return path


@pytest.mark.parametrize("option", ["log_file", "stdout", "stderr"])
def test_a_root_daemon_warns_of_an_output_file_another_account_owns(
    arena: Path,  # noqa: F811
    option: str,
) -> None:
    """run() and the CLI both start, saying which account can read and rewrite the file."""
    output = _owned_by_nobody(arena / f"app.{option}")
    pidfile = arena / "d.pid"
    owned = (
        f"{output} is owned by nobody (uid {NOBODY.pw_uid}), not by the daemon's user root:"
        " that account can read and rewrite what the daemon writes there (chown the file)"
    )
    options = {"detach": True, "pidfile": str(pidfile), option: str(output)}
    if option == "stdout":
        options["log_file"] = str(arena / "app.log")
    warnings = _stopped(python([program("idle"), json.dumps(options)]), pidfile)
    assert f"aiodaemon: warning: {option} {owned}" in warnings
    flags = ["--pidfile", str(pidfile), f"--{option.replace('_', '-')}", str(output)]
    if option == "stdout":
        flags += ["--log-file", str(arena / "app.log")]
    install_program("cli_app", arena)
    started = aiodaemon_cli("start", "app:main", *flags, cwd=arena)
    flag = f"--{option.replace('_', '-')}"
    assert f"aiodaemon: warning: {flag}: {owned}" in _stopped(started, pidfile)
    assert output.stat().st_uid == NOBODY.pw_uid  # warned of, not taken over
    if option == "log_file":  # written to as ever: both daemons' records, to their exit
        events = [json.loads(line)["event"] for line in output.read_text().splitlines()]
        assert events.count("ready") == events.count("exit") == 2


def test_the_daemons_own_and_roots_files_are_not_warned_of(arena: Path) -> None:  # noqa: F811
    """A file the daemon's user (``user=nobody``) or root owns: no warning."""
    log = _owned_by_nobody(arena / "app.log")
    pidfile = arena / "d.pid"
    # The pidfile's directory must let nobody remove the pidfile at its exit.
    arena.chmod(0o1777)
    dropped = {"detach": True, "pidfile": str(pidfile), "log_file": str(log), "user": "nobody"}
    assert _stopped(python([program("idle"), json.dumps(dropped)]), pidfile) == []
    os.chown(log, 0, 0)
    as_root = {"detach": True, "pidfile": str(pidfile), "log_file": str(log)}
    assert _stopped(python([program("idle"), json.dumps(as_root)]), pidfile) == []


def test_a_reopen_that_finds_another_accounts_file_logs_a_warning_in_it(
    arena: Path,  # noqa: F811
) -> None:
    """SIGUSR1 after a rotation whose new file nobody owns: written to, with a warning first."""
    log, pidfile = arena / "app.log", arena / "d.pid"
    options = {"detach": True, "pidfile": str(pidfile), "log_file": str(log)}
    started = python([program("idle"), json.dumps(options)])
    assert started.returncode == 0, started.stderr
    pid = int(pidfile.read_text())
    try:
        log.rename(arena / "app.log.1")
        _owned_by_nobody(log)
        os.kill(pid, signal.SIGUSR1)
        owned = "log file owned by another account"
        wait_for(lambda: owned in log.read_text(), 10, "the warning in the new file")
    finally:
        os.kill(pid, signal.SIGTERM)
        wait_gone(pid)
    [warning] = [r for r in map(json.loads, log.read_text().splitlines()) if r["event"] == owned]
    assert warning["level"] == "warning"
    assert warning["error"] == (
        f"log_file {log} is owned by nobody (uid {NOBODY.pw_uid}), not by the daemon's user root:"
        " that account can read and rewrite what the daemon writes there (chown the file)"
    )
    assert log.stat().st_uid == NOBODY.pw_uid
