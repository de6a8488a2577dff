"""The run phase end to end: hooks, signals, shutdown, reload and exit codes of real daemons."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from .support import past_duplicate_window, pids_with, wait_for


def test_hook_order_and_graceful_exit(foreground: Any) -> None:
    """Startup hooks in order, then ready and main, shutdown hooks reversed, exit 0."""
    d = foreground("rt_hooks")
    d.wait_event("ready")
    # "ready" is written before main's first step: a SIGTERM then would find it stopping.
    wait_for(lambda: "main running" in d.recorded(), what="main running")
    d.signal(signal.SIGTERM)
    assert d.wait() == 0
    assert d.recorded() == [
        "startup a",
        "startup b",
        "startup c",
        "main running",
        "main saw stopping",
        "shutdown c",
        "shutdown b",
        "shutdown a",
    ]
    events = d.events()
    assert events.index("ready") < events.index("shutdown started")
    starting = d.lines()[0]
    assert starting["event"] == "starting"
    assert starting["options"] == {"detach": False, "log_file": str(d.log)}
    assert events[-1] == "exit"
    assert d.lines()[-1]["status"] == 0


def test_sigint_is_graceful_too(foreground: Any) -> None:
    """SIGINT (Ctrl-C) runs the same graceful shutdown as SIGTERM."""
    d = foreground("rt_hooks")
    d.wait_event("ready")
    d.signal(signal.SIGINT)
    assert d.wait() == 0
    assert d.recorded()[-3:] == ["shutdown c", "shutdown b", "shutdown a"]


def test_main_returning_exits_zero_after_shutdown_hooks(foreground: Any) -> None:
    """When main returns the shutdown hooks still run, and the status is 0."""
    d = foreground("rt_main_returns")
    assert d.wait() == 0
    assert d.recorded() == ["main done", "shutdown"]


def test_main_raising_exits_one_with_traceback_logged_once(foreground: Any) -> None:
    """An exception escaping main: status 1, logged once with its traceback, on stderr too."""
    d = foreground("rt_main_raises")
    assert d.wait() == 1
    failures = [line for line in d.lines() if line["event"] == "main failed"]
    assert len(failures) == 1
    assert "LookupError" in json.dumps(failures[0]["exception"])
    err = d.stderr()
    assert "LookupError: no such widget" in err
    assert "Task exception was never retrieved" not in err
    assert "never retrieved" not in d.log.read_text()


def test_startup_hook_raising_exits_one(foreground: Any) -> None:
    """A failing startup hook: main never runs, status 1, the hook named in the log."""
    d = foreground("rt_startup_fails")
    assert d.wait() == 1
    assert d.recorded() == []
    failed = [line for line in d.lines() if line["event"] == "startup hook failed"]
    assert len(failed) == 1
    assert str(failed[0]["hook"]).endswith("broken")
    assert "startup hook __main__.broken failed: RuntimeError: config missing" in d.stderr()


def test_a_failed_startup_hook_is_logged_with_how_long_it_ran(foreground: Any) -> None:
    """The hook's one error record says how long it ran: a timeout, or refused at once."""
    d = foreground("rt_startup_fails_late")
    assert d.wait() == 1
    (failed,) = [line for line in d.lines() if line["event"] == "startup hook failed"]
    assert str(failed["hook"]).endswith(".connect_database")
    assert "ConnectionRefusedError" in json.dumps(failed["exception"])
    assert isinstance(failed["seconds"], float)
    assert 0.5 <= failed["seconds"] < 30


def test_hup_burst_coalesces_into_one_more_reload(foreground: Any) -> None:
    """20 HUPs during a reload: reloads never overlap and exactly one more follows."""
    d = foreground("rt_slow_reload")
    d.wait_event("ready")
    d.signal(signal.SIGHUP)
    wait_for(lambda: d.recorded() == ["start 1"], what="the first reload to start")
    for i in range(1, 21):
        d.signal(signal.SIGHUP)
        # Each HUP handled while reloading is logged as queued: wait for it, so
        # the kernel cannot merge two pending HUPs into one.
        d.wait_event("reload queued", count=i)
    # The first reload lasted until now, however slow the machine.
    (d.record.parent / "go").touch()
    d.wait_event("reload finished", count=2)
    assert d.recorded() == ["start 1", "end 1", "start 2", "end 2"]
    assert d.proc.poll() is None, "the daemon must survive the burst"
    d.signal(signal.SIGTERM)
    assert d.wait() == 0
    assert d.recorded() == ["start 1", "end 1", "start 2", "end 2"]


