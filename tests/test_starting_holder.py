"""Commands meeting a daemon that is still starting: they wait for, or say, what it came to.

A second ``start`` (or ``run``) waits for the first daemon's verdict: ready, it is
"already running"; failed, nothing runs, and it starts its own. An ``upgrade``
waiting for a daemon to be ready, whose start then fails, says the daemon
exited, not that it ignores SIGUSR2.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .control_support import ControlApp, Watched, open_control_app
from .support import AIODAEMON, PROGRAMS, REPO, aiodaemon_cli, is_alive, wait_for, wait_gone

#: tests/programs/paused: pauses a command where $AIODAEMON_TEST_PAUSE_AT says.
PAUSED = REPO / "tests" / "programs" / "paused"
#: What the first daemon's start says when its startup hook ("wait-fail") is released.
FAILED = (
    "aiodaemon: startup hook control_app.warm_up failed: RuntimeError: startup refused by the test"
)


@pytest.fixture
def app() -> Iterator[ControlApp]:
    """A control_app directory; whatever holds its pidfile at the end is killed."""
    with open_control_app() as app:
        yield app


def _start_args(app: ControlApp, command: str = "start", *extra: str) -> list[str | Path]:
    return [command, "control_app:main", "--pidfile", app.pidfile, *extra,
            "--log-file", app.log, "--shutdown-timeout", "10"]  # fmt: skip


def _in_startup_hook(app: ControlApp) -> int:
    """The pid of the daemon once ``status`` shows it waiting in its startup hook."""
    found: list[int] = []

    def waiting() -> bool:
        status = app.cli("status", "--pidfile", app.pidfile)
        match = re.match(r"starting \(pid (\d+),", status.stdout)
        if match is None or "waiting on startup hook control_app.warm_up" not in status.stdout:
            return False
        found.append(int(match.group(1)))
        return True

    wait_for(waiting, 30, "the first daemon in its startup hook")
    return found[-1]


def _first_start(app: ControlApp, mode: str) -> tuple[Watched, int]:
    """``start`` in the background, its startup hook held in ``mode``; the command and the pid."""
    app.steer("startup", mode)
    first = app.watch(*_start_args(app))
    try:
        return first, _in_startup_hook(app)
    except BaseException:
        first.kill()
        raise


def _waiting(pid: int) -> str:
    return f"aiodaemon: pid {pid} is starting; waiting for it to be ready"


def _assert_started_its_own(pid: int, code: int, out: str, lines: list[str]) -> int:
    """The waiting command saw ``pid`` stop unready and started a daemon of its own: its pid."""
    assert code == 0, lines
    assert lines == [
        _waiting(pid),
        f"aiodaemon: pid {pid} stopped before it was ready; starting once it has exited",
    ]
    new = int(out)
    assert new != pid
    assert is_alive(new)
    return new


def _a_third_fails_while_the_second_waits(app: ControlApp, second: Watched, go: Path) -> None:
    """A third start holds the pidfile; ``second``, resumed by ``go``, waits for it.

    Not "already running": it sees the third fail and starts a daemon of its
    own, which ``status`` finds running.
    """
    third, holder = _first_start(app, "wait-fail")
    try:
        app.steer("startup", "")  # read by the third's hook already: the second's daemon passes
        go.touch()
        wait_for(lambda: second.said(_waiting(holder)) or second.proc.poll() is not None, 30,
                 "the second start to wait for the third")  # fmt: skip
        assert second.proc.poll() is None, second.lines  # not "already running" at once
        app.steer("release")
        assert third.finish() == (1, "", [FAILED])
        code, out, lines = second.finish()
    finally:
        third.kill()
    new = _assert_started_its_own(holder, code, out, lines)
    status = app.cli("status", "--pidfile", app.pidfile)
    assert status.stdout.splitlines()[0] == f"running (pid {new}, pidfile {app.pidfile})"


@pytest.mark.parametrize(("command", "code"), [("start", 0), ("run", 3)])
def test_start_while_the_first_is_starting_waits_and_then_says_already_running(
    app: ControlApp, command: str, code: int
) -> None:
    """The first daemon becomes ready: "already running" only then (start 0, run 3)."""
    first, pid = _first_start(app, "wait")
    second = None
    try:
        second = app.watch(*_start_args(app, command))
        wait_for(lambda: second.said(_waiting(pid)) or second.proc.poll() is not None, 30,
                 "the second command")  # fmt: skip
        assert second.proc.poll() is None, second.lines  # not "already running" at once
        app.steer("release")
        first_code, first_out, _ = first.finish()
        result = second.finish()
    finally:
        first.kill()
        if second is not None:
            second.kill()
    assert (first_code, first_out) == (0, f"{pid}\n")
    already = f"aiodaemon: already running (pid {pid}, pidfile {app.pidfile})"
    assert result == (code, "", [_waiting(pid), already])
    assert len(app.records("starting")) == 1  # the second started nothing
    status = app.cli("status", "--pidfile", app.pidfile)
    assert status.stdout.splitlines()[0] == f"running (pid {pid}, pidfile {app.pidfile})"


def test_start_while_the_first_is_starting_starts_its_own_when_that_start_fails(
    app: ControlApp,
) -> None:
    """The first daemon's start fails: nothing runs, so the second start starts its daemon."""
    first, pid = _first_start(app, "wait-fail")
    second = None
    try:
        app.steer("startup", "")  # read by the first hook already: the second daemon's passes
        second = app.watch(*_start_args(app))
        wait_for(lambda: second.said(_waiting(pid)) or second.proc.poll() is not None, 30,
                 "the second start")  # fmt: skip
        assert second.proc.poll() is None, second.lines
        app.steer("release")
        assert first.finish() == (1, "", [FAILED])
        code, out, lines = second.finish()
    finally:
        first.kill()
        if second is not None:
            second.kill()
    new = _assert_started_its_own(pid, code, out, lines)
    status = app.cli("status", "--pidfile", app.pidfile)
    assert status.stdout.splitlines()[0] == f"running (pid {new}, pidfile {app.pidfile})"


