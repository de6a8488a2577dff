"""A stop signal during a shutdown begun otherwise joins it; only a second one forces the exit.

The shutdown is begun by ``main`` returning or raising, ``ctx.request_shutdown``
or ``aiodaemon stop``, and its hook waits for the test's go-ahead: then ONE
SIGTERM arrives, as systemd's ``KillMode=control-group`` or a pod deletion
sends it (audit-race R8).
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from .support import AIODAEMON, ForegroundDaemon, clean_env, past_duplicate_window, wait_for

#: Long enough that no deadline but the test's own ends the hook.
OPTIONS = {"shutdown_timeout": 60}


def start(
    tmp_path: Path, daemons: list[ForegroundDaemon], how: str, *extra: str, **options: object
) -> tuple[ForegroundDaemon, Path]:
    """Start ``joined_stop`` ending its main ``how``; return it and its release file."""
    release = tmp_path / "release"
    d = ForegroundDaemon(
        tmp_path, "joined_stop", str(release), how, *extra, **{**OPTIONS, **options}
    )
    daemons.append(d)
    return d, release


def hook_begun(d: ForegroundDaemon) -> None:
    """Wait until the shutdown hook runs."""
    wait_for(lambda: "hook begin" in d.recorded(), what="the shutdown hook")


@pytest.mark.parametrize(("how", "status"), [("return", 0), ("raise", 1), ("request", 5)])
def test_one_sigterm_joins_the_shutdown_main_began(
    tmp_path: Path, daemons: list[ForegroundDaemon], how: str, status: int
) -> None:
    """main returned / raised / requested 5, then one SIGTERM: the hook ends, status unchanged."""
    d, release = start(tmp_path, daemons, how)
    hook_begun(d)
    d.signal(signal.SIGTERM)
    d.wait_event("already stopping")
    release.touch()
    assert d.wait() == status
    assert d.recorded()[-1] == "hook end"
    assert d.events()[-1] == "exit"
    assert "forced exit" not in d.stderr()


def test_one_sigterm_joins_aiodaemon_stop(tmp_path: Path, daemons: list[ForegroundDaemon]) -> None:
    """`aiodaemon stop`, then one SIGTERM during its shutdown: graceful exit 0, stop says so."""
    pidfile = tmp_path / "d.pid"
    d, release = start(tmp_path, daemons, "wait", pidfile=str(pidfile))
    wait_for(lambda: "main begin" in d.recorded(), what="main")
    stop = subprocess.Popen(
        [str(AIODAEMON), "stop", "--pidfile", str(pidfile)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env=clean_env(),
    )
    try:
        hook_begun(d)
        d.signal(signal.SIGTERM)
        d.wait_event("already stopping")
        release.touch()
        assert d.wait() == 0
        out, _ = stop.communicate(timeout=30)
    finally:
        stop.kill()
        stop.wait()
    assert stop.returncode == 0, out
    assert d.recorded()[-1] == "hook end"
    assert not pidfile.exists()
    assert "forced exit" not in d.stderr()


def test_the_second_stop_signal_forces(tmp_path: Path, daemons: list[ForegroundDaemon]) -> None:
    """main returned, one SIGTERM joined: the next SIGTERM exits at once with 143."""
    d, _ = start(tmp_path, daemons, "return")
    hook_begun(d)
    d.signal(signal.SIGTERM)
    d.wait_event("already stopping")
    past_duplicate_window()
    d.signal(signal.SIGTERM)
    assert d.wait() == 128 + signal.SIGTERM
    assert "forced exit (second stop signal during shutdown: SIGTERM), status 143" in d.stderr()
    assert "hook end" not in d.recorded()


def test_signals_are_counted_while_the_loop_is_blocked(
    tmp_path: Path, daemons: list[ForegroundDaemon]
) -> None:
    """A hook blocking the loop after main returned: INT joins, then TERM forces 143 at once."""
    d, _ = start(tmp_path, daemons, "return", "block")
    hook_begun(d)
    # INT first: pending together, the kernel delivers the lower number first.
    d.signal(signal.SIGINT)
    d.signal(signal.SIGTERM)
    assert d.wait() == 128 + signal.SIGTERM
    assert "forced exit (second stop signal during shutdown: SIGTERM), status 143" in d.stderr()
    assert "hook end" not in d.recorded()


def test_one_signal_while_the_loop_is_blocked_is_logged_later(
    tmp_path: Path, daemons: list[ForegroundDaemon]
) -> None:
    """A hook blocking the loop after main returned, one SIGTERM: it joins, is logged, exit 0."""
    d, release = start(tmp_path, daemons, "return", "block")
    hook_begun(d)
    d.signal(signal.SIGTERM)
    release.touch()
    assert d.wait() == 0
    events = d.events()
    assert events.index("signal received") < events.index("already stopping")
    assert events[-1] == "exit"
    assert d.recorded()[-1] == "hook end"


@pytest.mark.parametrize("uvloop", [True, False], ids=["uvloop", "asyncio"])
def test_a_stop_signal_unread_when_the_shutdown_begins_joins_it(
    tmp_path: Path, daemons: list[ForegroundDaemon], uvloop: bool
) -> None:
    """SIGTERM unread when main requests the shutdown: logged as joined, the next one forces 143."""
    d, _ = start(tmp_path, daemons, "signalled-request", uvloop=uvloop)
    hook_begun(d)
    d.wait_event("already stopping")
    assert [r.get("signal") for r in d.lines() if r["event"] == "signal received"] == ["SIGTERM"]
    past_duplicate_window()
    d.signal(signal.SIGTERM)
    assert d.wait() == 128 + signal.SIGTERM
    assert "forced exit (second stop signal during shutdown: SIGTERM), status 143" in d.stderr()
    assert "hook end" not in d.recorded()
