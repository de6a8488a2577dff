"""aiodaemon.testing: the kit users test their daemons with, tested from outside."""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from aiodaemon.testing import DaemonProcess, ReloadFailed, StartFailed, launch

from .support import (
    REPO,
    clean_env,
    is_alive,
    kill_quietly,
    proc_state,
    python_snippets,
    require_tool,
    wait_for,
)

PROGRAM = REPO / "tests" / "programs" / "kit_app.py"


def command_line(pid: int) -> list[str]:
    """The argv of ``pid``."""
    return Path(f"/proc/{pid}/cmdline").read_text().split("\0")


def inet(daemon: DaemonProcess, name: str) -> tuple[str, int]:
    """The TCP address of the daemon's socket ``name``."""
    address = daemon.address(name)
    assert isinstance(address, tuple), address
    return address


async def echo(daemon: DaemonProcess, line: bytes) -> bytes:
    """Send one line to the daemon's ``echo`` socket and read the answer."""
    host, port = inet(daemon, "echo")
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(line)
    answer = await reader.readline()
    writer.close()
    return answer


async def test_launch_yields_a_ready_daemon_with_real_addresses() -> None:
    """The handle names the real process, its real port for port 0, and its log records."""
    async with launch(PROGRAM, listen={"echo": "127.0.0.1:0"}) as daemon:
        assert is_alive(daemon.pid)
        assert command_line(daemon.pid)[1:4] == ["-m", "aiodaemon", "run"]
        host, port = inet(daemon, "echo")
        assert (host, port != 0) == ("127.0.0.1", True)
        assert await echo(daemon, b"ping\n") == b"ping\n"
        ready = await daemon.wait_for_record("ready")
        assert ready["pid"] == daemon.pid
        assert (await daemon.status())["state"] == "running"
        assert await daemon.stop() == 0
        assert daemon.returncode == 0
    assert not is_alive(daemon.pid)
    assert not daemon.directory.exists()


async def test_module_targets_and_options_reach_the_daemon(tmp_path: Path) -> None:
    """A module:attr target runs with the options given, e.g. its own pidfile and log level."""
    pidfile = tmp_path / "app.pid"
    async with launch(
        "kit_app:main",
        cwd=PROGRAM.parent,
        pidfile=pidfile,
        log_level="warning",
        listen={"echo": "127.0.0.1:0"},
        env={"KIT_RELOAD_ERROR": str(tmp_path / "error")},
    ) as daemon:
        assert pidfile.read_text() == f"{daemon.pid}\n"
        (tmp_path / "error").write_text("logged at error level")
        daemon.signal(signal.SIGHUP)
        failed = await daemon.wait_for_record(lambda r: r["level"] == "error")
        assert "logged at error level" in str(failed)
        assert await daemon.stop() == 0
        assert [r for r in daemon.records() if r["level"] in ("debug", "info")] == []


async def test_a_failing_start_raises_start_failed_with_the_daemons_error() -> None:
    """StartFailed carries the startup hook's error and the exit status; nothing is left."""
    with pytest.raises(StartFailed) as failed:
        async with launch(
            PROGRAM, listen={"echo": "127.0.0.1:0"}, env={"KIT_FAIL_START": "no database"}
        ):
            pytest.fail("the block must not run")
    assert "RuntimeError: no database" in failed.value.message
    assert failed.value.status == 1
    assert "Traceback" in failed.value.stderr


async def test_a_daemon_gone_right_after_ready_raises_start_failed() -> None:
    """main fails at once: launch() cannot hand the daemon over, and says why it ended."""
    with pytest.raises(StartFailed) as failed:
        async with launch(
            PROGRAM, listen={"echo": "127.0.0.1:0"}, env={"KIT_FAIL_MAIN": "lost the database"}
        ):
            pytest.fail("the block must not run")
    assert failed.value.message == (
        "the daemon exited right after it was ready: main failed: RuntimeError: lost the database"
    )
    assert failed.value.status == 1


async def test_a_bad_target_raises_start_failed() -> None:
    """An unknown module is the CLI's usage error, exit 2."""
    with pytest.raises(StartFailed, match="no module named 'no_such_module'") as failed:
        async with launch("no_such_module:main"):
            pass
    assert failed.value.status == 2