def test_failing_reload_hook_is_logged_and_daemon_keeps_running(foreground: Any) -> None:
    """A raising reload hook is logged with its traceback; the daemon stays up and reloads again."""
    d = foreground("rt_reload_fails_once")
    d.wait_event("ready")
    d.signal(signal.SIGHUP)
    d.wait_event("reload finished")
    failed = [line for line in d.lines() if line["event"] == "reload hook failed"]
    assert len(failed) == 1
    assert "bad config line 3" in json.dumps(failed[0]["exception"])
    assert d.recorded() == [], "later hooks must not build on a failed step"
    assert d.proc.poll() is None
    d.signal(signal.SIGHUP)
    d.wait_event("reload finished", count=2)
    assert d.recorded() == ["validated", "applied"]
    d.signal(signal.SIGTERM)
    assert d.wait() == 0


def test_hup_during_shutdown_is_ignored(foreground: Any) -> None:
    """A HUP while the shutdown hooks run starts no reload."""
    d = foreground("rt_reload_and_slow_stop")
    d.wait_event("ready")
    d.signal(signal.SIGTERM)
    wait_for(lambda: d.recorded() == ["stopping"], what="shutdown hook")
    d.signal(signal.SIGHUP)
    assert d.wait() == 0
    assert d.recorded() == ["stopping"]
    assert "reload started" not in d.events()


def test_hanging_shutdown_hook_is_cut_off_by_timeout(foreground: Any) -> None:
    """A shutdown hook that never ends: the timeout ends the daemon, status 4, the hang logged."""
    d = foreground(
        "rt_hanging_shutdown",
        shutdown_timeout=1,
    )
    d.wait_event("ready")
    d.signal(signal.SIGTERM)
    assert d.wait(timeout=10) == 4
    stuck = [line for line in d.lines() if line["event"] == "task stuck at shutdown"]
    assert any("hang" in str(line["stack"]) for line in stuck)
    assert d.events()[-1] == "exit"


def test_the_stuck_task_report_names_the_hook_not_aiodaemons_own_tasks(foreground: Any) -> None:
    """A hanging shutdown hook: reported by its name, and no aiodaemon task beside it.

    aiodaemon's stop task and main's wrapper were reported too, each stuck "in
    in_own_context" of aiodaemon's code: they only wait for the hook's (and
    main's) own task, which is reported with its name and where it waits.
    """
    d = foreground("rt_hanging_shutdown", shutdown_timeout=1)
    d.wait_event("ready")
    d.signal(signal.SIGTERM)
    assert d.wait(timeout=10) == 4
    stuck = [line for line in d.lines() if line["event"] == "task stuck at shutdown"]
    tasks = sorted(str(line["task"]) for line in stuck)
    assert tasks == ["__main__.hang"]
    assert all("in_own_context" not in str(line["stack"]) for line in stuck)


def test_blocking_shutdown_hook_cannot_hang_the_exit(foreground: Any) -> None:
    """A hook blocking the loop in sync code is still cut off (the backstop timer)."""
    d = foreground(
        "rt_blocking_shutdown",
        shutdown_timeout=1,
    )
    d.wait_event("ready")
    d.signal(signal.SIGTERM)
    assert d.wait(timeout=10) == 4


def test_a_shutdown_hook_blocking_the_loop_is_reported_with_the_blocking_call(
    foreground: Any,
) -> None:
    """The backstop's forced exit says which hook held the loop, and the call it blocks in."""
    d = foreground("rt_blocking_shutdown", shutdown_timeout=1)
    d.wait_event("ready")
    d.signal(signal.SIGTERM)
    assert d.wait(timeout=10) == 4
    # Only "forced exit ... (event loop blocked)": nothing said which hook, or where.
    (stuck,) = [line for line in d.lines() if line["event"] == "task stuck at shutdown"]
    assert stuck["level"] == "error"
    assert str(stuck["task"]).endswith(".block")
    assert "time.sleep(60)" in str(stuck["stack"])
    assert d.events()[-2:] == ["forced exit", "exit"]


