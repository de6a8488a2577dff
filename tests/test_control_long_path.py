"""A pidfile deep enough that its control socket's path does not fit in sun_path."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from .security_support import NOBODY, shared_python_as
from .support import PROGRAMS, aiodaemon_cli, install_program, read_pid, wait_gone


def test_control_commands_reach_a_socket_whose_path_exceeds_sun_path(tmp_path: Path) -> None:
    """status, reload and stop use the control socket through /proc/self/fd of its directory."""
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    pidfile = deep / "app.pid"
    install_program("cli_app", tmp_path)
    started = aiodaemon_cli("start", "app:main", "--pidfile", pidfile, cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    pid = read_pid(pidfile)
    try:
        control = Path(f"{pidfile}.ctl")
        assert len(bytes(control)) > 107
        assert control.is_socket()
        status = aiodaemon_cli("status", "--json", "--pidfile", pidfile)
        assert status.returncode == 0, status.stderr
        answer = json.loads(status.stdout)
        # Only the daemon's answer carries its version: the control socket answered.
        assert answer["pid"] == pid
        assert answer["version"] is not None, answer
        reloaded = aiodaemon_cli("reload", "--pidfile", pidfile)
        assert reloaded.returncode == 0, reloaded.stderr
        # The reload ran (the hook wrote its line), answered over the control socket.
        assert (tmp_path / "reloads").read_text() == "reload\n"
    finally:
        stopped = aiodaemon_cli("stop", "--pidfile", pidfile)
    assert stopped.returncode == 0, stopped.stderr
    wait_gone(pid)
    assert not control.exists()


@pytest.mark.root
def test_the_daemons_user_reaches_a_long_path_through_a_directory_it_may_only_enter() -> None:
    """A deep pidfile directory of mode 0711 (root's): its daemon's user gets status, no traceback.

    The directory may be entered but not listed, as /run/NAME or a home directory
    often is; the socket path is reached through it all the same.
    """
    if os.geteuid() != 0:
        pytest.fail("this test needs root: run the suite as root (as .ci/run does)")
    # Not tmp_path itself (0700): nobody must be able to enter every parent.
    base = Path(tempfile.mkdtemp(prefix="aiodaemon-long-"))
    base.chmod(0o755)
    deep = base / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    deep.chmod(0o711)
    deep.parent.chmod(0o711)
    pidfile = deep / "app.pid"
    started = aiodaemon_cli(
        "start", "control_app:main", "--pidfile", pidfile, "--user", "nobody", "--workdir", "/",
        cwd=PROGRAMS, env={"CONTROL_APP_DIR": str(base)},
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    pid = read_pid(pidfile)
    try:
        assert len(bytes(Path(f"{pidfile}.ctl"))) > 107
        results = {
            command: shared_python_as(
                NOBODY, "-m", "aiodaemon", command, "--pidfile", pidfile, *extra, cwd="/"
            )
            for command, extra in (("status", ["--json"]), ("reload", []))
        }
        status = results["status"]
        assert status.returncode == 0, status.stderr
        answer = json.loads(status.stdout)
        # Only the daemon's answer carries its version: the control socket answered.
        assert (answer["pid"], answer["state"]) == (pid, "running")
        assert answer["version"] is not None, answer
        reloaded = results["reload"]
        assert reloaded.returncode == 0, reloaded.stderr
        assert reloaded.stderr == f"aiodaemon: reloaded (pid {pid})\n"
    finally:
        stopped = aiodaemon_cli("stop", "--pidfile", pidfile)
        shutil.rmtree(base, ignore_errors=True)
    assert stopped.returncode == 0, stopped.stderr
    wait_gone(pid)


def test_a_pidfile_name_too_long_for_its_control_socket_starts_without_one(
    tmp_path: Path,
) -> None:
    """--pidfile with a 100-byte name: the start goes on without a control socket, and says so.

    It failed with exit 2 blaming --control, which the user never gave;
    status, reload and stop fall back to the pidfile and signals.
    """
    install_program("forever", tmp_path)
    pidfile = tmp_path / ("p" * 96 + ".pid")
    started = aiodaemon_cli("start", "app:main", "--pidfile", pidfile, cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    pid = read_pid(pidfile)
    try:
        assert (
            f"aiodaemon: warning: no control socket: {pidfile}.ctl, the pidfile's path + .ctl,"
            " has a file name too long for a unix socket (104 bytes, at most "
        ) in started.stderr
        assert "--control" not in started.stderr
        status = aiodaemon_cli("status", "--pidfile", pidfile)
        assert status.returncode == 0, status.stderr
        assert status.stdout.startswith(f"running (pid {pid}")
    finally:
        stopped = aiodaemon_cli("stop", "--pidfile", pidfile)
    assert stopped.returncode == 0, stopped.stderr
    wait_gone(pid)
    assert not pidfile.exists()


def test_a_given_control_socket_name_too_long_for_any_path_is_a_usage_error(
    tmp_path: Path,
) -> None:
    """--control with a 100-byte name: exit 2 naming --control, the length and the limit."""
    install_program("forever", tmp_path)
    pidfile = tmp_path / "app.pid"
    control = tmp_path / ("c" * 100)
    result = aiodaemon_cli(
        "start", "app:main", "--pidfile", pidfile, "--control", control, cwd=tmp_path
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(
        f"aiodaemon: --control: {control} has a file name too long for a unix socket"
        " (100 bytes, at most "
    )
    assert result.stderr.count("\n") == 1
    assert not pidfile.exists()