async def test_options_the_kit_cannot_pass_are_refused() -> None:
    """detach= makes no sense for a daemon the kit runs in the foreground."""
    with pytest.raises(ValueError, match="detach"):
        async with launch(PROGRAM, detach=True):
            pass


async def test_reload_reports_the_failing_hooks_error(tmp_path: Path) -> None:
    """reload() returns when the hooks succeeded and raises ReloadFailed with the hook's error."""
    error = tmp_path / "error"
    error.write_text("")
    async with launch(
        PROGRAM, listen={"echo": "127.0.0.1:0"}, env={"KIT_RELOAD_ERROR": str(error)}
    ) as daemon:
        await daemon.reload()
        error.write_text("bad config")
        with pytest.raises(ReloadFailed, match=r"^ValueError: bad config$"):
            await daemon.reload()
        assert await echo(daemon, b"still here\n") == b"still here\n"


async def test_leaving_the_block_on_a_failure_leaves_no_process() -> None:
    """A test that fails inside the block still ends the daemon and its children."""
    pids: list[int] = []

    async def failing_test() -> None:
        async with launch(
            PROGRAM, listen={"echo": "127.0.0.1:0"}, env={"KIT_CHILD": "1"}
        ) as daemon:
            pids.extend([daemon.pid, (await daemon.wait_for_record("child started"))["child"]])
            raise AssertionError("the user's assertion")

    with pytest.raises(AssertionError, match="the user's assertion"):
        await failing_test()
    assert len(pids) == 2
    wait_for(lambda: not any(is_alive(pid) for pid in pids), 30, "the daemon and its child")


async def test_a_daemon_that_ignores_sigterm_is_killed() -> None:
    """stop() sends SIGKILL after its grace period and reports it."""
    async with launch(
        PROGRAM, listen={"echo": "127.0.0.1:0"}, env={"KIT_IGNORE_TERM": "1"}
    ) as daemon:
        assert await daemon.stop(timeout=0.5) == -signal.SIGKILL
    assert not is_alive(daemon.pid)


async def test_a_suspended_daemon_stops_gracefully() -> None:
    """A daemon a test suspended (SIGSTOP) and left so: stop() continues it, status 0.

    Its SIGTERM stayed pending in a process that never ran: stop() waited its
    whole grace period and SIGKILLed it (-9), its shutdown hooks never run.
    """
    async with launch(PROGRAM, listen={"echo": "127.0.0.1:0"}) as daemon:
        daemon.signal(signal.SIGSTOP)
        wait_for(lambda: proc_state(daemon.pid) == "T", 10, "the daemon to be stopped")
        assert await daemon.stop(timeout=30) == 0
        assert [r["event"] for r in daemon.records()][-1] == "exit"


@pytest.mark.parametrize("how", ["stop()", "leaving the block"])
async def test_a_daemon_suspended_a_moment_ago_stops_gracefully(how: str) -> None:
    """SIGSTOP and at once stop() (or the end of the block): continued all the same.

    The SIGSTOP is not acted on yet when stop() looks, so /proc does not say
    the daemon is stopped; a kit that continued only a daemon /proc shows
    stopped left it so, and SIGKILLed it at the end of its grace (-9).
    """
    for _ in range(3):
        async with launch(PROGRAM, listen={"echo": "127.0.0.1:0"}) as daemon:
            daemon.signal(signal.SIGSTOP)
            if how == "stop()":
                assert await daemon.stop(timeout=30) == 0
        assert await daemon.wait() == 0
        assert [r["event"] for r in daemon.records()][-1] == "exit"


