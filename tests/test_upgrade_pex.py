"""A program shipped as a pex: the upgrade runs the archive again, so its new version serves.

pex re-executes itself into a copy of the archive in its cache (an unpacked
directory, or a virtual environment), whose path is the daemon's command line:
run again, that copy is the old version. The real tool builds the archives.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

import orjson
import pytest
import structlog

from .support import (
    PYTHON,
    REPO,
    aiodaemon_cli,
    clean_env,
    cmdline,
    free_port,
    get_body,
    program,
    read_pid,
)


def _require_pex() -> None:
    """pex is a test dependency: missing, the test fails (never skips)."""
    if importlib.util.find_spec("pex") is None:
        pytest.fail("pex is required by this test and is not installed (.ci/run installs it)")


def _build(site: Path, archive: Path, version: str, layout: str, pex_root: Path) -> None:
    """Build ``archive`` (the program at ``version``) with pex; replace it at once, as a deploy.

    Its ``#!`` line names this interpreter, so the archive also runs as ``./app.pex``.
    """
    app = site / "upgrade_app.py"
    app.write_text(
        program("upgrade_app").read_text().replace('VERSION = "v1"', f"VERSION = {version!r}")
    )
    # Uncompressed: faster to build, and the same to run.
    options = ["--no-compress", "-D", str(site), "-e", "upgrade_app", "-o", f"{archive}.new"]
    options += ["--python-shebang", PYTHON]
    if layout == "venv":
        options.append("--venv")
    built = subprocess.run(
        [PYTHON, "-m", "pex", *options],
        capture_output=True,
        text=True,
        env=clean_env({"PEX_ROOT": str(pex_root)}),
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    os.replace(f"{archive}.new", archive)


def _site(tmp_path: Path) -> Path:
    """What the archive holds: this aiodaemon, structlog and orjson (pex hides site-packages)."""
    site = tmp_path / "site"
    ignore = shutil.ignore_patterns("__pycache__")
    for package in (
        REPO / "aiodaemon",
        Path(structlog.__file__).parent,
        Path(orjson.__file__).parent,
    ):
        shutil.copytree(package, site / package.name, ignore=ignore)
    return site


def _start(
    argv: list[str | Path], cwd: Path, pex_root: Path, port: int, more: dict[str, str]
) -> None:
    """Start the archive's daemon with ``argv`` in ``cwd``, listening on ``port``: it must start.

    As a user runs it: no PYTHONPATH, everything comes from the archive.
    """
    env = clean_env({"APP_LISTEN": f"127.0.0.1:{port}", "PEX_ROOT": str(pex_root), **more})
    del env["PYTHONPATH"]
    started = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )
    assert started.returncode == 0, started.stderr


def _options(pid: int) -> list[str]:
    """The interpreter options on ``pid``'s command line (between the interpreter and program)."""
    return cmdline(pid).split("\0")[1:-2]


@pytest.mark.parametrize("layout", ["zipapp", "venv"])
def test_upgrade_of_a_pex_runs_the_new_archive(tmp_path: Path, layout: str) -> None:
    """The archive rebuilt with v2: the upgrade serves v2, with the interpreter's options kept."""
    _require_pex()
    site, archive, pex_root = _site(tmp_path), tmp_path / "app.pex", tmp_path / "pex-root"
    _build(site, archive, "v1", layout, pex_root)
    pidfile, port = tmp_path / "app.pid", free_port()
    files = {"APP_PIDFILE": str(pidfile), "APP_LOG": str(tmp_path / "app.log")}
    _start([PYTHON, "-X", "utf8", archive], tmp_path, pex_root, port, files)
    old = read_pid(pidfile)
    try:
        assert get_body(port) == f"v1 {old}"
        options = _options(old)
        assert "utf8" in options
        _build(site, archive, "v2", layout, pex_root)
        upgraded = aiodaemon_cli("upgrade", "--pidfile", pidfile, "--timeout", "60")
        assert upgraded.returncode == 0, upgraded.stderr
        new = int(upgraded.stdout)
        assert get_body(port) == f"v2 {new}"
        assert _options(new) == options
    finally:
        aiodaemon_cli("stop", "--pidfile", pidfile, "--timeout", "10")


@pytest.mark.parametrize(
    ("layout", "shell", "command"),
    [
        ("zipapp", "sh", "cd current && ./app.pex"),
        ("venv", "sh", "cd current && ./app.pex"),
        ("zipapp", "bash", "cd shared && {root}/current/app.pex"),
    ],
    ids=["zipapp-in-current", "venv-in-current", "zipapp-by-path"],
)
def test_upgrade_of_a_pex_in_a_release_layout_runs_the_release_current_names(
    tmp_path: Path, layout: str, shell: str, command: str
) -> None:
    """``releases/N/app.pex`` run through ``current``: after the switch, release 2 serves.

    pex leaves the archive's real path in ``$PEX`` (``releases/1/app.pex``):
    run again by it, the upgrade served release 1's code (exit 0), and failed
    once release 1 was pruned. sh sets no ``$_``: the launch directory
    (``$PWD``) finds the path; bash's ``$_`` finds one typed from elsewhere.
    """
    _require_pex()
    site, pex_root = _site(tmp_path), tmp_path / "pex-root"
    releases, shared = tmp_path / "releases", tmp_path / "shared" / "run"
    shared.mkdir(parents=True)
    for release in ("1", "2"):
        (releases / release).mkdir(parents=True)
        _build(site, releases / release / "app.pex", f"v{release}", layout, pex_root)
        (releases / release / "run").symlink_to("../../shared/run")
    current = tmp_path / "current"
    current.symlink_to("releases/1")
    port = free_port()
    # Relative: current/run -> ../../shared/run, as in a Capistrano layout.
    files = {"APP_PIDFILE": "run/app.pid", "APP_LOG": "run/app.log", "PWD": str(tmp_path)}
    _start([shell, "-c", command.format(root=tmp_path)], tmp_path, pex_root, port, files)
    pidfile = shared / "app.pid"
    old = read_pid(pidfile)
    try:
        assert get_body(port) == f"v1 {old}"
        following = tmp_path / "next"
        following.symlink_to("releases/2")
        os.replace(following, current)
        upgraded = aiodaemon_cli("upgrade", "--pidfile", pidfile, "--timeout", "60")
        assert upgraded.returncode == 0, upgraded.stderr
        new = int(upgraded.stdout)
        assert get_body(port) == f"v2 {new}"
        # Keep-last-N prunes release 1: the next upgrade needs nothing of it.
        shutil.rmtree(releases / "1")
        again = aiodaemon_cli("upgrade", "--pidfile", pidfile, "--timeout", "60")
        assert again.returncode == 0, again.stderr
        assert get_body(port) == f"v2 {int(again.stdout)}"
    finally:
        aiodaemon_cli("stop", "--pidfile", pidfile, "--timeout", "10")
