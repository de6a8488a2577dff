"""A program that configures structlog itself at import: its records reach the daemon's log.

Its configuration (processors, a logger factory printing on stdout, loggers
cached on first use) sent the records of every logger it had made or used at
import to stdout in its own format (/dev/null once detached), silently; only a
logger made after the start reached the log file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .support import aiodaemon_cli, program, python, read_json_lines, wait_for

#: What log_own_config's main logs, by event, with the logger each one names.
WRITTEN = {
    "module logger": "__main__",
    "named logger": "payments",
    "bound at import": "__main__",
    "fresh logger": "__main__",
    "poisoned": "__main__",
    "failed": "__main__",
}


def test_every_logger_of_a_detached_program_writes_to_the_log_file(tmp_path: Path) -> None:
    """Cached, named and bound at import, or fresh: each record is in the file, once."""
    log = tmp_path / "d.jsonl"
    options = {"detach": True, "pidfile": str(tmp_path / "d.pid"), "log_file": str(log)}
    started = python([program("log_own_config"), json.dumps(options)])
    assert started.returncode == 0, started.stderr
    wait_for(lambda: any(r["event"] == "exit" for r in read_json_lines(log)), what="the exit")
    records = [r for r in read_json_lines(log) if r["logger"] != "aiodaemon"]
    assert [(r["event"], r["logger"]) for r in records] == list(WRITTEN.items())
    # aiodaemon's columns and format, not the program's renderer and time stamper.
    assert all(str(r["timestamp"]).endswith("Z") and isinstance(r["pid"], int) for r in records)


def test_the_programs_own_processors_still_run_before_aiodaemons(tmp_path: Path) -> None:
    """Its keys, redaction, dropped events and call site stay; a failing one loses no record.

    The exception is aiodaemon's structured one, not the text of the
    program's ``format_exc_info``; aiodaemon's own records are left as they are.
    """
    log = tmp_path / "d.jsonl"
    ran = python([program("log_own_config"), json.dumps({"detach": False, "log_file": str(log)})])
    assert ran.returncode == 0, ran.stderr
    records = {r["event"]: r for r in read_json_lines(log)}
    assert "health check" not in records
    assert "below the level" not in records
    assert records["module logger"]["card"] == "****"
    for event in ("module logger", "named logger", "bound at import", "fresh logger", "failed"):
        assert records[event]["service"] == "shop", event
        assert records[event]["func_name"] == "main", event
    assert records["bound at import"]["component"] == "db"
    exception = records["failed"]["exception"]
    assert isinstance(exception, list)
    assert exception[0]["exc_type"] == "ValueError"
    poisoned = records["poisoned"]
    assert poisoned["logging_error"] == "KeyError: 'poison'"
    assert poisoned["processor"] == "__main__.fail_on_poison"
    assert "card" not in poisoned
    assert "service" not in records["ready"]
    taken_over = records["structlog configuration taken over"]
    assert taken_over["logger"] == "aiodaemon"
    kept = taken_over["kept"]
    assert isinstance(kept, list)
    assert "__main__.redact_card" in kept
    assert taken_over["replaced"] == [
        "structlog.processors.TimeStamper",
        "structlog.processors.ExceptionRenderer",
        "structlog.processors.JSONRenderer",
    ]


def test_a_foreground_program_prints_nothing_of_its_records_after_the_start(
    tmp_path: Path,
) -> None:
    """Only what it logged at import, before aiodaemon started, is on stdout in its format."""
    log = tmp_path / "d.jsonl"
    ran = python([program("log_own_config"), json.dumps({"detach": False, "log_file": str(log)})])
    assert ran.returncode == 0, ran.stderr
    printed = [json.loads(line)["event"] for line in ran.stdout.splitlines()]
    assert printed == ["at import", "named at import"]
    assert {r["event"] for r in read_json_lines(log)} >= set(WRITTEN)


@pytest.mark.root
def test_a_jailed_program_that_configured_structlog_logs_as_any_other(jail_base: Path) -> None:
    """In an empty chroot, dropped to nobody: what takes the configuration over was loaded."""
    log = jail_base / "d.jsonl"
    started = aiodaemon_cli(
        "start", "tests.programs.log_own_config:main", "--chroot", jail_base / "jail",
        "--user", "nobody", "--pidfile", jail_base / "d.pid", "--log-file", log,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    wait_for(lambda: any(r["event"] == "exit" for r in read_json_lines(log)), what="the exit")
    records = {r["event"]: r for r in read_json_lines(log)}
    assert records["exit"]["status"] == 0
    assert records["module logger"]["service"] == "shop"
    assert records["module logger"]["logger"] == "tests.programs.log_own_config"
