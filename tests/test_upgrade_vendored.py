"""aiodaemon vendored in a zipapp: once dropped or chrooted, an upgrade reads nothing of it.

``zipimport`` opens the archive again at each import; a daemon whose user
cannot read it, or that is chrooted away from it, gets the same answer to
``upgrade`` as one whose aiodaemon is installed: never an internal error.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest

from .security_support import User, arena, own_dir, service_account
from .support import (
    REPO,
    aiodaemon_cli,
    clean_env,
    program,
    read_json_lines,
    read_pid,
    shared_python,
    wait_for,
)

pytestmark = pytest.mark.root

__all__ = ["arena", "service_account"]  # fixtures, re-exported for pytest

_HANDOVER = (
    "ended without taking the hand-over: a program that failed before calling aiodaemon, or "
    "one whose aiodaemon predates upgrades (0.1.0: use 'aiodaemon restart')"
)


def _zipapp(directory: Path, vendored: bool) -> Path:
    """``upgrade_app`` as a zipapp, root's, mode 0700; with a copy of aiodaemon if ``vendored``."""
    source = directory / "source"
    source.mkdir()
    shutil.copyfile(program("upgrade_app"), source / "__main__.py")
    if vendored:
        ignore = shutil.ignore_patterns("__pycache__")
        shutil.copytree(REPO / "aiodaemon", source / "aiodaemon", ignore=ignore)
    archive = directory / "app.pyz"
    subprocess.run([shared_python(), "-m", "zipapp", source, "-o", archive], check=True, timeout=60)
    archive.chmod(0o700)
    return archive


@pytest.mark.parametrize(("jail", "vendored"), [("user", True), ("user", False), ("chroot", True)])
def test_upgrade_of_a_zipapp_the_daemon_cannot_read(
    arena: Path, service_account: User, jail: str, vendored: bool
) -> None:
    """The same refusal or failure as an installed aiodaemon's; the daemon serves on."""
    archive = _zipapp(arena, vendored)
    run = own_dir(arena / "run", service_account)
    pidfile, log = run / "app.pid", run / "app.log"
    site = sysconfig.get_paths()["purelib"]  # structlog, orjson: installed, readable
    env = {"APP_PIDFILE": str(pidfile), "APP_LOG": str(log), "PYTHONPATH": site}
    if not vendored:
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), site])
    if jail == "user":
        env["APP_USER"] = service_account.name
    else:
        (arena / "jail").mkdir(mode=0o755)
        env["APP_CHROOT"] = str(arena / "jail")
    started = subprocess.run(
        [shared_python(), archive],
        capture_output=True,
        text=True,
        env=clean_env(env),
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )
    assert started.returncode == 0, started.stderr
    old = read_pid(pidfile)
    try:
        upgraded = aiodaemon_cli("upgrade", "--pidfile", pidfile, "--timeout", "20")
        assert upgraded.returncode == 1
        if jail == "chroot":
            assert upgraded.stderr == (
                "aiodaemon: upgrade failed: cannot upgrade a chrooted daemon: its program is "
                "outside the chroot; use restart\n"
            )
        else:
            [failed] = wait_for(
                lambda: [r for r in read_json_lines(log) if r["event"] == "upgrade failed"],
                what="the upgrade failed record",
            )
            assert upgraded.stderr == (
                f"aiodaemon: upgrade failed: {shared_python()}: can't open file '{archive}': "
                f"[Errno 13] Permission denied; the new process (pid {failed['successor']}) "
                f"{_HANDOVER}\n"
            )
        assert read_pid(pidfile) == old
        status = aiodaemon_cli("status", "--pidfile", pidfile)
        assert status.stdout.startswith(f"running (pid {old},")
        # Its upgrade modules were read at the start, from the archive still readable then.
        warnings = [r for r in read_json_lines(log) if r["level"] not in ("info", "debug")]
        expected = "upgrade failed" if jail == "user" else "upgrade refused"
        assert [r["event"] for r in warnings] == [expected]
    finally:
        stopped = aiodaemon_cli("stop", "--pidfile", pidfile)
        assert stopped.returncode == 0, stopped.stderr
