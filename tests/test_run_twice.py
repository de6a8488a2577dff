"""A second ``run()`` in one process logs to its own log file.

Before, structlog's loggers (aiodaemon's and the program's module-level ones)
kept what they built in the first run: the second run's records went to the
first run's closed writer, which put them on stderr, not in its log file.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from .support import PYTHON, clean_env, program, read_json_lines


def test_each_run_writes_its_own_log_file(tmp_path: Path) -> None:
    """Two runs, two log files: each holds its own run's records, stderr nothing."""
    record, first, second = tmp_path / "record.txt", tmp_path / "1.jsonl", tmp_path / "2.jsonl"
    record.touch()
    options = {"detach": False, "pidfile": str(tmp_path / "d.pid")}
    result = subprocess.run(
        [
            PYTHON,
            str(program("run_twice")),
            json.dumps(options),
            str(record),
            str(first),
            str(second),
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert record.read_text().splitlines() == ["run ended 0", "run ended 0"]
    for path, run in ((first, "first"), (second, "second")):
        records = read_json_lines(path)
        events = [r["event"] for r in records]
        assert events.count("starting") == events.count("exit") == 1, events
        (main,) = [r for r in records if r["event"] == "main ran"]
        assert main["run"] == run
    assert not (tmp_path / "d.pid").exists()
