"""The testing kit as a test sees it: errors in full, and an event loop that never stalls."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

import aiodaemon.testing
from aiodaemon.testing import StartFailed, launch

from .support import REPO, clean_env, is_alive

PROGRAM = REPO / "tests" / "programs" / "kit_app.py"
STARTUP_BLOCKS = REPO / "tests" / "programs" / "startup_blocks.py"
MULTI_LINE = "cannot start:\n  reason A\n  reason B"


async def test_start_failed_keeps_a_multi_line_error_whole(tmp_path: Path) -> None:
    """StartFailed.message is the whole error on one line, as `aiodaemon start` prints it."""
    with pytest.raises(StartFailed) as failed:
        async with launch(PROGRAM, env={"KIT_FAIL_START": MULTI_LINE}):
            pytest.fail("the block must not run")
    assert failed.value.message == (
        "startup hook kit_app.start failed: RuntimeError: cannot start: reason A reason B"
    )
    started = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aiodaemon",
        "start",
        "kit_app:main",
        "--pidfile",
        str(tmp_path / "app.pid"),
        "--listen",
        "echo=127.0.0.1:0",
        cwd=PROGRAM.parent,
        env=clean_env({"KIT_FAIL_START": MULTI_LINE}),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(started.communicate(), 60)
    assert started.returncode == failed.value.status == 1
    assert err.decode().strip() == f"aiodaemon: {failed.value.message}"


async def test_status_tells_an_exited_daemon_from_a_killed_one() -> None:
    """status() of a daemon that exited says "stopped"; of one killed (its pidfile left) "dead"."""
    async with launch(PROGRAM, listen={"echo": "127.0.0.1:0"}) as daemon:
        assert await daemon.stop() == 0
        assert (await daemon.status())["state"] == "stopped"
    async with launch(PROGRAM, listen={"echo": "127.0.0.1:0"}) as daemon:
        daemon.signal(signal.SIGKILL)
        assert await daemon.wait() == -signal.SIGKILL
        assert (await daemon.status())["state"] == "dead"


async def test_a_slow_stop_does_not_stall_the_tests_event_loop() -> None:
    """While a daemon takes 3 s to stop, other tasks of the test keep running."""
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.05)

    task = asyncio.create_task(ticker())
    try:
        async with launch(
            PROGRAM, listen={"echo": "127.0.0.1:0"}, env={"KIT_SLOW_STOP": "3"}
        ) as daemon:
            assert (await daemon.status())["state"] == "running"
            await daemon.wait_for_record("ready")
            leaving = time.monotonic()
        left = time.monotonic()
    finally:
        task.cancel()
    assert not is_alive(daemon.pid)
    assert daemon.returncode == 0
    assert left - leaving >= 2.5, "the daemon's shutdown hook takes 3 s"
    during = [t for t in ticks if leaving <= t <= left]
    gaps = [b - a for a, b in itertools.pairwise(during)]
    assert len(during) > 10
    # A stop that blocked the loop would leave one gap as long as the stop
    # itself; half of it is a bound no scheduler delay comes near.
    assert max(gaps) < (left - leaving) / 2, f"the loop stalled for {max(gaps):.2f} s"


async def test_a_failed_start_leaves_the_tests_own_descriptors_watched() -> None:
    """After StartFailed, a socket the test opens next is still watched by its loop.

    The kit's notify socket is closed by then and its number is the next one
    free: a wait on it left pending would unwatch the test's socket (on Python
    3.12, the pidfd of ``asyncio.create_subprocess_exec``, whose wait then hangs).
    """
    with pytest.raises(StartFailed):
        async with launch(PROGRAM, env={"KIT_FAIL_START": "no"}):
            pytest.fail("the block must not run")
    loop = asyncio.get_running_loop()
    ours, peer = socket.socketpair()
    with ours, peer:
        readable: asyncio.Future[None] = loop.create_future()
        loop.add_reader(ours, readable.set_result, None)
        try:
            peer.send(b"x")
            await asyncio.wait_for(readable, 10)
        finally:
            loop.remove_reader(ours)


async def test_a_temporary_directory_too_deep_for_a_unix_socket_still_launches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under a TMPDIR whose paths exceed sun_path, launch() starts, reloads and stops."""
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    async with launch(PROGRAM, listen={"echo": "127.0.0.1:0"}) as daemon:
        assert daemon.directory.parent == deep
        assert len(bytes(daemon.pidfile) + b".ctl") > 107  # the control socket too
        await daemon.reload()
        assert (await daemon.status())["pid"] == daemon.pid
        assert await daemon.stop() == 0
    assert not daemon.directory.exists()


