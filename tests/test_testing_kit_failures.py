"""The testing kit's errors as a user's test meets them: a daemon that died, a bad keyword."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from aiodaemon.testing import DaemonProcess, LaunchError, StartFailed, launch

from .support import REPO, clean_env

PROGRAM = REPO / "tests" / "programs" / "kit_app.py"
CRASH = "main failed: RuntimeError: crashed mid-test"


async def crash(daemon: DaemonProcess) -> None:
    """Have the daemon's ``main`` raise, through its ``echo`` socket."""
    host, port = daemon.inet_address("echo")
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"crash\n")
    assert await reader.readline() == b"crash\n"
    writer.close()


async def test_waiting_for_a_record_from_a_daemon_that_died_says_how_it_ended() -> None:
    """wait_for_record fails as soon as the daemon is gone, with its status and error.

    It once waited out its whole timeout, then said only that no record came.
    """
    async with launch(
        PROGRAM, listen={"echo": "127.0.0.1:0"}, env={"KIT_CRASH_ON": "crash"}
    ) as daemon:
        await crash(daemon)
        with pytest.raises(LaunchError) as failed:
            # Far below the record's timeout: the wait ends with the daemon.
            await asyncio.wait_for(daemon.wait_for_record("never", timeout=3600), 60)
        assert (
            str(failed.value)
            == f"no log record matching 'never': the daemon exited (status 1): {CRASH}"
        )
        assert daemon.returncode == 1
        # What it wrote before it went is still found.
        assert (await daemon.wait_for_record("main failed"))["level"] == "error"


async def test_reloading_a_daemon_that_died_says_how_it_ended() -> None:
    """reload() of an exited daemon names its exit and its error, not a missing pidfile."""
    async with launch(
        PROGRAM, listen={"echo": "127.0.0.1:0"}, env={"KIT_CRASH_ON": "crash"}
    ) as daemon:
        await crash(daemon)
        assert await daemon.wait(30) == 1
        with pytest.raises(LaunchError) as failed:
            await daemon.reload()
        assert str(failed.value) == f"reload failed: the daemon exited (status 1): {CRASH}"
        assert (await daemon.status())["state"] == "stopped"


async def test_a_daemon_killed_mid_test_is_said_to_be_killed() -> None:
    """A daemon killed by a signal: the error names the signal."""
    async with launch(PROGRAM, listen={"echo": "127.0.0.1:0"}) as daemon:
        daemon.signal(signal.SIGKILL)
        assert await daemon.wait(30) == -9
        with pytest.raises(
            LaunchError, match=r"^reload failed: the daemon exited \(killed by SIGKILL\)$"
        ):
            await daemon.reload()


async def test_a_daemon_that_handed_over_in_an_upgrade_is_not_gone() -> None:
    """After an upgrade the old daemon exited 0, but the waits and reload() reach the new one."""
    async with launch(PROGRAM, listen={"echo": "127.0.0.1:0"}) as daemon:
        daemon.signal(signal.SIGUSR2)
        assert await daemon.wait(30) == 0
        successor = (await daemon.status())["pid"]
        await daemon.reload()
        reloaded = await daemon.wait_for_record("reloaded")
        assert reloaded["pid"] == successor != daemon.pid


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"start_timeout": 0}, "start_timeout: must be a positive number of seconds: '0'"),
        ({"listen": {"kv": "127.0.0.1:99999"}}, "listen[kv]: port out of range: '127.0.0.1:99999'"),
        ({"umask": 0o7777}, "umask: must be between 0o000 and 0o777, not 0o7777"),
    ],
    ids=["start_timeout", "listen", "umask"],
)
async def test_a_bad_keyword_value_is_named_as_the_keyword(
    options: dict[str, object], message: str
) -> None:
    """launch()'s bad value is reported under its keyword, as run() names it, no --help."""
    with pytest.raises(StartFailed) as failed:
        async with launch(PROGRAM, **options):  # type: ignore[arg-type]
            pytest.fail("the block must not run")
    assert failed.value.message == message
    assert failed.value.status == 2


USER_TESTS = f"""
import pytest

from aiodaemon.testing import launch

pytestmark = pytest.mark.asyncio
PROGRAM = {str(PROGRAM)!r}


async def test_start() -> None:
    async with launch(PROGRAM, env={{"KIT_FAIL_START": "no database"}}):
        pass


async def test_reload() -> None:
    async with launch(PROGRAM, listen={{"echo": "127.0.0.1:0"}}) as daemon:
        daemon.signal(9)
        await daemon.wait(30)
        await daemon.reload()


async def test_record() -> None:
    async with launch(PROGRAM, listen={{"echo": "127.0.0.1:0"}}) as daemon:
        await daemon.wait_for_record("never", timeout=0.01)


async def test_type() -> None:
    async with launch(PROGRAM, umask=True):
        pass
"""


@pytest.mark.timeout(300)
@pytest.mark.parametrize("tb", ["auto", "short"])
def test_a_failing_users_test_shows_its_own_lines_not_the_kits(tmp_path: Path, tb: str) -> None:
    """pytest's failure report shows the test's line and the error, not the kit's frames."""
    (tmp_path / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\nasyncio_default_fixture_loop_scope = "function"\n'
    )
    (tmp_path / "test_user.py").write_text(textwrap.dedent(USER_TESTS))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--tb={tb}"],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    out = result.stdout
    assert "4 failed" in out, out + result.stderr
    for kit_line in (
        "_wait_ready",
        "run_command(",
        "def reload",
        "def wait_for_record",
        "testing.py",
        "contextlib.py",
        "_options.py",
    ):
        assert kit_line not in out, out
    assert "StartFailed: startup hook kit_app.start failed: RuntimeError: no database" in out
    assert "LaunchError: reload failed: the daemon exited (killed by SIGKILL)" in out
    assert "TimeoutError: no log record matching 'never'" in out
    assert "TypeError: launch(): umask must be an int" in out
