"""Upgrades and how the daemon was started: from a release symlink, a deleted release, no PATH."""

from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig
from pathlib import Path

from .support import PYTHON, REPO, aiodaemon_cli, clean_env, get_logged_listener, is_alive

PROGRAM = REPO / "tests" / "programs" / "upgrade_app.py"


def _release(root: Path, name: str, version: str) -> Path:
    """A release directory holding the test program at ``version``."""
    release = root / "releases" / name
    release.mkdir(parents=True)
    text = PROGRAM.read_text()
    (release / "upgrade_app.py").write_text(
        text.replace('VERSION = "v1"', f'VERSION = "{version}"')
    )
    return release


def _start(cwd: Path, run: Path) -> int:
    """``aiodaemon start`` from ``cwd`` as a shell there would (``$PWD`` set); the daemon's pid."""
    pidfile, log = run / "app.pid", run / "app.log"
    options = ["--log-file", str(log), "--listen", "http=127.0.0.1:0"]
    started = aiodaemon_cli(
        "start", "upgrade_app:main", "--pidfile", pidfile, *options, cwd=cwd, env={"PWD": str(cwd)}
    )
    assert started.returncode == 0, started.stderr
    return int(pidfile.read_text())


def _answer(run: Path) -> str:
    """One request to the daemon's http listener: ``<VERSION> <pid>``."""
    return get_logged_listener(run / "app.log")


def test_upgrade_starts_the_release_a_switched_symlink_names(tmp_path: Path) -> None:
    """Started from ``current`` -> release 1; ``current`` switched to 2; the upgrade runs 2."""
    run = tmp_path / "run"
    run.mkdir()
    _release(tmp_path, "1", "v1")
    _release(tmp_path, "2", "v2")
    current = tmp_path / "current"
    current.symlink_to(tmp_path / "releases" / "1")
    pid = _start(current, run)
    try:
        assert _answer(run) == f"v1 {pid}"
        # The deploy: switch the symlink atomically, as capistrano-style tools do.
        (tmp_path / "next").symlink_to(tmp_path / "releases" / "2")
        os.replace(tmp_path / "next", current)
        upgraded = aiodaemon_cli("upgrade", "--pidfile", str(run / "app.pid"), "--timeout", "30")
        assert upgraded.returncode == 0, upgraded.stderr
        successor = int((run / "app.pid").read_text())
        assert successor != pid
        assert _answer(run) == f"v2 {successor}"
    finally:
        aiodaemon_cli("stop", "--pidfile", str(run / "app.pid"), "--timeout", "10")


def test_upgrade_from_a_deleted_launch_directory_names_the_directory(tmp_path: Path) -> None:
    """The release directory a deploy removed is named, not the interpreter; the daemon runs on."""
    run = tmp_path / "run"
    run.mkdir()
    release = _release(tmp_path, "1", "v1")
    pid = _start(release, run)
    try:
        shutil.rmtree(release)
        upgraded = aiodaemon_cli("upgrade", "--pidfile", str(run / "app.pid"), "--timeout", "30")
        assert upgraded.returncode == 1
        assert upgraded.stderr == (
            f"aiodaemon: upgrade failed: cannot enter {release}, the directory the daemon"
            " was started from: No such file or directory\n"
        )
        assert is_alive(pid)
        assert _answer(run) == f"v1 {pid}"
    finally:
        aiodaemon_cli("stop", "--pidfile", str(run / "app.pid"), "--timeout", "10")


def test_upgrade_of_a_daemon_started_by_a_bare_name_without_path(tmp_path: Path) -> None:
    """``env -i python3 -m aiodaemon start``: the upgrade starts the same interpreter again.

    Python found no ``sys.executable`` there (empty): the upgrade failed,
    ``cannot start python3: Permission denied``.
    """
    run = tmp_path / "run"
    run.mkdir()
    release = _release(tmp_path, "1", "v1")
    pidfile, log = run / "app.pid", run / "app.log"
    # Its site-packages by PYTHONPATH: without sys.executable no venv is found either.
    env = clean_env({"PYTHONPATH": os.pathsep.join([str(REPO), sysconfig.get_paths()["purelib"]])})
    del env["PATH"]
    options = ["--pidfile", str(pidfile), "--log-file", str(log), "--listen", "http=127.0.0.1:0"]
    started = subprocess.run(
        ["python3", "-m", "aiodaemon", "start", "upgrade_app:main", *options],
        executable=PYTHON,
        capture_output=True,
        text=True,
        cwd=release,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=45,
        check=False,
    )
    assert started.returncode == 0, started.stderr
    pid = int(pidfile.read_text())
    try:
        upgraded = aiodaemon_cli("upgrade", "--pidfile", str(pidfile), "--timeout", "30")
        assert upgraded.returncode == 0, upgraded.stderr
        successor = int(pidfile.read_text())
        assert successor != pid
        assert _answer(run) == f"v1 {successor}"
    finally:
        aiodaemon_cli("stop", "--pidfile", str(pidfile), "--timeout", "10")


def test_upgrade_of_relative_paths_in_a_release_layout(tmp_path: Path) -> None:
    """``releases/N/run -> ../../shared/run``, ``--pidfile run/app.pid`` from ``current``.

    The old daemon made the path absolute in the physical release 1, the new
    process in release 2: "pidfile changed" failed every upgrade, though both
    name the one file in ``shared/run``.
    """
    shared = tmp_path / "shared" / "run"
    shared.mkdir(parents=True)
    for name in ("1", "2"):
        (_release(tmp_path, name, f"v{name}") / "run").symlink_to("../../shared/run")
    current = tmp_path / "current"
    current.symlink_to("releases/1")
    relative = ["--pidfile", "run/app.pid", "--log-file", "run/app.log"]
    started = aiodaemon_cli(
        "start", "upgrade_app:main", *relative, "--listen", "http=127.0.0.1:0",
        cwd=current, env={"PWD": str(current)},
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    pid = int((shared / "app.pid").read_text())
    try:
        (tmp_path / "next").symlink_to("releases/2")
        os.replace(tmp_path / "next", current)
        here = {"PWD": str(current)}
        upgraded = aiodaemon_cli(
            "upgrade", "--pidfile", "run/app.pid", "--timeout", "30", cwd=current, env=here
        )
        assert upgraded.returncode == 0, upgraded.stderr
        successor = int((shared / "app.pid").read_text())
        assert successor != pid
        assert _answer(shared) == f"v2 {successor}"
        status = aiodaemon_cli("status", "--pidfile", "run/app.pid", cwd=current, env=here)
        assert status.stdout.startswith(f"running (pid {successor},"), status.stdout
    finally:
        aiodaemon_cli("stop", "--pidfile", str(shared / "app.pid"), "--timeout", "10")
    assert sorted(p.name for p in shared.iterdir()) == ["app.log"]
