"""The commands of a suspended daemon: stopped by SIGSTOP, or in a frozen cgroup.

A frozen cgroup (``docker pause``, ``systemctl freeze``: cgroup v2's
``cgroup.freeze``, v1's freezer) was not recognised: its processes show state
``D`` (v1) or ``S`` (v2), not SIGSTOP's ``T``. ``reload`` said "its event
loop is held up", ``status`` and ``upgrade`` only that it did not answer,
and ``stop`` sent a SIGCONT that thaws nothing, then SIGKILL: under v1 that
waits for the thaw too ("did not exit after SIGKILL", exit 1, its pidfile
and control socket left behind after the thaw); under v2 it cut the
shutdown. Each command now names the frozen cgroup and how to thaw it, and
``stop`` does not kill a frozen daemon: its SIGTERM waits for the thaw.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .control_support import ControlApp, open_control_app
from .support import AIODAEMON, clean_env, is_alive, proc_state, wait_for, wait_gone


class Suspender:
    """One way of suspending a process, and what the commands say of it."""

    def __init__(self, kind: str, cgroup: Path | None, own: Path | None) -> None:
        self.kind = kind
        #: the frozen cgroup (None for SIGSTOP) and this process's own, where it ends.
        self.cgroup = cgroup
        self.own = own
        self.pids: list[int] = []

    @property
    def described(self) -> str:
        """What the commands say of a process suspended this way."""
        if self.cgroup is None:
            return "suspended (SIGSTOP)"
        return f"suspended (its cgroup {self.cgroup} is frozen: thaw it with {self.thaw_command})"

    @property
    def thaw_command(self) -> str:
        assert self.cgroup is not None
        if self.kind == "v1":
            return f"echo THAWED > {self.cgroup}/freezer.state"
        return f"echo 0 > {self.cgroup}/cgroup.freeze"

    def suspend(self, pid: int) -> None:
        """Suspend ``pid``, and wait until it is."""
        self.pids.append(pid)
        if self.cgroup is None:
            os.kill(pid, signal.SIGSTOP)
            wait_for(lambda: proc_state(pid) == "T", 10, "the daemon to be stopped")
            return
        (self.cgroup / "cgroup.procs").write_text(str(pid))
        if self.kind == "v1":
            (self.cgroup / "freezer.state").write_text("FROZEN")
            wait_for(lambda: _read(self.cgroup, "freezer.state") == "FROZEN", 10, "the freeze")
        else:
            (self.cgroup / "cgroup.freeze").write_text("1")
            wait_for(lambda: "frozen 1" in _read(self.cgroup, "cgroup.events"), 10, "the freeze")

    def resume(self) -> None:
        """Run every process suspended here again (a thaw, or SIGCONT)."""
        if self.cgroup is None:
            for pid in self.pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
        elif self.kind == "v1":
            (self.cgroup / "freezer.state").write_text("THAWED")
        else:
            (self.cgroup / "cgroup.freeze").write_text("0")


def _read(directory: Path | None, name: str) -> str:
    assert directory is not None
    return (directory / name).read_text().strip()


def _own_cgroup(fstype: str, controller: str | None) -> Path | None:
    """This process's cgroup in the first hierarchy of ``fstype`` (with ``controller``)."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            separator = fields.index("-", 6)
            kind, options = fields[separator + 1], fields[separator + 3].split(",")
            if (
                kind == fstype
                and fields[3] == "/"
                and (controller is None or controller in options)
            ):
                mount = Path(fields[4])
                break
        else:
            return None
    with open("/proc/self/cgroup") as f:
        for line in f:
            hierarchy, controllers, path = line.rstrip("\n").split(":", 2)
            if (controller is None and hierarchy == "0") or (
                controller is not None and controller in controllers.split(",")
            ):
                return mount / path.lstrip("/")
    return None


@contextlib.contextmanager
def _suspending(kind: str) -> Iterator[Suspender]:
    """SIGSTOP, or a new cgroup (v2, or v1's freezer) that freezes what is moved into it."""
    if kind == "sigstop":
        stopper = Suspender(kind, None, None)
        try:
            yield stopper
        finally:
            stopper.resume()
        return
    own = _own_cgroup("cgroup2", None) if kind == "v2" else _own_cgroup("cgroup", "freezer")
    # Under this process's own: a cgroup with processes in it enables no
    # controller below it, so root may move a process into a child of it.
    frozen = None if own is None else own / f"aiodaemon-frozen-{os.getpid()}"
    try:
        if own is None or frozen is None:
            raise OSError(f"no cgroup {kind} {'freezer ' if kind == 'v1' else ''}hierarchy mounted")
        frozen.mkdir()
    except OSError as exc:
        reason = f"needs a cgroup {kind} freezer that root may use: {exc}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        raise pytest.skip.Exception(reason) from None
    freezer = Suspender(kind, frozen, own)
    try:
        yield freezer
    finally:
        freezer.resume()
        for pid in (frozen / "cgroup.procs").read_text().split():
            with contextlib.suppress(ProcessLookupError):
                (own / "cgroup.procs").write_text(pid)
        frozen.rmdir()


