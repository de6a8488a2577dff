"""docs/production.md's child processes recipe: the helper gets its SIGTERM at ``stop``."""

from __future__ import annotations

import shlex
from pathlib import Path

from .support import REPO, aiodaemon_cli, is_alive, kill_quietly, python_snippets, wait_for

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
