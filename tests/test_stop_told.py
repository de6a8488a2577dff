"""`aiodaemon stop` says how the daemon ended when that was not a graceful end.

The command is not the daemon's parent: before, a shutdown forced past
`shutdown_timeout` (its hooks cut short) read `stopped (pid N)`, exactly as a
graceful one. The daemon now tells the stop request's connection its exit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from aiodaemon._prefork._pidns import PID_NAMESPACE

from .support import AIODAEMON, PROGRAMS, aiodaemon_cli, clean_env, wait_for, wait_gone

APP = """
import asyncio, os, pathlib, time
import aiodaemon

@aiodaemon.on_shutdown
async def flush() -> None:
    marker = pathlib.Path(os.environ["HOOK_MARKER"])
    marker.write_text("flushing")
    if os.environ.get("HOOK_BLOCKS"):
        time.sleep(3600)  # sync code: the loop answers nobody until the exit
    if os.environ.get("HOOK_HANGS"):
        await asyncio.sleep(3600)

async def main(ctx: aiodaemon.Context) -> None:
    await ctx.wait_stopping()
"""


def _start(
    tmp_path: Path, *extra: str, hangs: bool, timeout: str = "30", blocks: bool = False
) -> tuple[int, Path, dict[str, str]]:
    (tmp_path / "app.py").write_text(APP)
    pidfile = tmp_path / "app.pid"
    env = {"HOOK_MARKER": str(tmp_path / "hook"), **({"HOOK_HANGS": "1"} if hangs else {})}
    if blocks:
        env["HOOK_BLOCKS"] = "1"
    started = aiodaemon_cli(
        "start", "app:main", "--pidfile", pidfile, "--shutdown-timeout", timeout,
        "--log-file", tmp_path / "log", *extra, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    return int(started.stdout), pidfile, env


def _stop(pidfile: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return aiodaemon_cli("stop", "--pidfile", pidfile, env=env)


def test_a_graceful_stop_says_stopped(tmp_path: Path) -> None:
    pid, pidfile, env = _start(tmp_path, hangs=False)
    stopped = _stop(pidfile, env)
    assert (stopped.returncode, stopped.stderr) == (0, f"aiodaemon: stopped (pid {pid})\n")
    assert (tmp_path / "hook").read_text() == "flushing"


def test_a_stop_forced_past_the_shutdown_timeout_says_so(tmp_path: Path) -> None:
    pid, pidfile, env = _start(tmp_path, hangs=True, timeout="1")
    stopped = _stop(pidfile, env)
    # Still 0 (the daemon is gone), but not the word of a graceful end.
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stderr == (
        f"aiodaemon: stopped (pid {pid}); it exited with status 4:"
        " forced exit (shutdown took longer than 1.0s)\n"
    )
    assert not pidfile.exists()


def test_a_daemon_without_a_control_socket_tells_the_stop_that_signalled_it(
    tmp_path: Path,
) -> None:
    """--no-control: `stop` sends SIGTERM under its claim, and hears the exit there."""
    pid, pidfile, env = _start(tmp_path, "--no-control", hangs=True, timeout="1")
    stopped = _stop(pidfile, env)
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stderr == (
        f"aiodaemon: stopped (pid {pid}); it exited with status 4:"
        " forced exit (shutdown took longer than 1.0s)\n"
    )
    pid, pidfile, env = _start(tmp_path, "--no-control", hangs=False)
    stopped = _stop(pidfile, env)
    assert (stopped.returncode, stopped.stderr) == (0, f"aiodaemon: stopped (pid {pid})\n")


def test_a_second_stop_signal_during_a_stop_is_told_to_it(tmp_path: Path) -> None:
    pid, pidfile, env = _start(tmp_path, hangs=True)
    stopping = subprocess.Popen(
        [str(AIODAEMON), "stop", "--pidfile", str(pidfile)],
        env=clean_env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for((tmp_path / "hook").exists, what="the shutdown hook to run")
        # The first joins the stop under way; the second (not the same one
        # again, which within 50 ms would count as one request) forces the exit.
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: "already stopping" in (tmp_path / "log").read_text(), what="the join")
        os.kill(pid, signal.SIGINT)
        wait_gone(pid)
        _, err = stopping.communicate(timeout=60)
    finally:
        if stopping.poll() is None:
            stopping.kill()
            stopping.communicate()
    assert stopping.returncode == 0, err
    assert err == (
        f"aiodaemon: stopped (pid {pid}); it exited with status 130:"
        " forced exit (second stop signal during shutdown: SIGINT)\n"
    )


def _popen_stop(pidfile: Path, env: dict[str, str], stderr: Path) -> subprocess.Popen[str]:
    with stderr.open("w") as err:
        return subprocess.Popen(
            [str(AIODAEMON), "stop", "--pidfile", str(pidfile)],
            env=clean_env(env), stdout=subprocess.DEVNULL, stderr=err, text=True,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip


def _finish(stopping: subprocess.Popen[str], pid: int) -> None:
    """Wait for ``pid`` to be gone and ``stopping`` to end (killed if it does not)."""
    try:
        wait_gone(pid)
        stopping.wait(timeout=60)
    finally:
        if stopping.poll() is None:
            stopping.kill()
            stopping.wait()


def _watching(pid: int) -> bool:
    """Whether a `stop` listens where the stopping ``pid`` tells its exit (/proc/net/unix)."""
    table = Path("/proc/net/unix").read_text(errors="surrogateescape")
    return any(
        f"@aiodaemon-stop-{PID_NAMESPACE}-{pid}-" in line and "-watch" in line
        for line in table.splitlines()
    )


FORCED_BY_SIGINT = "forced exit (second stop signal during shutdown: SIGINT)"


def test_a_stop_of_a_daemon_stopping_with_its_loop_held_up_hears_how_it_ended(
    tmp_path: Path,
) -> None:
    """A `kill -TERM`, then `stop` while a shutdown hook blocks the loop: its request is never
    answered, yet it says the forced exit's status as the `stop` that began it would."""
    pid, pidfile, env = _start(tmp_path, hangs=True, blocks=True)
    os.kill(pid, signal.SIGTERM)
    wait_for((tmp_path / "hook").exists, what="the shutdown hook to run")
    stopping = _popen_stop(pidfile, env, tmp_path / "stop.err")
    try:
        wait_for(lambda: _watching(pid), what="the stop to listen for the exit")
    finally:
        os.kill(pid, signal.SIGINT)
        _finish(stopping, pid)
    err = (tmp_path / "stop.err").read_text()
    assert stopping.returncode == 0, err
    assert err.splitlines()[-1] == (
        f"aiodaemon: stopped (pid {pid}); it exited with status 130: {FORCED_BY_SIGINT}"
    )