async def test_a_start_blocking_the_loop_fails_with_the_daemons_own_words(tmp_path: Path) -> None:
    """A startup hook blocking the loop: StartFailed with the daemon's reason; the daemon is gone.

    The kit waited 10 s past ``start_timeout``, then 10 s more after a SIGTERM
    the blocked loop could not read, and said only its own "not ready after
    S s". The daemon's log says why a moment after ``start_timeout``: the kit
    kills it then (its own forced exit is ``shutdown_timeout``, 30 s, away).
    """
    record = tmp_path / "record.txt"
    (tmp_path / "record.txt.block").touch()  # startup_blocks blocks while it exists
    with pytest.raises(StartFailed) as failed:
        async with launch(
            STARTUP_BLOCKS, env={"AIODAEMON_TEST_RECORD": str(record)}, start_timeout=0.5
        ):
            pytest.fail("the block must not run")
    assert failed.value.message == "not ready after 0.5 s, event loop blocked"
    assert failed.value.status is None  # killed: it could not stop
    (line,) = record.read_text().splitlines()
    assert line.startswith("blocking ")
    assert not is_alive(int(line.split()[1]))


async def test_a_daemon_too_stuck_to_say_why_fails_naming_its_start_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No word from the blocked daemon (log_level critical): the kit's "not ready after S s"."""
    # The kit's grace beyond start_timeout, and before SIGKILL, shortened to keep this fast.
    monkeypatch.setattr(aiodaemon.testing, "STOP_GRACE", 1.0)
    with pytest.raises(StartFailed) as failed:
        async with launch(
            PROGRAM, env={"KIT_BLOCK_START": "1"}, start_timeout=0.5, log_level="critical"
        ):
            pytest.fail("the block must not run")
    assert failed.value.message == "not ready after 0.5 s"
    assert failed.value.status is None


async def test_a_failed_start_with_a_stderr_file_says_the_daemons_error(tmp_path: Path) -> None:
    """With stderr= a file the daemon moves its stderr to, StartFailed still has its error."""
    errors = tmp_path / "errors.txt"
    errors.write_text("aiodaemon: startup failed: RuntimeError: an earlier run\n")
    with pytest.raises(StartFailed) as failed:
        async with launch(PROGRAM, env={"KIT_FAIL_START": "no database"}, stderr=errors):
            pytest.fail("the block must not run")
    assert failed.value.message == "startup hook kit_app.start failed: RuntimeError: no database"
    assert "an earlier run" not in failed.value.stderr
    assert "Traceback" in failed.value.stderr


@pytest.mark.parametrize(
    ("cwd", "env", "error"),
    [("missing", None, FileNotFoundError), (None, {"KIT_NUMBER": 5}, TypeError)],
    ids=["missing-cwd", "env-not-str"],
)
async def test_a_launch_that_cannot_start_the_process_leaves_no_socket_open(
    tmp_path: Path, cwd: str | None, env: Any, error: type[Exception]
) -> None:
    """Popen refused (a missing cwd, an env value not a str): the kit's notify socket is closed."""
    before = _open_sockets()
    with pytest.raises(error) as failed:
        async with launch(PROGRAM, cwd=None if cwd is None else tmp_path / cwd, env=env):
            pytest.fail("the block must not run")
    # The traceback held in ``failed`` keeps the kit's frames (and what they
    # hold) alive: a socket left open is still open here, not collected.
    assert failed.traceback
    assert _open_sockets() == before


def _open_sockets() -> set[str]:
    """The socket inodes this process holds open."""
    fds = Path("/proc/self/fd")
    targets = set()
    for fd in fds.iterdir():
        with contextlib.suppress(FileNotFoundError):
            targets.add(os.readlink(fd))
    return {target for target in targets if target.startswith("socket:")}


@pytest.mark.parametrize("value", [float("nan"), -20.0], ids=["nan", "minus-20"])
async def test_a_start_timeout_the_daemon_refuses_fails_with_its_error(value: float) -> None:
    """``start_timeout`` NaN or far below 0: StartFailed with the daemon's refusal, exit 2.

    The kit once waited ``start_timeout`` + its grace for readiness itself: no
    time at all for these, so it killed the daemon before it could say why
    ("not ready after nan s"), or failed on a uvloop test loop with
    ``ValueError: cannot convert float NaN to integer``.
    """
    with pytest.raises(StartFailed) as failed:
        async with launch(PROGRAM, start_timeout=value):
            pytest.fail("the block must not run")
    assert failed.value.status == 2
    assert failed.value.message.startswith("start_timeout: "), failed.value.message


@pytest.mark.parametrize("method", ["wait", "stop", "wait_for_record"])
async def test_a_nan_timeout_is_refused_clearly(method: str) -> None:
    """``timeout=nan``: a ValueError naming it, the daemon untouched.

    NaN once waited for ever on asyncio's loop (no comparison with it is
    true), and failed on uvloop's with ``cannot convert float NaN to integer``.
    """
    nan = float("nan")
    async with launch(PROGRAM, listen={"echo": "127.0.0.1:0"}) as daemon:
        calls: dict[str, Callable[[], Awaitable[object]]] = {
            "wait": lambda: daemon.wait(nan),
            "stop": lambda: daemon.stop(nan),
            "wait_for_record": lambda: daemon.wait_for_record("never", timeout=nan),
        }
        refused = rf"^{method}\(\): timeout must be a number of seconds"
        with pytest.raises(ValueError, match=refused):
            await asyncio.wait_for(calls[method](), 30)
        assert daemon.returncode is None
        assert is_alive(daemon.pid)