def test_task_swallowing_cancellation_cannot_hang_the_exit(foreground: Any) -> None:
    """A task that ignores CancelledError is abandoned at the timeout, status 4."""
    d = foreground(
        "rt_swallows_cancel",
        shutdown_timeout=1,
    )
    d.wait_event("ready")
    d.signal(signal.SIGTERM)
    assert d.wait(timeout=10) == 4
    assert "swallowed" in d.recorded()
    stuck = [line for line in d.lines() if line["event"] == "task stuck at shutdown"]
    assert any(line["task"] == "stubborn" for line in stuck)


def test_a_task_swallowing_cancellation_is_reported_without_aiodaemons_stop_task(
    foreground: Any,
) -> None:
    """Only the program's task is named stuck: aiodaemon's stop task just waits for it."""
    d = foreground("rt_swallows_cancel", shutdown_timeout=1)
    d.wait_event("ready")
    d.signal(signal.SIGTERM)
    assert d.wait(timeout=10) == 4
    stuck = [line for line in d.lines() if line["event"] == "task stuck at shutdown"]
    assert [line["task"] for line in stuck] == ["stubborn"]


@pytest.mark.parametrize("uvloop", [None, False], ids=["default-loop", "asyncio"])
def test_a_subprocess_still_starting_at_the_last_step_is_cancelled(
    foreground: Any, uvloop: bool | None
) -> None:
    """A task in create_subprocess_exec at the cancel step: cancelled, its child killed, exit 0."""
    duration = f"59.{os.getpid()}"  # a command line no other test's process has
    d = foreground("rt_subprocess_at_stop", duration, shutdown_timeout=3, uvloop=uvloop)
    wait_for(lambda: "running" in d.recorded(), what="main running")
    d.signal(signal.SIGTERM)
    # On asyncio's loop this waited for the whole timeout, then status 4.
    assert d.wait(timeout=10) == 0
    assert "task stuck at shutdown" not in d.events()
    assert d.lines()[-1]["event"] == "exit"
    assert pids_with(duration) == []


def test_second_signal_during_shutdown_exits_at_once(foreground: Any) -> None:
    """TERM, then TERM again while a hook runs: exit at once with 128+15."""
    d = foreground("rt_slow_shutdown")
    d.wait_event("ready")
    d.signal(signal.SIGTERM)
    wait_for(lambda: d.recorded() == ["slow hook"], what="the slow hook")
    past_duplicate_window()
    d.signal(signal.SIGTERM)
    # The hook sleeps a minute and shutdown_timeout is 30 s: only the forced exit ends it now.
    assert d.wait(timeout=10) == 128 + signal.SIGTERM
    # The handler does not log (it may interrupt the logger itself): stderr says why.
    assert "forced exit (second stop signal during shutdown: SIGTERM), status 143" in d.stderr()


def test_second_signal_works_while_loop_is_blocked(foreground: Any) -> None:
    """Even a hook stuck in sync code cannot stop a second SIGINT from forcing the exit."""
    d = foreground("rt_blocking_shutdown")
    d.wait_event("ready")
    d.signal(signal.SIGTERM)
    wait_for(lambda: d.recorded() == ["blocking"], what="the blocking hook")
    d.signal(signal.SIGINT)
    assert d.wait(timeout=10) == 128 + signal.SIGINT


def test_failing_shutdown_hook_does_not_stop_the_others(foreground: Any) -> None:
    """Each shutdown hook's exception is logged and the remaining hooks still run."""
    d = foreground("rt_failing_shutdown_hook")
    assert d.wait() == 0
    assert d.recorded() == ["first"]
    assert "shutdown hook failed" in d.events()


