"""docs/migrating.md: its asyncio example runs as told; so do pep3143daemon's differences."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from .support import (
    REPO,
    aiodaemon_cli,
    program,
    python,
    python_snippets,
    read_json_lines,
    wait_for,
)

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


def _pep3143daemon_rows() -> dict[str, str]:
    """The rows of the page's "From pep3143daemon in particular" table, by their first cell."""
    section = PAGE.read_text().split("### From pep3143daemon in particular", 1)[1]
    section = section.split("\n### ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    return {row.split(" | ")[0].removeprefix("| "): row for row in rows}


def test_pep3143daemons_argument_order_and_falsy_signal_map_values_are_told() -> None:
    """The page tells, and the libraries show, pep3143daemon's positional order and signal_map."""
    if importlib.util.find_spec("pep3143daemon") is None:
        pytest.fail("pep3143daemon is missing: run `bash .ci/venv test` (it is in the test extra)")
    rows = _pep3143daemon_rows()
    order = rows["positional arguments"]
    assert "no `initgroups`: the sixth is `prevent_core`" in order
    assert "turns core dumps on with pep3143daemon and leaves `initgroups` off here" in order
    values = rows["`signal_map` values"]
    assert '`signal.SIG_DFL` (which is 0), `0` and `""`' in values
    assert "an empty map `{}` stands for the default map" in values
    assert "`{}` sets no handler at all" in values
    seen = {}
    for module in ("pep3143daemon", "aiodaemon.pep3143"):
        result = python([program("pep3143_differences"), module])
        assert result.returncode == 0, result.stderr
        seen[module] = result.stdout.splitlines()
    assert seen["pep3143daemon"] == [
        "positional: prevent_core False initgroups none",
        "SIGHUP: SIG_DFL: HUP SIG_IGN TERM SIG_DFL",
        "SIGHUP: 0: HUP SIG_IGN TERM SIG_DFL",
        "SIGHUP: '': HUP SIG_IGN TERM SIG_DFL",
        "{}: HUP SIG_DFL TERM terminate",
    ]
    assert seen["aiodaemon.pep3143"] == [
        "positional: prevent_core True initgroups False",
        "SIGHUP: SIG_DFL: HUP SIG_DFL TERM SIG_DFL",
        "SIGHUP: 0: HUP SIG_DFL TERM SIG_DFL",
        "SIGHUP: '': DaemonError",
        "{}: HUP SIG_DFL TERM SIG_DFL",
    ]


def test_the_python_daemon_names_of_the_imports_table_exist_in_both() -> None:
    """Each ``daemon.…`` name the table gives for python-daemon is there, and in the drop-in."""
    import daemon.daemon
    import daemon.pidfile

    from aiodaemon import pep3143

    table = PAGE.read_text().split("## Change the imports", 1)[1].split("\n## ", 1)[0]
    cells = [row.split(" | ")[0] for row in table.splitlines() if row.startswith("| `")]
    names = {name for cell in cells for name in re.findall(r"`(daemon(?:\.\w+)+)", cell)}
    for library in (daemon, pep3143):
        for name in sorted(names):
            found: object = library
            for part in name.split(".")[1:]:
                assert hasattr(found, part), f"{library.__name__} has no {name}"
                found = getattr(found, part)
