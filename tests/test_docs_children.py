"""docs/production.md's child processes: the recipe's helper is stopped; what children inherit."""

from __future__ import annotations

import json
import shlex
import signal
from pathlib import Path

from .support import (
    REPO,
    aiodaemon_cli,
    is_alive,
    kill_quietly,
    program,
    python,
    python_snippets,
    read_json_lines,
    wait_for,
)

PAGE = REPO / "docs" / "production.md"


def test_the_recipe_stops_its_helper_within_the_daemon_s_stop(tmp_path: Path) -> None:
    """`aiodaemon stop` returns once the helper got SIGTERM, finished and was awaited."""
    (recipe,) = [block for block in python_snippets(PAGE) if "HELPER = " in block]
    helper_pid, stopped = tmp_path / "helper.pid", tmp_path / "helper.stopped"
    script = (
        f"trap 'echo TERM > {shlex.quote(str(stopped))}; exit 0' TERM;"
        f" echo $$ > {shlex.quote(str(helper_pid))}; while :; do sleep 0.05; done"
    )
    shown = '["/usr/bin/redis-server", "/etc/app/redis.conf"]'
    assert shown in recipe
    (tmp_path / "app.py").write_text(recipe.replace(shown, repr(["sh", "-c", script])))
    pidfile = tmp_path / "app.pid"
    helper = None
    try:
        started = aiodaemon_cli(
            "start", "app:main", "--pidfile", pidfile, "--log-file", tmp_path / "log", cwd=tmp_path
        )
        assert started.returncode == 0, started.stderr
        helper = int(wait_for(lambda: helper_pid.exists() and helper_pid.read_text(), 10))
        result = aiodaemon_cli("stop", "--pidfile", pidfile)
        assert result.returncode == 0, result.stderr
        assert stopped.read_text() == "TERM\n"
        assert not is_alive(helper)
    finally:
        aiodaemon_cli("stop", "--pidfile", pidfile)
        if helper is not None:
            kill_quietly(helper)


def test_the_recipe_kills_a_helper_that_ignores_sigterm_within_a_short_budget(
    tmp_path: Path,
) -> None:
    """A helper trapping SIGTERM, a 2 s budget: killed within it, the daemon exits 0.

    With the grace the recipe had (a fixed 10 s), the budget ran out first:
    status 4, and the helper ran on, re-parented to init.
    """
    (recipe,) = [block for block in python_snippets(PAGE) if "HELPER = " in block]
    helper_pid, trapped = tmp_path / "helper.pid", tmp_path / "helper.trapped"
    script = (
        f"trap 'echo TERM > {shlex.quote(str(trapped))}' TERM;"
        f" echo $$ > {shlex.quote(str(helper_pid))}; while :; do sleep 0.05; done"
    )
    shown = '["/usr/bin/redis-server", "/etc/app/redis.conf"]'
    (tmp_path / "app.py").write_text(recipe.replace(shown, repr(["sh", "-c", script])))
    pidfile, log = tmp_path / "app.pid", tmp_path / "log"
    helper = None
    try:
        started = aiodaemon_cli(
            "start", "app:main", "--pidfile", pidfile, "--log-file", log,
            "--shutdown-timeout", "2", cwd=tmp_path,
        )  # fmt: skip
        assert started.returncode == 0, started.stderr
        helper = int(wait_for(lambda: helper_pid.exists() and helper_pid.read_text(), 10))
        result = aiodaemon_cli("stop", "--pidfile", pidfile)
        assert result.returncode == 0, result.stderr
        assert "status" not in result.stderr
        assert trapped.read_text() == "TERM\n"
        assert not is_alive(helper)
        [last] = [r for r in read_json_lines(log) if r["event"] == "exit"]
        assert last["status"] == 0
    finally:
        aiodaemon_cli("stop", "--pidfile", pidfile)
        if helper is not None:
            kill_quietly(helper)


def test_a_child_started_at_exit_inherits_the_late_ignored_signals(tmp_path: Path) -> None:
    """As production.md says: started once the loop closed, a child ignores SIGHUP, USR1 and USR2.

    Started from ``main`` it ignores none, and ``env --default-signal`` gives
    them back their default action.
    """
    page = " ".join(PAGE.read_text().split())
    assert "inherits SIGHUP, SIGUSR1 and SIGUSR2 ignored" in page
    assert "env --default-signal=HUP,USR1,USR2 CMD" in page
    record = tmp_path / "record.txt"
    options = {"detach": False, "log_file": str(tmp_path / "log.jsonl")}
    result = python([program("exit_children_signals"), json.dumps(options), record])
    assert result.returncode == 0, result.stderr
    ignored = {
        when: int(mask, 16)
        for when, _, mask in (line.split() for line in record.read_text().splitlines())
    }
    late = {signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2}
    assert {s for s in late if ignored["main"] >> (s - 1) & 1} == set()
    assert {s for s in late if ignored["at-exit"] >> (s - 1) & 1} == late
    assert {s for s in late if ignored["at-exit-env"] >> (s - 1) & 1} == set()