def test_uvloop_choice(foreground: Any) -> None:
    """uvloop is used when installed, and never with uvloop=False."""
    body = "rt_loop_kind"
    d = foreground(body)
    assert d.wait() == 0
    assert d.recorded()[0].startswith("uvloop")
    d.record.write_text("")
    d2 = foreground(body, uvloop=False)
    assert d2.wait() == 0
    assert d2.recorded()[0].startswith("asyncio")


def test_context_is_passed_to_hooks_that_take_one(foreground: Any) -> None:
    """Hooks and main get the Context when they accept an argument."""
    d = foreground("rt_context_args")
    assert d.wait() == 5
    assert d.recorded() == ["hook Context True", "main running"]


def test_coroutine_object_as_main(foreground: Any) -> None:
    """main may be a coroutine object rather than a function."""
    d = foreground("rt_coroutine_main")
    assert d.wait() == 0
    assert d.recorded() == ["work 7"]


def test_unhandled_task_exception_is_logged(foreground: Any) -> None:
    """A user task's exception nobody awaits is logged as a structured error line."""
    d = foreground("rt_unhandled_task")
    assert d.wait() == 0
    errors = [line for line in d.lines() if line["level"] == "error"]
    assert any("lost" in json.dumps(line) for line in errors)


def test_sync_hook_is_refused_at_decoration() -> None:
    """Decorating a plain function raises TypeError at once."""
    import aiodaemon

    daemon = aiodaemon.Daemon()

    def not_async() -> None:
        pass

    sync: Any = not_async  # what an untyped caller could pass
    # Named as the other hook errors name a function (not <function ... at 0x7f...>).
    shown = f"the function {__name__}.{not_async.__qualname__}"
    with pytest.raises(
        TypeError, match=re.escape(f"must be an async function (async def), not {shown}")
    ):
        daemon.on_startup(sync)
    with pytest.raises(TypeError, match="must be an async function"):
        daemon.on_reload(sync)
    with pytest.raises(TypeError, match="must be an async function"):
        daemon.on_shutdown(sync)

    async def two(a: int, b: int) -> None:
        pass

    with pytest.raises(TypeError, match="no argument or one Context"):
        daemon.on_shutdown(two)  # type: ignore[type-var]  # refused by mypy too

    async def keyword_only(*, ctx: aiodaemon.Context) -> None:
        pass

    with pytest.raises(TypeError, match="keyword_only must take no argument or one Context"):
        daemon.on_startup(keyword_only)  # type: ignore[type-var]

    async def spans() -> AsyncIterator[None]:
        yield

    generator: Any = spans  # what an untyped caller could pass
    with pytest.raises(TypeError, match=r"not the async generator function .*spans \(@aiodaemon"):
        daemon.on_startup(generator)
    assert daemon.hooks.startup == daemon.hooks.reload == daemon.hooks.shutdown == []


def test_unix_socket_file_is_removed_at_exit(foreground: Any, tmp_path: Path) -> None:
    """A listen= unix socket serves during the run and its file is gone after exit."""
    path = tmp_path / "app.sock"
    d = foreground(
        "rt_unix_server",
        listen={"ctl": f"unix:{path}"},
    )
    d.wait_event("ready")
    import socket

    with socket.socket(socket.AF_UNIX) as client:
        client.connect(str(path))
        assert client.recv(16) == b"hi\n"
    d.signal(signal.SIGTERM)
    assert d.wait() == 0
    assert not path.exists()


@pytest.mark.parametrize("uvloop", [None, False], ids=["default-loop", "asyncio"])
def test_a_listener_the_program_closed_itself_ends_cleanly(
    foreground: Any, tmp_path: Path, uvloop: bool | None
) -> None:
    """A server that owned the listener's fd (hypercorn's fd://) closed it: exit 0, files gone."""
    path = tmp_path / "app.sock"
    d = foreground(
        "rt_fd_server",
        listen={"http": "127.0.0.1:0", "ctl": f"unix:{path}"},
        uvloop=uvloop,
    )
    d.wait_event("ready")
    (port,) = [int(str(line["sockets"]["http"]).rsplit(":", 1)[1]) for line in d.lines()[:1]]
    with socket.create_connection(("127.0.0.1", port)) as client:
        assert client.recv(16) == b"hi\n"
    d.signal(signal.SIGTERM)
    # The daemon's own close of that descriptor failed (EBADF): status 1, a
    # traceback on stderr, and the unix socket file left behind.
    assert d.wait() == 0
    assert "Traceback" not in d.stderr()
    assert not path.exists()


