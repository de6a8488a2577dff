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
    """Build ``archive`` (the program at ``version``) with pex; replace it at once, as a deploy."""
    app = site / "upgrade_app.py"
    app.write_text(
        program("upgrade_app").read_text().replace('VERSION = "v1"', f"VERSION = {version!r}")
    )
    # Uncompressed: faster to build, and the same to run.
    options = ["--no-compress", "-D", str(site), "-e", "upgrade_app", "-o", f"{archive}.new"]
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
    env = clean_env(
        {
            "APP_PIDFILE": str(pidfile),
            "APP_LOG": str(tmp_path / "app.log"),
            "APP_LISTEN": f"127.0.0.1:{port}",
            "PEX_ROOT": str(pex_root),
        }
    )
    del env["PYTHONPATH"]  # as a user runs it: everything from the archive
    started = subprocess.run(
        [PYTHON, "-X", "utf8", archive],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )
    assert started.returncode == 0, started.stderr
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
