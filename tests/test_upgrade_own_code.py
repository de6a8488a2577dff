"""An upgrade after a deploy runs the old daemon's own upgrade code, not the new code on disk."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .support import REPO, aiodaemon_cli, read_json_lines, wait_for


def test_an_upgrade_uses_the_upgrade_code_the_daemon_started_with(tmp_path: Path) -> None:
    """A deploy breaks aiodaemon's upgrade module on disk: the running daemon still upgrades."""
    site, run = tmp_path / "site", tmp_path / "run"
    run.mkdir()
    shutil.copytree(
        REPO / "aiodaemon", site / "aiodaemon", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(REPO / "tests" / "programs" / "upgrade_app.py", site / "upgrade_app.py")
    pidfile, log = run / "app.pid", run / "app.log"
    more = ["--log-file", str(log), "--listen", "http=127.0.0.1:0"]
    # python -m from the copy's directory: the daemon (and its successor) import the copy.
    started = aiodaemon_cli(
        "start",
        "upgrade_app:main",
        "--pidfile",
        pidfile,
        *more,
        cwd=site,
        module=True,
        env={"PYTHONPATH": str(site)},
    )
    assert started.returncode == 0, started.stderr
    old = int(pidfile.read_text())
    try:
        # Answered after the loop turn that loads the upgrade code (queued at main's start).
        assert aiodaemon_cli("status", "--pidfile", str(pidfile)).returncode == 0
        # The deploy: a new version whose upgrade-watching module the old daemon cannot use.
        watch = site / "aiodaemon" / "_run" / "_upgrade_watch.py"
        watch.write_text("raise ImportError(\"the new version's, not this daemon's\")\n")
        later = watch.stat().st_mtime_ns + 2_000_000_000
        os.utime(watch, ns=(later, later))
        upgraded = aiodaemon_cli("upgrade", "--pidfile", str(pidfile), "--timeout", "30")
        assert upgraded.returncode == 0, upgraded.stderr
        new = int(pidfile.read_text())
        assert new != old
        # The new daemon runs the new code: it says it could not load that module.
        warning = wait_for(
            lambda: [
                r
                for r in read_json_lines(log)
                if r["event"] == "upgrade code not loaded" and r["pid"] == new
            ],
            what="the new daemon's warning",
        )
        assert "the new version's" in str(warning[0]["error"])
    finally:
        aiodaemon_cli("stop", "--pidfile", str(pidfile), "--timeout", "10")
