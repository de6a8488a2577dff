"""Loggers a program binds at import, before aiodaemon configures structlog in the daemon."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support import program, python, read_json_lines


def test_a_logger_bound_at_import_writes_to_the_log(tmp_path: Path) -> None:
    """``structlog.get_logger().bind()`` at module level: its records reach the log file.

    Built from structlog's defaults before logging started, it printed them on
    stdout (a detached daemon's /dev/null), at every level, and the log had none.
    """
    log_file = tmp_path / "d.log"
    result = python([program("log_bound_at_import"), log_file])
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    records = {r["event"]: r for r in read_json_lines(log_file)}
    assert "below the level" not in records
    bound = records["from a logger bound at import"]
    assert bound["level"] == "info"
    assert bound["logger"] == "__main__"
    assert bound["component"] == "db"
    assert bound["run"] == 1
    assert isinstance(bound["pid"], int)
    fresh = records["from a logger made with new() at import"]
    assert fresh["level"] == "warning"
    assert fresh["component"] == "gateway"
    failed = records["failed at import-bound logger"]
    assert failed["level"] == "error"
    assert '"exc_type":"ValueError"' in json.dumps(failed["exception"], separators=(",", ":"))


def test_a_logger_bound_at_import_follows_a_second_run(tmp_path: Path) -> None:
    """A second ``run()`` in the process: the import-bound logger writes to its log file."""
    log_file = tmp_path / "d.log"
    result = python([program("log_bound_at_import"), log_file, "again"])
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    second = [r for r in read_json_lines(Path(f"{log_file}.2")) if r.get("run") == 2]
    assert [r["component"] for r in second] == ["db"]
