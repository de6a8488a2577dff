"""Console lines on a terminal are written in its encoding, as Python writes stderr.

A terminal in a Latin-1 or ASCII locale (or told ``PYTHONIOENCODING``) showed
the UTF-8 bytes of ``café`` as ``cafÃ©``: what it cannot say is now escaped
(``\\u20ac``), as on Python's own stderr. Files, syslog and JSON stay UTF-8.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .support import PYTHON, program, read_json_lines, run_on_terminal


@pytest.mark.parametrize("log_file", [False, True], ids=["console", "echo"])
def test_an_ascii_terminal_shows_non_ascii_text_escaped(tmp_path: Path, log_file: bool) -> None:
    """``PYTHONIOENCODING=ascii``: ``caf\\xe9 \\u20ac``; the log file keeps ``café €`` in UTF-8."""
    log = tmp_path / "d.jsonl"
    options = {"detach": False, **({"log_file": str(log)} if log_file else {})}
    output, status = run_on_terminal(
        [PYTHON, program("log_non_ascii"), json.dumps(options)],
        env={"PYTHONIOENCODING": "ascii", "NO_COLOR": "1"},
    )
    assert status == 0, output
    assert output.isascii(), output
    (line,) = [line for line in output.splitlines() if "[shop]" in line]
    assert r"caf\xe9 \u20ac" in line
    assert r"city=Z\xfcrich" in line
    if log_file:
        (record,) = [r for r in read_json_lines(log) if r["logger"] == "shop"]
        assert (record["event"], record["city"]) == ("café €", "Zürich")
