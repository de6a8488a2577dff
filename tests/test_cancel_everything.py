"""A program that cancels "every other task" leaves the daemon's own tasks alone.

Before, the idiom (``for t in asyncio.all_tasks(): t.cancel()``, with or
without a ``gather`` of them after) in a hook or at the end of ``main``
cancelled the tasks carrying the daemon's life: it died mid-shutdown with a
bare ``CancelledError`` traceback, without its shutdown hooks, its ``exit``
record or (detached) a reason for its launcher; the gather form logged a
RecursionError and "Task was destroyed but it is pending!" lines too.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from .support import (
    ForegroundDaemon,
    aiodaemon_cli,
    install_program,
    read_json_lines,
    wait_for,
    wait_gone,
)

FORMS = ["loop", "gather"]
LOOPS = pytest.mark.parametrize("use_uvloop", [None, False], ids=["default-loop", "asyncio"])


def _exit_record(d: ForegroundDaemon) -> dict[str, object]:
    lines = d.lines()
    assert lines[-1]["event"] == "exit", [line["event"] for line in lines]
    return lines[-1]


def _assert_clean_stderr(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr
    assert "CancelledError" not in stderr, stderr
    assert "RecursionError" not in stderr, stderr
    assert "destroyed but it is pending" not in stderr, stderr


@LOOPS
@pytest.mark.parametrize("form", FORMS)
def test_cancel_everything_in_a_shutdown_hook(
    tmp_path: Path, use_uvloop: bool | None, form: str
) -> None:
    """The stop goes on: the other shutdown hooks run, exit 0 with its record."""
    d = ForegroundDaemon(
        tmp_path, "cancel_everything", "shutdown", form, uvloop=use_uvloop, shutdown_timeout=10
    )
    try:
        wait_for(lambda: "main running" in d.recorded(), 10, "main running")
        d.signal(signal.SIGTERM)
        assert d.wait() == 0, d.stderr()
        _assert_clean_stderr(d.stderr())
    finally:
        d.kill()
    recorded = d.recorded()
    assert "cancelled everything" in recorded
    assert "poller cancelled" in recorded
    assert recorded[-1] == "close_db"
    assert _exit_record(d)["status"] == 0
    assert "task stuck at shutdown" not in d.events()


@LOOPS
@pytest.mark.parametrize("form", FORMS)
def test_cancel_everything_at_the_end_of_main(
    tmp_path: Path, use_uvloop: bool | None, form: str
) -> None:
    """main returns after it: the shutdown hooks run and the daemon exits 0."""
    d = ForegroundDaemon(
        tmp_path, "cancel_everything", "main", form, uvloop=use_uvloop, shutdown_timeout=10
    )
    try:
        assert d.wait() == 0, d.stderr()
        _assert_clean_stderr(d.stderr())
    finally:
        d.kill()
    recorded = d.recorded()
    # A gather lets the poller end before it records; the loop form, after.
    assert sorted(recorded[1:3]) == ["cancelled everything", "poller cancelled"]
    assert [recorded[0], recorded[-1]] == ["main running", "close_db"]
    assert "main returned" in d.events()
    assert _exit_record(d)["status"] == 0


@pytest.mark.parametrize("form", FORMS)
def test_cancel_everything_in_a_startup_hook(tmp_path: Path, form: str) -> None:
    """The start goes on to ready and main; a later stop is graceful."""
    d = ForegroundDaemon(tmp_path, "cancel_everything", "startup", form, shutdown_timeout=10)
    try:
        wait_for(lambda: "main running" in d.recorded(), 10, "main running")
        d.signal(signal.SIGTERM)
        assert d.wait() == 0, d.stderr()
        _assert_clean_stderr(d.stderr())
    finally:
        d.kill()
    assert d.recorded() == [
        "cancelled everything",
        "main running",
        "close_db",
        "poller cancelled",
    ]
    assert "ready" in d.events()
    assert _exit_record(d)["status"] == 0


@pytest.mark.parametrize("form", FORMS)
def test_cancel_everything_in_a_reload_hook(tmp_path: Path, form: str) -> None:
    """The reload finishes; main, cancelled by the program, fails: hooks run, exit 1 says so."""
    d = ForegroundDaemon(tmp_path, "cancel_everything", "reload", form, shutdown_timeout=10)
    try:
        wait_for(lambda: "main running" in d.recorded(), 10, "main running")
        d.signal(signal.SIGHUP)
        assert d.wait() == 1, d.stderr()
        stderr = d.stderr()
    finally:
        d.kill()
    # The failure of main is on the terminal, as any main failure is; nothing else.
    assert "aiodaemon: main failed: CancelledError" in stderr
    assert "destroyed but it is pending" not in stderr
    assert "close_db" in d.recorded()
    finished = [line for line in d.lines() if line["event"] == "reload finished"]
    assert [line["ok"] for line in finished] == [True]
    exit_record = _exit_record(d)
    assert exit_record["status"] == 1
    assert exit_record["reason"] == "main failed: CancelledError"


def test_cancel_everything_detached_at_the_end_of_main(tmp_path: Path) -> None:
    """Detached (aiodaemon start), the daemon ends as main returned: exit record, no pidfile."""
    app = install_program("cancel_everything", tmp_path)
    # As a CLI target the program reads its WHERE and FORM from its own lines.
    app.write_text(
        app.read_text()
        .replace("WHERE, FORM = sys.argv[3], sys.argv[4]", 'WHERE, FORM = "main", "gather"')
        .replace("from tests.programs.recorder import record, run", "")
        .replace("\nrun(main)\n", "\n")
        .replace(
            "import aiodaemon\n",
            "import aiodaemon\n\n\ndef record(line: str) -> None:\n"
            f"    with open({str(tmp_path / 'record.txt')!r}, 'a') as f:\n"
            "        f.write(line + '\\n')\n",
        )
    )
    log = tmp_path / "log.jsonl"
    started = aiodaemon_cli(
        "start", "app:main", "--pidfile", tmp_path / "app.pid", "--log-file", log, cwd=tmp_path
    )
    assert started.returncode == 0, started.stderr
    wait_gone(int(started.stdout))
    wait_for(lambda: not (tmp_path / "app.pid").exists(), 10, "pidfile removed")
    records = read_json_lines(log)
    assert records[-1]["event"] == "exit"
    assert records[-1]["status"] == 0
    assert "main returned" in [r["event"] for r in records]
    assert (tmp_path / "record.txt").read_text().splitlines()[-1] == "close_db"