def test_start_while_the_first_outlasts_its_own_start_timeout_starts_nothing(
    app: ControlApp,
) -> None:
    """Still starting after the second start's --start-timeout: exit 1, said, nothing started."""
    first, pid = _first_start(app, "wait")
    try:
        result = app.cli(*_start_args(app, "start", "--start-timeout", "0.5"))
        app.steer("release")
        assert first.finish()[:2] == (0, f"{pid}\n")
    finally:
        first.kill()
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.splitlines() == [
        _waiting(pid),
        f"aiodaemon: pid {pid} still starting after 0.5 s; nothing started",
    ]
    assert len(app.records("starting")) == 1


def _paused_upgrade(app: ControlApp, pause: Path, at: str) -> Watched:
    """``aiodaemon upgrade``, paused before a connection to the control socket (``at``)."""
    pause.mkdir()
    env = {
        **app.env(),
        "PYTHONPATH": os.pathsep.join([str(PAUSED), str(REPO)]),
        "AIODAEMON_TEST_PAUSE": str(pause),
        "AIODAEMON_TEST_PAUSE_AT": at,
    }
    argv = [str(AIODAEMON), "upgrade", "--pidfile", str(app.pidfile), "--timeout", "30"]
    return Watched(argv, env)


@pytest.mark.parametrize(
    ("at", "said"),
    [
        # Told "cannot upgrade while starting", then paused before asking again.
        ("control-again", ["cannot upgrade while starting (pid {pid}); trying again for up to 30 s",
                           "pid {pid} exited before it was ready; nothing upgraded"]),
        # Paused before its first question: the daemon it verified is gone by then.
        ("control", ["pid {pid} exited; nothing upgraded"]),
    ],
    ids=["asked-again", "first-question"],
)  # fmt: skip
def test_upgrade_of_a_daemon_whose_start_fails_meanwhile_says_it_exited(
    app: ControlApp, tmp_path: Path, at: str, said: list[str]
) -> None:
    """Not "ignores SIGUSR2; use restart": the daemon's start failed and it exited. Exit 1."""
    first, pid = _first_start(app, "wait-fail")
    pause = tmp_path / "pause"
    upgrade = _paused_upgrade(app, pause, at)
    try:
        wait_for((pause / "paused").exists, 30, "the upgrade to pause")
        app.steer("release")
        assert first.finish() == (1, "", [FAILED])
        wait_gone(pid)
        (pause / "go").touch()
        result = upgrade.finish()
    finally:
        first.kill()
        upgrade.kill()
    assert result == (1, "", [f"aiodaemon: {line.format(pid=pid)}" for line in said])
    status = app.cli("status", "--pidfile", app.pidfile)
    assert status.returncode == 3, status.stdout


