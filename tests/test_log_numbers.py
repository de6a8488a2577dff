"""Numbers in JSON log lines: what JSON has no number for is still told apart from null."""

from __future__ import annotations

import json
from pathlib import Path

from .support import program, python, read_json_lines


def test_nan_and_infinities_are_written_as_their_repr_not_as_null(tmp_path: Path) -> None:
    """``nan``, ``inf``, ``-inf``, nested too; a None beside them stays null.

    Also inside a dataclass and as an enum's value, which orjson writes
    itself: they were null there.
    """
    log = tmp_path / "d.jsonl"
    ran = python(
        [program("log_odd_values"), json.dumps({"detach": False, "log_file": str(log)}), tmp_path]
    )
    assert ran.returncode == 0, ran.stderr
    (record,) = [r for r in read_json_lines(log) if r["event"] == "numbers"]
    assert record["ratio"] == "nan"
    assert record["peak"] == "inf"
    assert record["floor"] == "-inf"
    assert record["nested"] == {"ratios": ["nan", 0.5]}
    assert record["missing"] is None
    assert record["latency"] == {"p99_ms": "inf"}
    assert record["latencies"] == [{"p99_ms": "-inf"}, {"p99_ms": 1.5}]
    assert record["reading"] == "nan"
