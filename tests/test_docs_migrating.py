"""docs/migrating.md's asyncio example, migrated to aiodaemon, runs as the page says."""

from __future__ import annotations

from pathlib import Path

from .support import REPO, aiodaemon_cli, python, python_snippets, read_json_lines, wait_for

PAGE = REPO / "docs" / "migrating.md"


def test_the_migrated_asyncio_program_reloads_and_stops_with_its_hooks(tmp_path: Path) -> None:
    """The page's "becomes" program: detaches, reloads through its hook, closes its lifespan."""
    (after,) = [block for block in python_snippets(PAGE) if "@aiodaemon.lifespan" in block]
    pidfile, log = tmp_path / "app.pid", tmp_path / "app.jsonl"
    program = after.replace('"0.0.0.0:8080"', '"127.0.0.1:0"')
    program = program.replace("/run/app/app.pid", str(pidfile))
    program = program.replace("/var/log/app/app.jsonl", str(log))
    script = tmp_path / "app.py"
    script.write_text(
        "from tests.programs.migrating_stubs import db, handle, load_config\n" + program
    )
    started = python([script], cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    reloaded = aiodaemon_cli("reload", "--pidfile", pidfile)
    assert reloaded.returncode == 0, reloaded.stderr
    stopped = aiodaemon_cli("stop", "--pidfile", pidfile)
    assert stopped.returncode == 0, stopped.stderr
    records = wait_for(
        lambda: (lines := read_json_lines(log)) and lines[-1]["event"] == "exit" and lines,
        what="the exit record",
    )
    mine = [r["event"] for r in records if r["logger"] == "app"]
    assert mine == ["db connected", "config loaded", "db closed"]
    assert records[-1]["status"] == 0