# Two Python processes start under whatever load the machine has: generous deadlines.
@pytest.mark.timeout(300)
def test_ctrl_c_during_a_test_leaves_no_process(tmp_path: Path) -> None:
    """Interrupting a pytest run with SIGINT stops its daemon and the daemon's child."""
    pids_file = tmp_path / "pids"
    case = REPO / "tests" / "programs" / "kit_interrupt_case.py"
    # SIGINT at its default, as under a person's terminal: a suite started in the
    # background by a non-interactive shell ignores it, and exec keeps that.
    default_int = [require_tool("env"), "--default-signal=INT"]
    runner = subprocess.Popen(
        [*default_int, sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(case)],
        cwd=REPO,
        env=clean_env({"KIT_PIDS": str(pids_file)}),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        text = wait_for(lambda: pids_file.exists() and pids_file.read_text(), 120, "the pids")
        pids = [int(p) for p in text.split()]
        assert all(is_alive(pid) for pid in pids)
        runner.send_signal(signal.SIGINT)
        output = runner.communicate(timeout=120)[0].decode()
    finally:
        runner.kill()
        runner.wait()
    assert "KeyboardInterrupt" in output
    wait_for(lambda: not any(is_alive(pid) for pid in pids), 30, "the daemon and its child")


def _killed_runner(tmp_path: Path, **mode: str) -> list[int]:
    """Run tests/programs/kit_killed_runner.py (``mode``: its KIT_* variables) to its
    ``os._exit(7)``, no cleanup: the pids it wrote (daemons, their children, a helper)."""
    pids_file = tmp_path / "pids"
    runner = subprocess.run(
        [sys.executable, str(REPO / "tests" / "programs" / "kit_killed_runner.py")],
        # Its temporary directory under tmp_path: nobody is left to remove it.
        env=clean_env({"KIT_PIDS": str(pids_file), "TMPDIR": str(tmp_path), **mode}),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert runner.returncode == 7, runner.stderr
    return [int(pid) for pid in pids_file.read_text().split()]


def test_a_test_process_killed_hard_leaves_no_daemon(tmp_path: Path) -> None:
    """A runner that dies without any cleanup (os._exit, SIGKILL) takes its daemon along.

    The daemon's own children too: only the daemon had a parent-death signal,
    and its children outlived the run.
    """
    pids = _killed_runner(tmp_path)
    assert len(pids) == 2
    try:
        wait_for(lambda: not any(map(is_alive, pids)), 30, "the orphaned daemon and its child")
    finally:
        for pid in pids:
            kill_quietly(pid)


def test_a_test_process_killed_hard_after_a_fork_leaves_no_daemon(tmp_path: Path) -> None:
    """A runner that forked a helper outliving it (a multiprocessing worker) before dying:
    the daemon and its child still go at once, not when the helper ends.

    The helper inherited the runner's end of the watchdog's pipe, which then
    stayed open: the watchdog saw no death.
    """
    pids = _killed_runner(tmp_path, KIT_FORK="1")
    assert len(pids) == 3
    *daemon_and_child, helper = pids
    try:
        wait_for(lambda: not any(map(is_alive, daemon_and_child)), 30, "the daemon and its child")
        assert is_alive(helper)  # not the kit's: it lives on, as it would have
    finally:
        for pid in pids:
            kill_quietly(pid)


def test_a_killed_watchdog_is_replaced_at_the_next_launch(tmp_path: Path) -> None:
    """The kit's watchdog killed, then a second launch: the first daemon's child still goes.

    The new watchdog is handed every daemon still running, not only the new one.
    """
    pids = _killed_runner(tmp_path, KIT_KILL_WATCHDOG="1")
    assert len(pids) == 3
    try:
        wait_for(lambda: not any(map(is_alive, pids)), 30, "both daemons and the first's child")
    finally:
        for pid in pids:
            kill_quietly(pid)


def test_the_plugin_loads_nothing_of_the_runtime() -> None:
    """The pytest11 plugin and its fixture cost a suite that does not use them nothing."""
    code = (
        "import sys, aiodaemon._kit._pytest_plugin\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('aiodaemon', 'structlog', 'uvloop', 'orjson')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=clean_env(), capture_output=True, text=True, check=True
    )
    loaded = "['aiodaemon', 'aiodaemon._kit', 'aiodaemon._kit._pytest_plugin']"
    assert result.stdout.strip() == loaded


def test_the_plugin_is_registered_and_provides_the_fixture(tmp_path: Path) -> None:
    """`pytest --fixtures` lists aiodaemon_launch from the installed entry point."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--fixtures", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert "aiodaemon_launch" in result.stdout, result.stdout + result.stderr


# --- the example test of docs/testing.md ----------------------------------------------


def docs_example() -> str:
    """The complete example test file of docs/testing.md."""
    blocks = python_snippets(REPO / "docs" / "testing.md")
    return next(b for b in blocks if b.startswith('"""The greeter example'))


def run_user_tests(tmp_path: Path, source: str, *options: str) -> subprocess.CompletedProcess[str]:
    """Run ``source`` with pytest (and ``options``) as the page says: in a project of the user's.

    The directory, outside the repository, holds a copy of examples/greeter.py, the
    page's ``pyproject.toml`` and the test file; aiodaemon's own pytest configuration
    is nowhere near.
    """
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(REPO / "examples" / "greeter.py", project / "greeter.py")
    page = (REPO / "docs" / "testing.md").read_text()
    (config,) = re.findall(r"```toml\n(.*?)```", page, re.S)
    (project / "pyproject.toml").write_text(config)
    (project / "test_greeter.py").write_text(source)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *options],
        cwd=project,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


@pytest.mark.timeout(300)
def test_the_documented_example_test_passes(tmp_path: Path) -> None:
    """A user's test file copied from docs/testing.md passes against examples/greeter.py."""
    result = run_user_tests(tmp_path, docs_example())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
    assert "Warning" not in result.stdout + result.stderr


@pytest.mark.timeout(300)
def test_the_documented_example_test_fails_when_its_assertion_is_wrong(tmp_path: Path) -> None:
    """The same file with a wrong expectation fails: the kit's answers are real."""
    wrong = docs_example().replace('== "howdy\\n"', '== "hi\\n"', 1)
    assert wrong != docs_example()
    result = run_user_tests(tmp_path, wrong)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 failed, 1 passed" in result.stdout


async def test_a_main_that_returns_at_once_is_a_start_that_worked() -> None:
    """main returns right after ready (listen= given): the block runs and wait() says 0."""
    async with launch(
        PROGRAM, listen={"echo": "127.0.0.1:0"}, env={"KIT_RETURN_MAIN": "1"}
    ) as daemon:
        assert await daemon.wait(10) == 0
    assert daemon.returncode == 0


async def test_records_and_stderr_outlive_the_block() -> None:
    """After the block, records() has the shutdown hook's record and stderr is readable."""
    async with launch(PROGRAM, listen={"echo": "127.0.0.1:0"}) as daemon:
        await daemon.wait_for_record("ready")
    assert daemon.returncode == 0
    assert not daemon.directory.exists()
    events = [record["event"] for record in daemon.records()]
    assert "shutdown finished" in events, events
    assert "main running" in daemon.stderr


@pytest.mark.timeout(300)
def test_the_documented_module_scoped_fixture_shares_one_daemon(tmp_path: Path) -> None:
    """docs/testing.md's module-scoped fixture on aiodaemon_launch runs (no ScopeMismatch)."""
    blocks = python_snippets(REPO / "docs" / "testing.md")
    shared = next(b for b in blocks if b.startswith('"""One greeter daemon shared'))
    result = run_user_tests(tmp_path, shared)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


async def test_an_upgrades_successor_is_stopped_with_the_block() -> None:
    """After SIGUSR2 the new daemon (not the kit's child) is stopped gracefully with the block."""
    async with launch(PROGRAM, listen={"echo": "127.0.0.1:0"}) as daemon:
        daemon.signal(signal.SIGUSR2)
        assert await daemon.wait(30) == 0  # the old one handed over
        successor = (await daemon.status())["pid"]
        assert successor != daemon.pid
        assert await echo(daemon, b"still served\n") == b"still served\n"
    assert not is_alive(successor)
    finished = [r for r in daemon.records() if r["event"] == "shutdown finished"]
    assert [r["pid"] for r in finished] == [daemon.pid, successor]


@pytest.mark.timeout(300)
def test_the_documented_greeters_run_side_by_side_under_xdist(tmp_path: Path) -> None:
    """docs/testing.md's three-greeter tests pass under pytest -n 3: nine daemons, none shared."""
    blocks = python_snippets(REPO / "docs" / "testing.md")
    several = next(b for b in blocks if b.startswith('"""Three greeters in each test'))
    result = run_user_tests(tmp_path, several, "-n", "3")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout
