"""A stdlib record that fails to format is written all the same, never lost in silence.

The stdlib's own handlers print ``--- Logging error ---`` on stderr instead,
which is /dev/null in a detached daemon: the record vanished without a word.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .support import program, python, read_json_lines, wait_for


def test_a_record_with_too_few_arguments_reaches_the_log_file_unformatted(
    tmp_path: Path,
) -> None:
    """Each failed record is in the file with its level, logger, arguments and why."""
    log = tmp_path / "d.jsonl"
    options = {"detach": True, "pidfile": str(tmp_path / "d.pid"), "log_file": str(log)}
    started = python([program("log_bad_format"), json.dumps(options)])
    assert started.returncode == 0, started.stderr
    wait_for(lambda: any(r["event"] == "exit" for r in read_json_lines(log)), what="the exit")
    records = [r for r in read_json_lines(log) if r["logger"] == "shop"]
    assert [(r["level"], r["event"]) for r in records] == [
        ("warning", "%s logged in from %s"),
        ("error", "<Unprintable object; repr() raised RuntimeError>"),
        ("info", "after them"),
    ]
    unformatted, unprintable, _ = records
    assert unformatted["args"] == ["'ann'"]
    assert unformatted["logging_error"] == "TypeError: not enough arguments for format string"
    assert unprintable["args"] == []
    assert unprintable["logging_error"] == "RuntimeError: no str"
    exit_record = read_json_lines(log)[-1]
    assert exit_record["event"] == "exit"
    assert exit_record["status"] == 0


@pytest.mark.parametrize("log_format", ["json", "console"])
def test_a_value_whose_repr_raises_is_named_and_the_rest_kept(
    tmp_path: Path, log_format: str
) -> None:
    """The log call does not raise (``main`` returns, exit 0); the value says what failed."""
    log = tmp_path / "d.log"
    options = {"detach": False, "log_file": str(log), "log_format": log_format}
    ran = python([program("log_bad_repr"), json.dumps(options)])
    assert ran.returncode == 0, ran.stderr
    shown = "<HalfBuilt object; repr() raised AttributeError>"
    if log_format == "json":
        records = {r["event"]: r for r in read_json_lines(log) if r["logger"] == "shop"}
        assert list(records) == ["with a broken value", "with a broken key", "after it"]
        assert records["with a broken value"]["order"] == shown
        assert records["with a broken value"]["total"] == 42
        assert records["with a broken key"]["totals"] == {shown: 42}
    else:
        (line,) = [line for line in log.read_text().splitlines() if "with a broken value" in line]
        assert f"order={shown}" in line
        assert "total=42" in line
        (line,) = [line for line in log.read_text().splitlines() if "with a broken key" in line]
        assert "totals=<dict object; repr() raised AttributeError>" in line
        assert "after it" in log.read_text()


def test_a_structlog_call_that_fails_to_format_is_written_and_main_goes_on(
    tmp_path: Path,
) -> None:
    """As a stdlib record is: unformatted, with ``args`` and ``logging_error``, bound keys kept.

    structlog raised the ``TypeError`` into ``main``: the daemon ended with
    ``main failed``, status 1, and the record was lost.
    """
    log = tmp_path / "d.jsonl"
    ran = python(
        [program("log_bad_format_structlog"), json.dumps({"detach": False, "log_file": str(log)})]
    )
    assert ran.returncode == 0, ran.stderr
    records = [r for r in read_json_lines(log) if r["logger"] == "shop"]
    assert [(r["level"], r["event"]) for r in records] == [
        ("warning", "%s logged in from %s"),
        ("info", "%d items"),
        ("error", "%s paid"),
        ("info", "%(user)s left"),
        ("error", "row %s of %s"),
        ("info", "after them"),
    ]
    too_many, wrong_type, awaited, by_name, with_exception, _ = records
    assert too_many["args"] == ["'ann'", "'10.0.0.1'", "'extra'"]
    assert too_many["logging_error"] == (
        "TypeError: not all arguments converted during string formatting"
    )
    assert too_many["order"] == 42
    assert str(wrong_type["logging_error"]).startswith("TypeError: %d format")
    assert awaited["args"] == ["'ann'", "'twice'"]
    assert by_name["args"] == "{'who': 'ann'}"
    assert by_name["logging_error"] == "KeyError: 'user'"
    assert with_exception["logging_error"] == "TypeError: not enough arguments for format string"
    exception = with_exception["exception"]
    assert isinstance(exception, list)
    assert exception[0]["exc_type"] == "ValueError"
    assert all(r["order"] == 42 for r in records)
    assert read_json_lines(log)[-1]["status"] == 0
