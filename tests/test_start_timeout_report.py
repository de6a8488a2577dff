"""A start that times out says which startup hook was still running, and where it waited.

Before, the ``not ready after S s`` record said only the timeout: with several
startup hooks, nothing told the operator which one hung (a database that never
answers), nor, for a hook blocking the loop in sync code, which call blocked it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .support import aiodaemon_cli, is_alive, read_json_lines, wait_gone


def not_ready(d: Any) -> dict[str, object]:
    """The daemon's one ``not ready after 1 s`` record."""
    (record,) = [line for line in d.lines() if line["event"] == "not ready after 1 s"]
    return record  # type: ignore[no-any-return]


def test_a_hanging_startup_hook_is_named_with_where_it_waits(foreground: Any) -> None:
    """A hook awaiting for ever: the record names it and the await it is stuck in."""
    d = foreground("startup_waits", start_timeout=1, shutdown_timeout=1)
    assert d.wait(timeout=30) == 1
    assert d.recorded() == ["config checked", "connecting"]
    record = not_ready(d)
    assert record["level"] == "error"
    assert str(record["hook"]).endswith(".open_pool")
    stack = str(record["stack"])
    assert "in open_pool" in stack
    assert "in connect_database" in stack
    assert d.lines()[-1]["reason"] == "not ready after 1 s"


def test_a_startup_hook_blocking_the_loop_is_named_with_the_blocking_call(
    tmp_path: Path, foreground: Any
) -> None:
    """A hook in a sync sleep: the backstop's record names it and the line that blocks."""
    (tmp_path / "record.txt.block").touch()
    d = foreground("startup_blocks", start_timeout=1, shutdown_timeout=1)
    assert d.wait(timeout=30) == 1
    record = not_ready(d)
    assert record["loop"] == "blocked"
    assert str(record["hook"]).endswith(".block")
    stack = str(record["stack"])
    assert "in block" in stack
    assert "time.sleep(60)" in stack


def test_a_foreground_start_blocked_past_its_timeout_says_why_while_it_still_runs(
    tmp_path: Path, foreground: Any
) -> None:
    """The backstop's record comes a moment after start_timeout, not with the forced exit.

    That exit is ``shutdown_timeout`` later (60 s here): the record came only
    then, and until then the log said nothing of the blocked start (nor could
    the testing kit, which reads it, give up with the daemon's reason).
    """
    (tmp_path / "record.txt.block").touch()
    d = foreground("startup_blocks", start_timeout=1, shutdown_timeout=60)
    d.wait_event("not ready after 1 s", timeout=30)
    assert d.proc.poll() is None  # still blocked, its forced exit 60 s away
    record = not_ready(d)
    assert record["loop"] == "blocked"
    assert str(record["hook"]).endswith(".block")
    assert "time.sleep(60)" in str(record["stack"])


def test_a_detached_start_blocked_past_its_timeout_leaves_the_reason_in_the_log(
    tmp_path: Path,
) -> None:
    """`start` of a daemon whose startup hook blocks the loop: it says it killed it, the log why.

    The launcher SIGKILLs a daemon that does not stop on its SIGTERM; it said
    only "not ready after 1 s", and the log ended at ``starting``, with no
    word of the timeout, the hook or the call.
    """
    record, pidfile, log = tmp_path / "record.txt", tmp_path / "d.pid", tmp_path / "log.jsonl"
    record.touch()
    (tmp_path / "record.txt.block").touch()
    result = aiodaemon_cli(
        "start", "tests.programs.startup_blocks:main", "--pidfile", pidfile, "--log-file", log,
        "--start-timeout", "1", "--shutdown-timeout", "1",
        env={"AIODAEMON_TEST_RECORD": str(record)},
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    # It had to be killed: not the graceful stop "not ready" alone implies
    # (unless its own forced exit, as late, came first: no kill is said then).
    assert result.stderr in (
        "aiodaemon: not ready after 1 s, and still running 2 s after SIGTERM"
        " (its event loop blocked?): killed it with SIGKILL\n",
        "aiodaemon: not ready after 1 s\n",
    )
    pid = int(record.read_text().split()[1])
    wait_gone(pid)
    assert not pidfile.exists()
    records = read_json_lines(log)
    (not_ready,) = [r for r in records if r["event"] == "not ready after 1 s"]
    assert not_ready["level"] == "error"
    assert not_ready["loop"] == "blocked"
    assert str(not_ready["hook"]).endswith(".block")
    assert "time.sleep(60)" in str(not_ready["stack"])


def test_a_detached_start_killed_past_its_timeout_takes_what_its_hook_started(
    tmp_path: Path,
) -> None:
    """The start's SIGKILL takes the daemon's process group, as ``aiodaemon stop``'s does.

    It killed the daemon alone: a subprocess its startup hook had started
    lived on, re-parented to init, holding whatever it inherited (the
    ``listen=`` sockets: the next start could not bind them).
    """
    record, pidfile = tmp_path / "record.txt", tmp_path / "d.pid"
    record.touch()
    (tmp_path / "record.txt.block").touch()
    (tmp_path / "record.txt.child").touch()
    # Holding the GIL: the daemon's own forced exit, which kills it alone
    # (documented), cannot race the launcher's SIGKILL.
    (tmp_path / "record.txt.gil").touch()
    result = aiodaemon_cli(
        "start", "tests.programs.startup_blocks:main", "--pidfile", pidfile,
        "--start-timeout", "1", "--shutdown-timeout", "1",
        env={"AIODAEMON_TEST_RECORD": str(record)},
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert result.stderr == (
        "aiodaemon: not ready after 1 s, and still running 2 s after SIGTERM"
        " (its event loop blocked?): killed it and its process group (1 more process)"
        " with SIGKILL\n"
    )
    lines = dict(line.split() for line in record.read_text().splitlines())
    wait_gone(int(lines["blocking"]))
    # Gone (a zombie for its new parent to reap), not merely signalled: the
    # start returns once its group has gone.
    assert not is_alive(int(lines["child"]))
    assert not pidfile.exists()


def test_a_detached_main_blocking_before_a_manual_ready_is_logged_with_its_call(
    tmp_path: Path,
) -> None:
    """``--ready manual``: main runs before ready, and its blocking call is logged as a hook's."""
    record, pidfile, log = tmp_path / "record.txt", tmp_path / "d.pid", tmp_path / "log.jsonl"
    record.touch()
    result = aiodaemon_cli(
        "start", "tests.programs.startup_blocks:blocking_main", "--ready", "manual",
        "--pidfile", pidfile, "--log-file", log, "--start-timeout", "1", "--shutdown-timeout", "1",
        env={"AIODAEMON_TEST_RECORD": str(record)},
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    # Its own forced exit may end it before the launcher's SIGKILL, on a busy
    # machine: the line then says no kill, truthfully.
    assert result.stderr.startswith("aiodaemon: not ready after 1 s"), result.stderr
    wait_gone(int(record.read_text().split()[1]))
    (not_ready,) = [r for r in read_json_lines(log) if r["event"] == "not ready after 1 s"]
    assert not_ready["loop"] == "blocked"
    assert "time.sleep(60)" in str(not_ready["stack"])
