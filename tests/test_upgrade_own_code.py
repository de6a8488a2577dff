"""A running daemon runs the code it started with: a deploy reaches only the next process."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

from .support import (
    PYTHON,
    REPO,
    aiodaemon_cli,
    clean_env,
    install_program,
    read_json_lines,
    wait_for,
)

_BROKEN = "raise ImportError(\"the new version's, not this daemon's\")\n"


def _site(tmp_path: Path, mode: str = "") -> tuple[Path, Path, Path]:
    """A copy of aiodaemon and upgrade_app.py (in ``mode``): (site, pidfile, log)."""
    site, run = tmp_path / "site", tmp_path / "run"
    run.mkdir()
    shutil.copytree(
        REPO / "aiodaemon", site / "aiodaemon", ignore=shutil.ignore_patterns("__pycache__")
    )
    app = site / "upgrade_app.py"
    shutil.copy(REPO / "tests" / "programs" / "upgrade_app.py", app)
    app.write_text(app.read_text().replace('MODE = ""', f"MODE = {mode!r}"))
    return site, run / "app.pid", run / "app.log"


def _start_args(pidfile: Path, log: Path, target: str = "upgrade_app:main") -> list[str]:
    return [
        "start",
        target,
        "--pidfile",
        str(pidfile),
        "--log-file",
        str(log),
        "--listen",
        "http=127.0.0.1:0",
    ]


def _deploy_broken_upgrade_module(site: Path) -> None:
    """The deploy: a new version whose upgrade-watching module the old daemon cannot use."""
    watch = site / "aiodaemon" / "_run" / "_upgrade_watch.py"
    watch.write_text(_BROKEN)
    later = watch.stat().st_mtime_ns + 2_000_000_000
    os.utime(watch, ns=(later, later))


def _upgrade_survives_the_deploy(pidfile: Path, log: Path, old: int) -> None:
    """``upgrade`` works; only the new process runs the deployed module (and says so)."""
    upgraded = aiodaemon_cli("upgrade", "--pidfile", str(pidfile), "--timeout", "30")
    assert upgraded.returncode == 0, upgraded.stderr
    new = int(pidfile.read_text())
    assert new != old
    warning = wait_for(
        lambda: [
            r
            for r in read_json_lines(log)
            if r["event"] == "upgrade code not loaded" and r["pid"] == new
        ],
        what="the new daemon's warning",
    )
    assert "the new version's" in str(warning[0]["error"])
    old_records = [r for r in read_json_lines(log) if r["pid"] == old]
    assert "upgrade code not loaded" not in [r["event"] for r in old_records]


def test_an_upgrade_uses_the_upgrade_code_the_daemon_started_with(tmp_path: Path) -> None:
    """A deploy breaks aiodaemon's upgrade module on disk: the running daemon still upgrades."""
    site, pidfile, log = _site(tmp_path)
    # python -m from the copy's directory: the daemon (and its successor) import the copy.
    env = {"PYTHONPATH": str(site)}
    started = aiodaemon_cli(*_start_args(pidfile, log), cwd=site, module=True, env=env)
    assert started.returncode == 0, started.stderr
    old = int(pidfile.read_text())
    try:
        assert aiodaemon_cli("status", "--pidfile", str(pidfile)).returncode == 0
        _deploy_broken_upgrade_module(site)
        _upgrade_survives_the_deploy(pidfile, log, old)
    finally:
        aiodaemon_cli("stop", "--pidfile", str(pidfile), "--timeout", "10")


def test_a_deploy_during_the_startup_hooks_does_not_reach_the_old_daemon(tmp_path: Path) -> None:
    """The deploy lands while a startup hook still runs: the daemon's upgrade code is the old."""
    site, pidfile, log = _site(tmp_path, mode="gate")
    gate = tmp_path / "gate"
    starting = subprocess.Popen(
        [PYTHON, "-m", "aiodaemon", *_start_args(pidfile, log)],
        cwd=site,
        env=clean_env({"PYTHONPATH": str(site), "APP_GATE": str(gate)}),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: Path(f"{gate}.entered").exists(), what="the startup hook")
        _deploy_broken_upgrade_module(site)
        gate.touch()
        _, err = starting.communicate(timeout=45)
        assert starting.returncode == 0, err
        _upgrade_survives_the_deploy(pidfile, log, int(pidfile.read_text()))
    finally:
        if starting.poll() is None:
            starting.kill()
            starting.communicate()
        aiodaemon_cli("stop", "--pidfile", str(pidfile), "--timeout", "10")


def test_a_running_daemon_reads_none_of_aiodaemons_files(tmp_path: Path) -> None:
    """Status, reload, log reopening, upgrade and stop: no file of the package is opened.

    The program records (with an audit hook) every open of a file of aiodaemon's
    package once ``main`` runs, in the old daemon and in its successor.
    """
    install_program("late_opens", tmp_path)
    record, pidfile = tmp_path / "opened", tmp_path / "app.pid"
    env = {"LATE_OPENS": str(record)}
    started = aiodaemon_cli(
        *_start_args(pidfile, tmp_path / "app.log", "app:main"), cwd=tmp_path, env=env
    )
    assert started.returncode == 0, started.stderr
    old = int(pidfile.read_text())
    try:
        assert aiodaemon_cli("status", "--pidfile", str(pidfile)).returncode == 0
        assert aiodaemon_cli("reload", "--pidfile", str(pidfile)).returncode == 0
        os.kill(old, signal.SIGUSR1)
        upgraded = aiodaemon_cli("upgrade", "--pidfile", str(pidfile), "--timeout", "30")
        assert upgraded.returncode == 0, upgraded.stderr
        new = int(pidfile.read_text())
        assert new != old
    finally:
        stopped = aiodaemon_cli("stop", "--pidfile", str(pidfile), "--timeout", "10")
    assert stopped.returncode == 0, stopped.stderr
    # Only the two processes' "armed" lines: the hook worked, and saw nothing else.
    assert record.read_text().splitlines() == [f"armed {old}", f"armed {new}"]