@pytest.fixture(params=["sigstop", "v2", "v1"])
def suspender(request: pytest.FixtureRequest) -> Iterator[Suspender]:
    """A daemon suspended with SIGSTOP, or frozen in a cgroup v2 or v1 freezer."""
    with _suspending(request.param) as suspending:
        yield suspending


@pytest.fixture(params=["v2", "v1"])
def freezer(request: pytest.FixtureRequest) -> Iterator[Suspender]:
    """A cgroup v2 or v1 freezer."""
    with _suspending(request.param) as freezing:
        yield freezing


def test_status_reload_and_upgrade_of_a_suspended_daemon_say_so(suspender: Suspender) -> None:
    """Each says it is suspended (a frozen cgroup named, with its thaw); the reload runs then."""
    with open_control_app() as app:
        pid = app.start()
        said = suspender.described
        until = "it is continued" if suspender.cgroup is None else "it is thawed"
        try:
            suspender.suspend(pid)
            status = app.cli("status", "--pidfile", app.pidfile, "--timeout", "1")
            reload = app.cli("reload", "--pidfile", app.pidfile, "--timeout", "1")
            upgrade = app.cli("upgrade", "--pidfile", app.pidfile, "--timeout", "5")
            state = proc_state(pid)
        finally:
            suspender.resume()
        assert state == {"sigstop": "T", "v2": "S", "v1": "D"}[suspender.kind]
        is_said = f"pid {pid} is {said}"
        assert (status.returncode, status.stdout, status.stderr) == (
            4,
            f"unknown ({is_said}; it answers once {until})\n",
            "",  # said once, on stdout
        )
        assert (reload.returncode, reload.stderr) == (
            1,
            f"aiodaemon: {is_said}: the reload asked runs to its end once {until}\n",
        )
        assert (upgrade.returncode, upgrade.stdout, upgrade.stderr) == (
            1,
            "",
            f"aiodaemon: upgrade failed: pid {pid} is {said}; nothing started\n",
        )
        wait_for(lambda: app.reload_runs() == ["ok"], 30, "the reload, run again")
        assert app.records("upgrade started") == []
        assert app.cli("stop", "--pidfile", app.pidfile).returncode == 0


def _frozen_daemon(app: ControlApp, freezer: Suspender) -> int:
    """Start the daemon and freeze its cgroup; its pid."""
    pid = app.start()
    freezer.suspend(pid)
    return pid


def test_stop_of_a_frozen_daemon_leaves_it_to_stop_once_thawed(freezer: Suspender) -> None:
    """Not killed: exit 1 saying so at --timeout; thawed, it stops gracefully, leaving nothing."""
    with open_control_app() as app:
        pid = _frozen_daemon(app, freezer)
        try:
            stop = app.cli("stop", "--pidfile", app.pidfile, "--timeout", "1")
            alive = is_alive(pid)
        finally:
            freezer.resume()
        assert (stop.returncode, stop.stderr) == (
            1,
            f"aiodaemon: no answer from pid {pid} within 1 s; sending SIGTERM\n"
            f"aiodaemon: pid {pid} is {freezer.described}; it stops once thawed; waiting 1s\n"
            f"aiodaemon: pid {pid} still frozen 1s after SIGTERM; not killed: "
            "it stops once thawed\n",
        )
        assert alive
        wait_gone(pid, 30)
        [end] = app.records("exit")
        assert end["status"] == 0
        assert app.records("shutdown finished")
        assert not app.pidfile.exists()
        assert not app.control.exists()


def test_stop_of_a_frozen_daemon_thawed_while_it_waits_stops_it(freezer: Suspender) -> None:
    """Thawed within --timeout: the stop completes as any other does, exit 0."""
    with open_control_app() as app:
        pid = _frozen_daemon(app, freezer)
        argv = [str(AIODAEMON), "stop", "--pidfile", str(app.pidfile), "--timeout", "60"]
        stop = subprocess.Popen(
            argv, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            wait_for(lambda: _sigterm_pending(pid), 30, "the stop to find it frozen")
        finally:
            freezer.resume()
            _, stderr = stop.communicate(timeout=60)
        assert stop.returncode == 0, stderr
        assert stderr.endswith(f"aiodaemon: stopped (pid {pid})\n")
        assert f"aiodaemon: pid {pid} is {freezer.described}; it stops once thawed;" in stderr
        assert not is_alive(pid)
        [end] = app.records("exit")
        assert end["status"] == 0
        assert not app.pidfile.exists()
        assert not app.control.exists()


def _sigterm_pending(pid: int) -> bool:
    """Whether the stop has sent its SIGTERM: pending in the frozen daemon."""
    with open(f"/proc/{pid}/status") as f:
        pending = next(line for line in f if line.startswith("ShdPnd:"))
    return bool(int(pending.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