def test_a_lost_tasks_exception_is_logged_with_the_tasks_name(foreground: Any) -> None:
    """An exception no one retrieved from a task: one error record naming the task."""
    d = foreground("rt_lost_task_error")
    wait_for(lambda: "dropped" in d.recorded(), what="the failed task dropped")
    d.wait_event("unhandled exception in event loop")
    d.signal(signal.SIGTERM)
    assert d.wait(timeout=10) == 0
    (lost,) = [line for line in d.lines() if line["event"] == "unhandled exception in event loop"]
    assert lost["level"] == "error"
    assert lost["detail"] == "Task exception was never retrieved"
    # asyncio's own handler names the task; the record did not.
    assert lost["task"] == "fetch-orders"
    assert "the task's error" in json.dumps(lost["exception"])


@pytest.mark.parametrize("uvloop", [None, False], ids=["default-loop", "asyncio"])
def test_a_kept_tasks_unretrieved_exception_is_logged_at_shutdown(
    foreground: Any, uvloop: bool | None
) -> None:
    """A failed task still referenced, never awaited: logged once, at shutdown, in the log.

    asyncio reports it only when the task is collected, at the interpreter's
    exit: after the log was closed (on fd 2, after the ``exit`` record), and
    with uvloop not at all.
    """
    d = foreground("rt_kept_task_error", uvloop=uvloop)
    wait_for(lambda: "failed" in d.recorded(), what="the kept task failed")
    d.signal(signal.SIGTERM)
    assert d.wait(timeout=10) == 0
    events = d.events()
    assert events.count("unhandled exception in event loop") == 1
    assert events.index("unhandled exception in event loop") < events.index("shutdown finished")
    (lost,) = [line for line in d.lines() if line["event"] == "unhandled exception in event loop"]
    assert lost["level"] == "error"
    assert lost["task"] == "kept-worker"
    assert "the worker's error" in json.dumps(lost["exception"])
    assert "never retrieved" not in d.stderr()


def test_a_startup_hook_returning_a_value_is_warned_about_once_by_name(foreground: Any) -> None:
    """A startup hook's return value goes nowhere: one warning names the hook and the value."""
    d = foreground("rt_hook_returns")
    d.wait_event("ready")
    d.signal(signal.SIGTERM)
    assert d.wait() == 0
    assert d.recorded()[:2] == ["connect", "plain"]
    (warned,) = [line for line in d.lines() if line["event"] == "startup hook returned"]
    assert warned["level"] == "warning"
    assert warned["hook"] == "__main__.connect"
    assert warned["value"] == "'a connection'"


def test_reload_and_shutdown_hooks_returning_a_value_are_warned_about_once_by_name(
    foreground: Any,
) -> None:
    """As a startup hook's: a reload or shutdown hook's return value is named in one warning."""
    d = foreground("rt_hook_returns")
    d.wait_event("ready")
    d.signal(signal.SIGHUP)
    d.wait_event("reload finished")
    d.signal(signal.SIGTERM)
    # A shutdown hook's value is not an exit status either.
    assert d.wait() == 0
    assert d.recorded() == ["connect", "plain", "reconnect", "close"]
    lines = d.lines()
    (reload,) = [line for line in lines if line["event"] == "reload hook returned"]
    assert reload["level"] == "warning"
    assert reload["hook"] == "__main__.reconnect"
    assert reload["value"] == "'a new connection'"
    (shutdown,) = [line for line in lines if line["event"] == "shutdown hook returned"]
    assert shutdown["level"] == "warning"
    assert shutdown["hook"] == "__main__.close"
    assert shutdown["value"] == "1"
    assert [line["ok"] for line in lines if line["event"] == "reload finished"] == [True]