def test_a_second_stop_without_a_control_socket_hears_how_it_ended(tmp_path: Path) -> None:
    """--no-control: the `stop` that finds the SIGTERM claimed by another waits, and is told
    the exit status as the one that signalled is."""
    pid, pidfile, env = _start(tmp_path, "--no-control", hangs=True)
    first = _popen_stop(pidfile, env, tmp_path / "first.err")
    second: subprocess.Popen[str] | None = None
    try:
        wait_for((tmp_path / "hook").exists, what="the shutdown hook to run")
        second = _popen_stop(pidfile, env, tmp_path / "second.err")
        wait_for(
            lambda: "waiting" in (tmp_path / "second.err").read_text(), what="the second to wait"
        )
    finally:
        os.kill(pid, signal.SIGINT)
        _finish(first, pid)
        if second is not None:
            _finish(second, pid)
    told = f"aiodaemon: stopped (pid {pid}); it exited with status 130: {FORCED_BY_SIGINT}\n"
    assert (first.returncode, (tmp_path / "first.err").read_text()) == (0, told)
    assert second is not None
    assert second.returncode == 0
    assert (tmp_path / "second.err").read_text() == (
        f"aiodaemon: already stopping (pid {pid}; `aiodaemon stop` pid {first.pid} sent"
        f" SIGTERM); waiting\n{told}"
    )


def test_what_the_daemon_tells_is_checked_and_printed_safely(tmp_path: Path) -> None:
    """The line comes from the daemon's account: a status no process has is ignored, and
    an escape sequence in the reason is shown escaped, on the one line of root's terminal."""
    pidfile = tmp_path / "app.pid"
    with subprocess.Popen(
        [sys.executable, str(PROGRAMS / "fake_control.py"), str(pidfile), "told"],
        stdout=subprocess.PIPE, text=True,
    ) as fake:  # fmt: skip
        try:
            assert fake.stdout is not None
            assert fake.stdout.readline() == "ready\n"
            stopped = _stop(pidfile, {})
        finally:
            fake.kill()
    assert stopped.returncode == 0, stopped.stderr
    (line,) = stopped.stderr.splitlines()
    assert line.startswith(f"aiodaemon: stopped (pid {fake.pid}); it exited with status 4: cut ")
    assert "\x1b" not in line


def test_the_daemon_names_the_stop_claim_as_the_command_does() -> None:
    """The daemon builds the claim's name itself (it imports nothing once running): the same."""
    from aiodaemon._cli._stop_claim import watch_names
    from aiodaemon._prefork._procfs import signal_claim
    from aiodaemon._run import _exit_notice

    _exit_notice.expect_stop_claim()
    try:
        claim = signal_claim("stop", os.getpid())
        assert claim is not None
        # The claim first, then the watches of the `stop` commands that only wait.
        assert list(_exit_notice._exit_names) == [claim, *watch_names(os.getpid())]
    finally:
        _exit_notice._exit_names = ()
