"""A reload during an upgrade: it runs once, in whichever daemon serves after the upgrade."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

import aiodaemon

from .control_support import ControlApp, Watched
from .support import wait_for

#: How the upgrade ends: the successor takes over, or its startup fails.
OUTCOMES = ["handed-over", "failed"]


class Upgrading:
    """An ``aiodaemon upgrade`` whose successor waits, in its startup hook, for the test."""

    def __init__(self, app: ControlApp, outcome: str) -> None:
        self.app = app
        self.outcome = outcome
        self.old = app.start()
        app.steer("startup", "wait" if outcome == "handed-over" else "wait-fail")
        self.command: Watched = app.watch("upgrade", "--pidfile", app.pidfile, "--timeout", "60")
        [record] = wait_for(lambda: app.records("upgrade started"), 30, "the upgrade to begin")
        assert record["pid"] == self.old
        self.successor = int(str(record["successor"]))

    def release(self) -> tuple[int, str, list[str]]:
        """Let the successor's startup end; the upgrade command's exit, stdout and stderr."""
        self.app.steer("release")
        return self.command.finish()


@pytest.fixture
def upgrading(request: pytest.FixtureRequest, control_app: ControlApp) -> Iterator[Upgrading]:
    """A daemon being upgraded, the successor held in its startup; ending as the param says."""
    upgrade = Upgrading(control_app, request.param)
    try:
        yield upgrade
    finally:
        upgrade.command.kill()


def _check_upgrade(upgrade: Upgrading, result: tuple[int, str, list[str]]) -> int:
    """The upgrade ended as asked; the pid that serves after it."""
    code, out, lines = result
    if upgrade.outcome == "handed-over":
        assert (code, out.strip()) == (0, str(upgrade.successor)), lines
        return upgrade.successor
    assert code == 1, lines
    assert lines == [
        "aiodaemon: upgrade failed: startup hook control_app.warm_up failed: "
        "RuntimeError: startup refused by the test"
    ]
    return upgrade.old


def _reloaded_once_by(app: ControlApp, pid: int) -> None:
    """One reload run in all, by ``pid``, and it succeeded."""
    [finished] = wait_for(lambda: app.records("reload finished"), 30, "the reload to finish")
    assert (finished["pid"], finished["ok"]) == (pid, True)
    assert [r["pid"] for r in app.records("reload started")] == [pid]
    assert app.reload_runs() == ["ok"]


@pytest.mark.parametrize("upgrading", OUTCOMES, indirect=True)
def test_reload_during_an_upgrade_reloads_whoever_serves_after_it(upgrading: Upgrading) -> None:
    """reload is told an upgrade runs, waits, then reloads the successor (or the old daemon)."""
    app = upgrading.app
    reload = app.watch("reload", "--pidfile", app.pidfile, "--timeout", "60")
    try:
        waiting = (
            f"aiodaemon: an upgrade to successor pid {upgrading.successor} is in progress "
            f"(pid {upgrading.old}); trying again for up to 60 s"
        )
        wait_for(lambda: reload.said(waiting), 30, "reload told an upgrade is in progress")
        assert reload.proc.poll() is None, reload.lines
        assert app.reload_runs() == []  # the old daemon, about to hand over, ran nothing
        serving = _check_upgrade(upgrading, upgrading.release())
        code, _, lines = reload.finish()
    finally:
        reload.kill()
    assert code == 0, lines
    assert lines == [waiting, f"aiodaemon: reloaded (pid {serving})"]
    _reloaded_once_by(app, serving)
    [refused] = app.records("reload refused")
    assert (refused["pid"], refused["successor"]) == (upgrading.old, upgrading.successor)
    assert app.cli("stop", "--pidfile", app.pidfile).returncode == 0


@pytest.mark.parametrize("upgrading", OUTCOMES, indirect=True)
def test_sighup_during_an_upgrade_reloads_whoever_serves_after_it(upgrading: Upgrading) -> None:
    """SIGHUP is held by the old daemon, then run by it or forwarded to its successor."""
    app = upgrading.app
    os.kill(upgrading.old, signal.SIGHUP)
    wait_for(lambda: app.records("reload held until the upgrade ends"), 30, "the held SIGHUP")
    assert app.reload_runs() == []
    serving = _check_upgrade(upgrading, upgrading.release())
    _reloaded_once_by(app, serving)
    if upgrading.outcome == "handed-over":
        [forwarded] = app.records("reload held during the upgrade forwarded")
        assert (forwarded["pid"], forwarded["successor"]) == (upgrading.old, serving)
    else:
        [released] = app.records("held reload released")
        assert released["pid"] == serving
    assert app.cli("stop", "--pidfile", app.pidfile).returncode == 0


@pytest.mark.parametrize("upgrading", ["handed-over"], indirect=True)
def test_sighup_to_the_old_daemon_while_it_drains_reloads_the_successor(
    upgrading: Upgrading,
) -> None:
    """After the hand-over, a SIGHUP sent to the old pid (still draining) reaches the new one."""
    app = upgrading.app
    app.steer("shutdown", "wait")  # the old daemon's shutdown hook holds it after the hand-over
    new = _check_upgrade(upgrading, upgrading.release())
    wait_for(lambda: app.records("shutdown started"), 30, "the old daemon draining")
    os.kill(upgrading.old, signal.SIGHUP)
    [forwarded] = wait_for(lambda: app.records("reload forwarded"), 30, "the forwarded SIGHUP")
    assert (forwarded["pid"], forwarded["successor"]) == (upgrading.old, new)
    _reloaded_once_by(app, new)
    app.steer("shutdown", "")
    app.steer("shutdown-release")
    [exited] = wait_for(lambda: app.records("exit"), 30, "the old daemon's exit")
    assert (exited["pid"], exited["status"]) == (upgrading.old, 0)
    assert app.cli("stop", "--pidfile", app.pidfile).returncode == 0


def test_an_upgrade_during_a_reload_waits_for_it(control_app: ControlApp) -> None:
    """upgrade is told a reload runs, asks again, and starts the new process once it ended."""
    app = control_app
    old = app.start()
    app.steer("reload", "wait")
    reload = app.watch("reload", "--pidfile", app.pidfile, "--timeout", "60")
    upgrade: Watched | None = None
    try:
        wait_for(lambda: app.records("reload started"), 30, "the reload to begin")
        upgrade = app.watch("upgrade", "--pidfile", app.pidfile, "--timeout", "60")
        waiting = (
            f"aiodaemon: cannot upgrade while reloading (pid {old}); trying again for up to 60 s"
        )
        wait_for(lambda: upgrade is not None and upgrade.said(waiting), 30, "upgrade told to wait")
        assert app.records("upgrade started") == []  # nothing spawned while the hooks run
        app.steer("reload-release")
        assert reload.finish()[0] == 0
        code, out, lines = upgrade.finish()
    finally:
        reload.kill()
        if upgrade is not None:
            upgrade.kill()
    assert (code, lines) == (0, [waiting]), lines
    new = int(out)
    assert new != old
    assert app.cli("status", "--pidfile", app.pidfile).returncode == 0
    [started] = app.records("upgrade started")
    assert (started["pid"], started["successor"]) == (old, new)
    assert app.reload_runs() == ["wait"]  # the reload ran once, in the old daemon, to its end
    assert app.cli("stop", "--pidfile", app.pidfile).returncode == 0


def test_an_upgrade_that_outwaits_its_timeout_starts_nothing(control_app: ControlApp) -> None:
    """A reload longer than upgrade's --timeout: exit 1, nothing started, the daemon serves on."""
    app = control_app
    old = app.start()
    app.steer("reload", "wait")
    reload = app.watch("reload", "--pidfile", app.pidfile, "--timeout", "60")
    try:
        wait_for(lambda: app.records("reload started"), 30, "the reload to begin")
        result = app.cli("upgrade", "--pidfile", app.pidfile, "--timeout", "1")
        app.steer("reload-release")
        assert reload.finish()[0] == 0
    finally:
        reload.kill()
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"aiodaemon: cannot upgrade while reloading (pid {old}); trying again for up to 1 s",
        f"aiodaemon: upgrade failed: cannot upgrade while reloading (pid {old}); nothing started",
    ]
    assert app.records("upgrade started") == []
    assert app.records("upgrade refused") == []
    assert aiodaemon.read_pidfile(app.pidfile).running_pid == old
    assert app.cli("stop", "--pidfile", app.pidfile).returncode == 0