def test_reload_of_a_daemon_whose_start_fails_meanwhile_says_it_stopped(app: ControlApp) -> None:
    """The same race for ``reload``: its request waits for the start, which fails. Exit 1."""
    first, pid = _first_start(app, "wait-fail")
    reload = app.watch("reload", "--pidfile", app.pidfile, "--timeout", "30")
    try:
        wait_for(lambda: app.records("reload queued"), 30, "the reload queued")
        app.steer("release")
        assert first.finish() == (1, "", [FAILED])
        result = reload.finish()
    finally:
        first.kill()
        reload.kill()
    assert result == (
        1,
        "",
        [f"aiodaemon: pid {pid} is stopping; nothing reloaded"],
    )
    assert app.cli("status", "--pidfile", app.pidfile).returncode == 3


def _paused_start(app: ControlApp, pause: Path, command: str, at: str = "open:.pid:2") -> Watched:
    """``start`` (or ``run``) paused at step ``at`` (see tests/programs/paused).

    By default once its check found no daemon, before it takes the lock: the
    check reads the pidfile (absent), the second opening is the lock's.
    """
    pause.mkdir()
    env = {
        **app.env(),
        "PYTHONPATH": os.pathsep.join([str(PAUSED), str(REPO)]),
        "AIODAEMON_TEST_PAUSE": str(pause),
        "AIODAEMON_TEST_PAUSE_AT": at,
    }
    return Watched([str(AIODAEMON), *map(str, _start_args(app, command))], env)


@pytest.mark.parametrize(
    ("mode", "command", "code"),
    [("wait-fail", "start", 0), ("wait", "start", 0), ("wait", "run", 3)],
    ids=["winner-fails", "winner-ready", "winner-ready-run"],
)
def test_start_that_loses_the_race_for_the_lock_waits_for_the_winner(
    app: ControlApp, tmp_path: Path, mode: str, command: str, code: int
) -> None:
    """A start losing the lock to one still starting waits for it: failed, it starts its own."""
    pause = tmp_path / "pause"
    second = _paused_start(app, pause, command)
    first = None
    try:
        wait_for((pause / "paused").exists, 30, "the second command to pause")
        first, pid = _first_start(app, mode)
        app.steer("startup", "")  # read by the first hook already: the second daemon's passes
        (pause / "go").touch()
        wait_for(lambda: second.said(_waiting(pid)) or second.proc.poll() is not None, 30,
                 "the second command")  # fmt: skip
        assert second.proc.poll() is None, second.lines  # not "already running" at once
        app.steer("release")
        first_result = first.finish()
        result = second.finish()
    finally:
        second.kill()
        if first is not None:
            first.kill()
    if mode == "wait":
        assert first_result == (0, f"{pid}\n", [])
        already = f"aiodaemon: already running (pid {pid}, pidfile {app.pidfile})"
        assert result == (code, "", [_waiting(pid), already])
        assert len(app.records("starting")) == 1  # the second started nothing
        return
    assert first_result == (1, "", [FAILED])
    assert result[0] == code, result
    assert result[2] == [
        _waiting(pid),
        f"aiodaemon: pid {pid} stopped before it was ready; starting once it has exited",
    ]
    new = int(result[1])
    assert new != pid
    assert is_alive(new)
    status = app.cli("status", "--pidfile", app.pidfile)
    assert status.stdout.splitlines()[0] == f"running (pid {new}, pidfile {app.pidfile})"


