"""What each lifecycle state answers to each input, observed from outside.

A control_app daemon is held in one state by a steering file, then sent the
inputs a user has: the CLI commands, signals, health probes.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal

import pytest

from .control_support import ControlApp, Watched
from .serving_support import http_get
from .support import is_alive, read_pid, wait_for


def served_status(app: ControlApp) -> dict[str, object]:
    """``status --json`` once the control socket answers (it is bound before it listens)."""

    def ask() -> dict[str, object] | None:
        result = app.cli("status", "--pidfile", app.pidfile, "--json")
        answer: dict[str, object] = json.loads(result.stdout)
        # Until then: no pidfile yet (3), or the pidfile's word alone (no version).
        return answer if result.returncode == 0 and answer["version"] is not None else None

    return wait_for(ask, 20, "the control socket's answer")


def readyz(app: ControlApp) -> tuple[int, dict[str, object] | None]:
    """``GET /readyz`` on the daemon's unix health socket: status and body."""
    status, body, _ = asyncio.run(http_get(str(app.dir / "health.sock"), "/readyz"))
    return status, body


def test_a_manual_ready_daemon_is_starting_until_it_reports_ready(control_app: ControlApp) -> None:
    """ready="manual", main running but not ready: status and /readyz say starting, no upgrade.

    An upgrade then would hand over from a daemon never ready: its launcher
    said the start failed while the successor ran, and removed the control
    socket the successor serves.
    """
    app = control_app
    app.steer("main", "notify")
    start = app.watch("start", "control_app:main", "--pidfile", app.pidfile, "--log-file", app.log,
                      "--ready", "manual", "--health", f"unix:{app.dir}/health.sock")  # fmt: skip
    try:
        assert served_status(app)["state"] == "starting"
        assert readyz(app) == (503, {"state": "starting"})
        upgrade = app.cli("upgrade", "--pidfile", app.pidfile, "--timeout", "1")
        assert upgrade.returncode == 1
        assert "cannot upgrade while starting" in upgrade.stderr
        assert upgrade.stderr.rstrip().endswith("nothing started"), upgrade.stderr
        assert not app.records("upgrade started")

        app.steer("ready-release")
        code, out, err = start.finish(30)
        assert code == 0, err
        old = int(out)
        assert readyz(app) == (200, {"state": "running"})
        upgrade = app.cli("upgrade", "--pidfile", app.pidfile)
        assert upgrade.returncode == 0, upgrade.stderr
        new = int(upgrade.stdout)
        assert new != old
        status = app.cli("status", "--pidfile", app.pidfile, "--json")
        assert f'"pid": {new}' in status.stdout
        assert app.cli("stop", "--pidfile", app.pidfile).returncode == 0
    finally:
        start.kill()


class Held:
    """What one state answers: status, probes, a reload and an upgrade, after SIGHUP/USR1/USR2."""

    def __init__(
        self,
        status: str,
        readyz: int,
        reload: tuple[int, str],
        upgrade: str,
        setup: dict[str, str],
        extra: tuple[str, ...] = (),
    ) -> None:
        self.status = status
        self.readyz = readyz
        self.reload = reload
        self.upgrade = upgrade
        #: steering files written before the start.
        self.setup = setup
        self.extra = extra


_STOPPING_RELOAD = (1, " is stopping; nothing reloaded")
#: Every state a daemon can be held in from outside, and what it answers there.
HELD = {
    "starting": Held(
        "starting", 503, (1, "still starting after 0.5 s; the reload runs once it is ready"),
        "cannot upgrade while starting", {"startup": "wait"},
    ),
    "reloading": Held(
        "reloading", 200, (1, "still reloading after 0.5 s"),
        "cannot upgrade while reloading", {"reload": "wait"},
    ),
    "draining": Held(
        "stopping", 503, _STOPPING_RELOAD, " is stopping; nothing started", {},
        ("--drain-delay", "60"),
    ),
    "stopping": Held(
        "stopping", 503, _STOPPING_RELOAD, " is stopping; nothing started",
        {"shutdown": "wait"},
    ),
}  # fmt: skip


def livez(app: ControlApp) -> tuple[int, dict[str, object] | None]:
    """``GET /livez`` on the daemon's unix health socket: status and body."""
    status, body, _ = asyncio.run(http_get(str(app.dir / "health.sock"), "/livez"))
    return status, body


def _hold(app: ControlApp, name: str) -> tuple[Watched, int]:
    """``aiodaemon run`` control_app held in the state ``name``: the command and the pid."""
    held = HELD[name]
    for steer, mode in held.setup.items():
        app.steer(steer, mode)
    run = app.watch("run", "control_app:main", "--pidfile", app.pidfile, "--log-file", app.log,
                    "--health", f"unix:{app.dir}/health.sock", "--shutdown-timeout", "10",
                    *held.extra)  # fmt: skip
    served_status(app)
    pid = read_pid(app.pidfile)
    if name == "reloading":
        wait_for(lambda: app.records("ready"), 20, "ready")
        os.kill(pid, signal.SIGHUP)
        wait_for(lambda: app.records("reload started"), 20, "the reload")
    elif name in ("draining", "stopping"):
        wait_for(lambda: app.records("ready"), 20, "ready")
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: app.records("shutdown started"), 20, "the shutdown")
    return run, pid


