"""A record's ``level`` column is its own level, whatever keys the program logs."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support import install_program, log_child_env, program, python, read_json_lines


def test_a_level_key_does_not_replace_the_records_level(tmp_path: Path) -> None:
    """``log.info("tank filled", level=0.5)``: the line says info, as its syslog severity does.

    The program's ``level`` (a keyword, a bound contextvar, stdlib ``extra=``)
    took the column's place when it was truthy (``"level":0.5``, an info record
    shown as ``critical``) and was dropped when it was not (``level=0``).
    """
    log_file = tmp_path / "d.log"
    app = install_program("log_level_key", tmp_path, "child.py")
    result = python([app, json.dumps({"log_file": str(log_file)})], env=log_child_env())
    assert result.returncode == 0, result.stderr
    levels = {r["event"]: r["level"] for r in read_json_lines(log_file)}
    assert levels == {
        "tank filled": "info",
        "tank empty": "error",
        "bound level": "warning",
        "pump started": "info",
        "reading": "info",
    }


def test_a_key_named_like_a_column_is_kept_renamed(tmp_path: Path) -> None:
    """``level=0.5``, ``pid=4242``...: the program's value is written as ``user_<key>``.

    Such a value was dropped without a word. A ``user_<key>`` the program
    logged itself is not overwritten.
    """
    log_file = tmp_path / "d.log"
    app = install_program("log_level_key", tmp_path, "child.py")
    result = python([app, json.dumps({"log_file": str(log_file)})], env=log_child_env())
    assert result.returncode == 0, result.stderr
    records = {r["event"]: r for r in read_json_lines(log_file)}
    assert records["tank filled"]["user_level"] == 0.5
    assert records["tank empty"]["user_level"] == 0
    assert records["bound level"]["user_level"] == "debug"
    assert records["pump started"]["user_level"] == "critical"
    reading = records["reading"]
    assert (reading["user_timestamp"], reading["user_logger"]) == ("yesterday", "db")
    assert reading["user_pid"] == "kept"
    assert reading["pid"] != 4242


def test_an_extra_named_event_does_not_replace_the_stdlib_message(tmp_path: Path) -> None:
    """``extra={"event": "login"}``: the line's ``event`` is still the record's message."""
    log_file = tmp_path / "d.log"
    options = {"log_file": str(log_file), "detach": False}
    result = python([program("log_event_key"), json.dumps(options)])
    assert result.returncode == 0, result.stderr
    audit = [r for r in read_json_lines(log_file) if r["logger"] == "audit"]
    assert [(r["event"], r["level"], r["user"]) for r in audit] == [
        ("alice logged in", "info", "alice")
    ]


#: Each record of log_logger_key and the logger that wrote it.
LOGGER_OF = {
    "keyword": "shop",
    "keyword none": "shop",
    "extra": "payments",
    "bound": "shop",
    "bound stdlib": "payments",
}


def test_a_logger_key_does_not_replace_the_loggers_name(tmp_path: Path) -> None:
    """A ``logger`` keyword, ``extra=`` key or bound contextvar: the column is the logger's name.

    A keyword wrote ``"logger":123``, an ``extra=`` key replaced the stdlib
    logger's name, and a bound contextvar took over structlog records only.
    """
    log_file = tmp_path / "d.log"
    options = {"log_file": str(log_file), "detach": False}
    result = python([program("log_logger_key"), json.dumps(options)])
    assert result.returncode == 0, result.stderr
    records = {r["event"]: r for r in read_json_lines(log_file) if r["event"] in LOGGER_OF}
    assert {event: record["logger"] for event, record in records.items()} == LOGGER_OF
    assert records["extra"]["ms"] == 812