def _start_paused_at_its_second_question(app: ControlApp, pause: Path, command: str) -> Watched:
    """``start`` (or ``run``) that said it waits, paused before its second status question.

    Its first connection is the check for a stopping daemon, its second the
    first question of the wait ("starting": it says it waits); the third is
    the next question, about a tenth of a second later.
    """
    return _paused_start(app, pause, command, at="control:3")


@pytest.mark.parametrize(
    ("held", "command", "code"),
    [(True, "start", 0), (True, "run", 3), (False, "start", 0), (False, "run", 3)],
    ids=["stopping-start", "stopping-run", "gone-start", "gone-run"],
)
def test_a_daemon_ready_and_stopped_between_two_questions_is_not_started_over(
    app: ControlApp, tmp_path: Path, held: bool, command: str, code: int
) -> None:
    """Ready, then stopped before the next question: "already running", and the stop stands.

    ``held``: its shutdown hook holds it stopping when the question comes;
    else it is gone by then. Either way the waiting command says what a
    question a moment earlier would have said (start 0, run 3), adds what came
    after, and starts no daemon over the stop.
    """
    first, pid = _first_start(app, "wait")
    pause = tmp_path / "pause"
    second = _start_paused_at_its_second_question(app, pause, command)
    stop = None
    try:
        wait_for((pause / "paused").exists, 30, "the second command to pause")
        assert second.lines == [_waiting(pid)]
        app.steer("shutdown", "wait" if held else "")
        app.steer("release")
        assert first.finish()[:2] == (0, f"{pid}\n")  # ready
        stop = app.watch("stop", "--pidfile", app.pidfile)
        if held:
            wait_for(lambda: app.records("stop requested"), 30, "the stop to begin")
        else:
            assert stop.finish()[0] == 0
            wait_gone(pid)
        (pause / "go").touch()
        wait_for(lambda: second.proc.poll() is not None or len(second.lines) > 1, 30,
                 "the second command's verdict")  # fmt: skip
        app.steer("shutdown-release")
        result = second.finish()
        assert stop.finish()[0] == 0
    finally:
        first.kill()
        second.kill()
        if stop is not None:
            stop.kill()
    after = "begun stopping" if held else "stopped"
    already = f"aiodaemon: already running (pid {pid}, pidfile {app.pidfile}); it has since {after}"
    assert result == (code, "", [_waiting(pid), already])
    assert len(app.records("starting")) == 1  # nothing started over the stop
    assert app.cli("status", "--pidfile", app.pidfile).returncode == 3


def test_a_daemon_stopped_before_it_was_ready_and_gone_by_the_next_question(
    app: ControlApp, tmp_path: Path
) -> None:
    """Stopped while starting, gone by the next question: nothing runs, so the start starts."""
    first, pid = _first_start(app, "wait")
    pause = tmp_path / "pause"
    second = _start_paused_at_its_second_question(app, pause, "start")
    try:
        wait_for((pause / "paused").exists, 30, "the second command to pause")
        app.steer("startup", "")  # read by the first hook already: the second daemon's passes
        assert app.cli("stop", "--pidfile", app.pidfile).returncode == 0
        assert first.finish()[0] == 1
        (pause / "go").touch()
        code, out, lines = second.finish()
    finally:
        first.kill()
        second.kill()
    _assert_started_its_own(pid, code, out, lines)


