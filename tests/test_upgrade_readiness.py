"""An upgrade hands over only to a new process whose readiness checks pass."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

from .support import (
    AIODAEMON,
    aiodaemon_cli,
    clean_env,
    install_program,
    is_alive,
    read_json_lines,
    wait_for,
    wait_gone,
)


class _Checked:
    """upgrade_checked.py started with a health endpoint, in its own directory."""

    def __init__(self, tmp_path: Path) -> None:
        install_program("upgrade_checked", tmp_path, "checked_app.py")
        self.directory = tmp_path
        self.pidfile = tmp_path / "app.pid"
        self.log = tmp_path / "app.jsonl"
        self.health = tmp_path / "health.sock"
        self.not_ready = tmp_path / "not-ready"
        self.env = {"APP_NOT_READY": str(self.not_ready)}

    def start(self) -> int:
        started = self.cli(
            "start",
            "checked_app:main",
            "--pidfile",
            self.pidfile,
            "--log-file",
            self.log,
            "--health",
            f"unix:{self.health}",
        )
        assert started.returncode == 0, started.stderr
        return int(self.pidfile.read_text())

    def cli(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        return aiodaemon_cli(*args, cwd=self.directory, env=self.env)

    def readyz(self) -> str:
        """The status line of one ``GET /readyz``."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(str(self.health))
            sock.sendall(b"GET /readyz HTTP/1.1\r\nhost: x\r\n\r\n")
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
        return answer.split(b"\r\n", 1)[0].decode()

    def records(self, event: str, pid: int) -> list[dict[str, object]]:
        return [r for r in read_json_lines(self.log) if r["event"] == event and r["pid"] == pid]


def test_an_upgrade_to_a_process_whose_checks_fail_rolls_back(tmp_path: Path) -> None:
    """Checks that never pass: upgrade exits 1 naming the check; the old daemon serves, ready."""
    app = _Checked(tmp_path)
    old = app.start()
    try:
        assert app.readyz() == "HTTP/1.1 200 OK"
        app.not_ready.touch()  # the deploy: the new version cannot reach its database
        upgraded = app.cli("upgrade", "--pidfile", app.pidfile, "--timeout", "2")
        assert upgraded.returncode == 1
        assert "not ready after 2 s" in upgraded.stderr
        assert "checked_app.database: returned False" in upgraded.stderr
        assert upgraded.stdout == ""
        assert int(app.pidfile.read_text()) == old
        assert app.readyz() == "HTTP/1.1 200 OK"
        assert app.cli("status", "--pidfile", app.pidfile).returncode == 0
        failed = app.records("upgrade failed", old)
        successor = failed[0]["successor"]
        assert isinstance(successor, int)
        wait_gone(successor)
        assert is_alive(old)
        assert app.records("readiness check failed", successor)
        # Stopped as a daemon not yet ready is: status 1, and the check that held it back.
        [ended] = wait_for(lambda: app.records("exit", successor), what="its exit record")
        assert ended["status"] == 1
        assert ended["reason"] == (
            "stopped by SIGTERM before it was ready "
            "(readiness check failing: checked_app.database: returned False)"
        )
        [seen] = wait_for(
            lambda: app.records("upgrade successor stopped", old), what="the old daemon's record"
        )
        assert seen["successor"] == successor
        assert seen["status"] == 1
    finally:
        stopped = app.cli("stop", "--pidfile", app.pidfile)
    assert stopped.returncode == 0, stopped.stderr
    assert f"stopped (pid {old})" in stopped.stderr


def test_an_upgrade_waits_for_the_checks_to_pass(tmp_path: Path) -> None:
    """Checks that fail, then pass within the timeout: the new process takes over then."""
    app = _Checked(tmp_path)
    old = app.start()
    try:
        app.not_ready.touch()
        upgrade = subprocess.Popen(
            [AIODAEMON, "upgrade", "--pidfile", app.pidfile, "--timeout", "30"],
            cwd=app.directory,
            env=clean_env(app.env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            failing = wait_for(
                lambda: [
                    r for r in read_json_lines(app.log) if r["event"] == "readiness check failed"
                ],
                what="the new process's failing check",
            )
            # Not handed over while its check fails: the old daemon is still in charge.
            assert upgrade.poll() is None
            assert int(app.pidfile.read_text()) == old
            assert app.readyz() == "HTTP/1.1 200 OK"
            app.not_ready.unlink()  # the database is reachable now
            out, err = upgrade.communicate(timeout=30)
        finally:
            if upgrade.poll() is None:
                upgrade.kill()
                upgrade.wait()
        assert upgrade.returncode == 0, err
        new = int(out)
        assert new == failing[0]["pid"]
        assert int(app.pidfile.read_text()) == new
        wait_gone(old)
        assert app.readyz() == "HTTP/1.1 200 OK"
    finally:
        stopped = app.cli("stop", "--pidfile", app.pidfile)
    assert stopped.returncode == 0, stopped.stderr