@pytest.mark.parametrize("name", list(HELD))
def test_each_state_answers_every_input_truthfully(control_app: ControlApp, name: str) -> None:
    """Held in a state: status, probes, reload and upgrade say so; HUP/USR1/USR2 break nothing.

    Then the state ends as its own rules say: a reload asked during startup or
    a reload runs once after it; none runs once stopping; a second SIGTERM
    during the drain forces the exit (143, files removed); a second ``stop``
    waits for the shutdown hooks and the exit stays 0.
    """
    app, held = control_app, HELD[name]
    run, pid = _hold(app, name)
    try:
        assert served_status(app)["state"] == held.status
        assert livez(app) == (200, {"state": held.status})
        assert readyz(app) == (held.readyz, {"state": held.status})
        for sig in (signal.SIGUSR1, signal.SIGHUP, signal.SIGUSR2):
            os.kill(pid, sig)
        wait_for(lambda: app.records("upgrade refused"), 10, "SIGUSR2 refused")
        reload = app.cli("reload", "--pidfile", app.pidfile, "--timeout", "0.5")
        assert reload.returncode == held.reload[0]
        assert held.reload[1] in reload.stderr
        upgrade = app.cli("upgrade", "--pidfile", app.pidfile, "--timeout", "0.5")
        assert upgrade.returncode == 1
        assert held.upgrade in upgrade.stderr
        assert upgrade.stderr.rstrip().endswith("nothing started"), upgrade.stderr
        assert not app.records("upgrade started")
        assert is_alive(pid)

        if name in ("starting", "reloading"):
            app.steer("release" if name == "starting" else "reload-release")
            # The first run, and one for all that was asked meanwhile.
            runs = 1 if name == "starting" else 2
            wait_for(lambda: len(app.records("reload finished")) == runs, 20, "the reloads")
            stop = app.cli("stop", "--pidfile", app.pidfile)
            assert stop.returncode == 0, stop.stderr
            code, _, _ = run.finish(30)
            assert code == 0
            assert len(app.reload_runs()) == runs
        elif name == "draining":
            os.kill(pid, signal.SIGTERM)
            code, _, err = run.finish(30)
            assert code == 128 + signal.SIGTERM
            assert any("forced exit (second stop signal during shutdown: SIGTERM)" in line
                       for line in err)  # fmt: skip
            assert sorted(p.name for p in app.dir.glob("*.p*")) == []
            assert not (app.dir / "health.sock").exists()
        else:
            second = app.watch("stop", "--pidfile", app.pidfile)
            try:
                wait_for(lambda: second.said("already stopping"), 20, "the second stop")
                app.steer("shutdown-release")
                assert second.finish(30)[0] == 0
            finally:
                second.kill()
            code, _, _ = run.finish(30)
            assert code == 0
            assert [r["status"] for r in app.records("exit")] == [0]
        if name in ("draining", "stopping"):
            assert app.reload_runs() == []
    finally:
        run.kill()


@pytest.mark.parametrize("name", list(HELD))
def test_a_sighup_in_each_state_reopens_the_log_at_once(control_app: ControlApp, name: str) -> None:
    """The log renamed (a rotation), then SIGHUP: a new file at once, whether hooks run or not.

    Starting, reloading or stopping, the reload's hooks wait (or never run):
    the reopen waited with them, and the records went to the rotated file.
    """
    app = control_app
    run, pid = _hold(app, name)
    try:
        rotated = app.log.with_name("log.jsonl.1")
        app.log.rename(rotated)
        os.kill(pid, signal.SIGHUP)
        wait_for(app.log.exists, 10, "the reopened log file")
        assert is_alive(pid)
        # No reload hook ran for it: only the one under way, when reloading.
        assert app.reload_runs() == (["wait"] if name == "reloading" else [])
    finally:
        run.kill()


def test_a_reload_failing_after_a_stop_began_says_stopping(control_app: ControlApp) -> None:
    """A reload hook raising after a SIGTERM: `reload` says the daemon is stopping.

    It said "still running", of a daemon on its way out.
    """
    app = control_app
    app.steer("reload", "wait-fail:bad port")
    app.steer("shutdown", "wait")
    pid = app.start()
    reload = app.watch("reload", "--pidfile", app.pidfile)
    try:
        wait_for(lambda: app.records("reload started"), 20, "the reload")
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: app.records("shutdown started"), 20, "the shutdown")
        app.steer("reload-release")
        code, _, err = reload.finish(30)
    finally:
        reload.kill()
    assert code == 1
    assert err == [
        f"aiodaemon: reload hook control_app.reload_config failed (pid {pid}, stopping): "
        "ValueError: bad port"
    ]
    app.steer("shutdown-release")
    wait_for(lambda: app.records("exit"), 20, "the exit")