def _asked(app: ControlApp, request: bytes = b'{"v": 1, "cmd": "status"}') -> dict[str, object]:
    """The daemon's own answer to ``request`` (``status``) on its control socket."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(20)
        conn.connect(str(app.control))
        conn.sendall(request + b"\n")
        answer: dict[str, object] = json.loads(conn.makefile("rb").readline())
    return answer


@pytest.mark.parametrize("ready", [True, False], ids=["after-ready", "while-starting"])
def test_the_status_answer_says_whether_the_daemon_was_ready_while_it_stops(
    app: ControlApp, ready: bool
) -> None:
    """``ready``: false while starting, true once ready, and kept while the daemon stops."""
    app.steer("shutdown", "wait")
    first, pid = _first_start(app, "wait")
    try:
        assert [_asked(app)[key] for key in ("state", "ready")] == ["starting", False]
        if ready:
            app.steer("release")
            assert first.finish()[:2] == (0, f"{pid}\n")
            assert [_asked(app)[key] for key in ("state", "ready")] == ["running", True]
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: _asked(app)["state"] == "stopping", 30, "the daemon stopping")
        assert _asked(app)["ready"] is ready
        app.steer("shutdown-release")
        wait_gone(pid)
    finally:
        first.kill()


def test_an_upgrade_refused_while_starting_says_so_in_a_field(app: ControlApp) -> None:
    """The "not now" of a daemon still starting carries its state, beside the same words."""
    first, pid = _first_start(app, "wait")
    try:
        answer = _asked(app, b'{"v": 1, "cmd": "upgrade", "timeout": 1}')
        app.steer("release")
        assert first.finish()[:2] == (0, f"{pid}\n")
    finally:
        first.kill()
    assert answer == {
        "v": 1,
        "ok": False,
        "error": "cannot upgrade while starting",
        "refused": True,
        "transient": True,
        "state": "starting",
    }


def test_an_upgrade_goes_by_the_refusal_s_state_not_its_words(tmp_path: Path) -> None:
    """Refused as "starting" (in other words), then gone: it exited before it was ready. Exit 1."""
    pidfile = tmp_path / "app.pid"
    with subprocess.Popen(
        [sys.executable, str(PROGRAMS / "fake_control.py"), str(pidfile), "starting"],
        stdout=subprocess.PIPE, text=True,
    ) as fake:  # fmt: skip
        try:
            assert fake.stdout is not None
            assert fake.stdout.readline() == "ready\n"
            result = aiodaemon_cli("upgrade", "--pidfile", pidfile, "--timeout", "30")
        finally:
            fake.kill()
    pid = fake.pid
    assert (result.returncode, result.stdout, result.stderr.splitlines()) == (1, "", [
        f"aiodaemon: not before my startup hooks are done (pid {pid}); trying again for up to 30 s",
        f"aiodaemon: pid {pid} exited before it was ready; nothing upgraded",
    ])  # fmt: skip


@pytest.mark.parametrize(("command", "code"), [("start", 0), ("run", 3)])
def test_a_start_that_failed_and_exited_before_the_first_question_is_not_already_running(
    app: ControlApp, tmp_path: Path, command: str, code: int
) -> None:
    """The holder fails and is gone before the waiting command's first question: it starts.

    Its control socket, there when the command looked, is gone by its first
    question: "already running" (start 0, run 3) with nothing running, as
    racing starts whose daemons all failed said.
    """
    first, pid = _first_start(app, "wait-fail")
    pause = tmp_path / "pause"
    # Its first connection is the check for a stopping daemon, its second the
    # first question of the wait for a starting one.
    second = _paused_start(app, pause, command, at="control:2")
    try:
        wait_for((pause / "paused").exists, 30, "the second command to pause")
        app.steer("startup", "")  # read by the first hook already: the second daemon's passes
        app.steer("release")
        assert first.finish() == (1, "", [FAILED])
        wait_gone(pid)
        (pause / "go").touch()
        if command == "run":
            wait_for(lambda: app.records("ready") or second.proc.poll() is not None, 30,
                     "the second command's daemon to be ready")  # fmt: skip
            second.proc.send_signal(signal.SIGTERM)
        result = second.finish()
    finally:
        first.kill()
        second.kill()
    if command == "run":
        # Its own daemon ran in the foreground until the SIGTERM: a graceful stop.
        assert result == (0, "", [])
        return
    assert (result[0], result[2]) == (0, [])
    new = int(result[1])
    assert new != pid
    assert is_alive(new)
    status = app.cli("status", "--pidfile", app.pidfile)
    assert status.stdout.splitlines()[0] == f"running (pid {new}, pidfile {app.pidfile})"


def test_already_running_names_the_pid_written_while_it_waited(
    app: ControlApp, tmp_path: Path
) -> None:
    """Found with its pid not yet written, the daemon is named by its pid once it is ready."""
    first_pause, second_pause = tmp_path / "first", tmp_path / "second"
    # Paused with the pidfile locked, its pid not written yet (the log opens in between).
    first = _paused_start(app, first_pause, "start", at="open:.jsonl:1")
    second = None
    try:
        wait_for((first_pause / "paused").exists, 30, "the first start to pause")
        # Paused once it found the daemon ("pid not yet written"), before it looks again.
        second = _paused_start(app, second_pause, "start", at="open:.pid:2")
        wait_for((second_pause / "paused").exists, 30, "the second start to pause")
        (first_pause / "go").touch()
        code, out, _ = first.finish()
        assert code == 0
        pid = int(out)
        (second_pause / "go").touch()
        result = second.finish()
    finally:
        first.kill()
        if second is not None:
            second.kill()
    assert result == (0, "", [f"aiodaemon: already running (pid {pid}, pidfile {app.pidfile})"])
    assert len(app.records("starting")) == 1


def test_a_start_that_failed_before_the_first_question_is_followed_by_the_next_holder(
    app: ControlApp, tmp_path: Path
) -> None:
    """The holder failed, and another start holds the pidfile by the first question: waited for.

    The waiting command verified the first daemon; by its first question that
    one's start failed, and a third start holds the pidfile, still starting.
    It said "already running" of it (exit 0), which then failed too: nothing
    ran. It waits for the new holder as for the first, and starts its own.
    """
    first, pid = _first_start(app, "wait-fail")
    pause = tmp_path / "pause"
    second = _paused_start(app, pause, "start", at="control:2")  # its first question of the wait
    try:
        wait_for((pause / "paused").exists, 30, "the second start to pause")
        app.steer("release")
        assert first.finish() == (1, "", [FAILED])
        wait_gone(pid)
        (app.dir / "release").unlink()
        _a_third_fails_while_the_second_waits(app, second, pause / "go")
    finally:
        first.kill()
        second.kill()


def test_a_holder_stopping_before_the_first_question_is_waited_for_to_its_exit(
    app: ControlApp, tmp_path: Path
) -> None:
    """The holder stops before the first question and gives its pidfile back: waited for.

    As in racing starts whose daemons all failed: the waiting start found the
    holder stopping, then looked for a stopping daemon again once its pidfile
    was gone, the process still on its way out, saw none and said "already
    running" (exit 0), with nothing running a moment later.
    """
    app.steer("shutdown", "wait")
    app.steer("exit", "wait")
    pid = app.start()
    pause = tmp_path / "pause"
    # Paused once it found the holder not stopping and read its pid (the
    # pidfile's 4th opening verifies it), then at its next look for a stopping
    # daemon (its 6th), which follows a "stopping" verdict.
    second = _paused_start(app, pause, "start", at="open:.pid:4+open:.pid:6")
    stopping = f"aiodaemon: pid {pid} is stopping; starting once it has exited"
    try:
        wait_for((pause / "paused").exists, 30, "the second start to pause")
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: app.cli("status", "--pidfile", app.pidfile).stdout.startswith("stopping"),
                 30, "the daemon to stop")  # fmt: skip
        (pause / "go").touch()
        looked = (pause / "paused.2").exists
        wait_for(lambda: looked() or second.said(stopping) or second.proc.poll() is not None, 30,
                 "the second start to look again")  # fmt: skip
        app.steer("shutdown-release")
        wait_for(lambda: not app.pidfile.exists(), 30, "the daemon to remove its pidfile")
        assert is_alive(pid)  # held among its last steps
        app.steer("exit", "")  # the second start's daemon is not held
        (pause / "go.2").touch()
        app.steer("exit-release")
        wait_gone(pid)
        code, out, lines = second.finish()
    finally:
        app.steer("exit-release")
        second.kill()
    assert (code, lines) == (0, [stopping])
    new = int(out)
    assert new != pid
    assert is_alive(new)
    status = app.cli("status", "--pidfile", app.pidfile)
    assert status.stdout.splitlines()[0] == f"running (pid {new}, pidfile {app.pidfile})"


def test_a_start_losing_many_races_to_failing_starts_starts_its_own(
    app: ControlApp, tmp_path: Path
) -> None:
    """Five lost races for the lock, each to a start that then fails: it waits for each.

    A crowd of racing starts whose daemons all fail: on its fifth lost race a
    start said "already running" (exit 0) of the winner, still starting, which
    then failed too: nothing ran.
    """
    races = 5
    pause = tmp_path / "pause"
    # Paused before each opening of the pidfile for its lock.
    points = "+".join(f"lock:{n}" for n in range(1, races + 2))
    second = _paused_start(app, pause, "start", at=points)
    try:
        for n in range(1, races + 1):
            suffix = "" if n == 1 else f".{n}"
            paused = (pause / f"paused{suffix}").exists
            wait_for(lambda: paused() or second.proc.poll() is not None, 30,  # noqa: B023
                     f"the start's lock opening {n}")  # fmt: skip
            assert second.proc.poll() is None, second.lines
            first, pid = _first_start(app, "wait-fail")  # takes the lock first
            waiting = _waiting(pid)
            try:
                (pause / f"go{suffix}").touch()
                wait_for(lambda: second.said(waiting) or second.proc.poll() is not None,  # noqa: B023
                         30, "the start to wait for the winner")  # fmt: skip
                assert second.proc.poll() is None, second.lines
                app.steer("release")
                assert first.finish() == (1, "", [FAILED])
                wait_gone(pid)
            finally:
                first.kill()
            (app.dir / "release").unlink()
        app.steer("startup", "")  # its own daemon's start passes
        (pause / f"go.{races + 1}").touch()
        code, out, lines = second.finish()
    finally:
        second.kill()
    assert code == 0, lines
    assert not any("already running" in line for line in lines)
    new = int(out)
    assert is_alive(new)
    status = app.cli("status", "--pidfile", app.pidfile)
    assert status.stdout.splitlines()[0] == f"running (pid {new}, pidfile {app.pidfile})"


def test_a_holder_gone_before_the_wait_read_its_pid_is_not_said_of_the_next(
    app: ControlApp, tmp_path: Path
) -> None:
    """The holder is gone by the wait's first look, another start's since: that one is waited for.

    The wait found no holder to ask ("it cannot say"), and the line named the
    pidfile's holder read again: "already running" (exit 0) of another start,
    still starting, which then failed: nothing ran.
    """
    pid = app.start()
    pause = tmp_path / "pause"
    # Paused as the wait reads the holder's pid (the pidfile's 3rd opening),
    # then as the command reads the holder again to name it (its 4th).
    second = _paused_start(app, pause, "start", at="open:.pid:3+open:.pid:4")
    try:
        wait_for((pause / "paused").exists, 30, "the second start to pause")
        os.kill(pid, signal.SIGTERM)
        wait_gone(pid)
        (pause / "go").touch()
        wait_for(lambda: (pause / "paused.2").exists() or second.proc.poll() is not None, 30,
                 "the second start to read the holder again")  # fmt: skip
        _a_third_fails_while_the_second_waits(app, second, pause / "go.2")
    finally:
        second.kill()
