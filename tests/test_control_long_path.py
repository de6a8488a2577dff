"""A pidfile deep enough that its control socket's path does not fit in sun_path."""

from __future__ import annotations

import json
from pathlib import Path

from .support import aiodaemon_cli, install_program, read_pid, wait_gone


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
