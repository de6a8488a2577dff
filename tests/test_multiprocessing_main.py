"""``run()`` in a multiprocessing child that imports the main module again starts nothing."""

from __future__ import annotations

from pathlib import Path

from .support import program, python, read_json_lines


def test_an_unguarded_run_in_a_spawn_worker_refuses(tmp_path: Path) -> None:
    """The pool's worker says to guard run(), no second daemon starts, the start fails."""
    log = tmp_path / "log.jsonl"
    result = python([program("unguarded_spawn_pool"), log], timeout=60)
    assert result.returncode == 1
    assert 'guard the call with if __name__ == "__main__":' in result.stderr
    assert "BrokenProcessPool" in result.stderr
    starts = [record for record in read_json_lines(log) if record["event"] == "starting"]
    assert len(starts) == 1
