"""Paths whose bytes are not UTF-8 (legal on Linux) still make well-typed JSON log lines.

Only the strings orjson refuses are rewritten: each byte that is not UTF-8 (and a
lone surrogate) becomes U+FFFD; every other value reads as in a normal line.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .support import program, python, read_json_lines, wait_for, wait_gone


def test_a_pidfile_path_that_is_not_utf8_keeps_the_starting_record_typed(tmp_path: Path) -> None:
    """The undecodable byte shows as U+FFFD; the pid stays a number and detached a boolean."""
    odd = Path(os.fsdecode(bytes(tmp_path) + b"/caf\xe9"))
    odd.mkdir()
    pidfile, log = odd / "d.pid", tmp_path / "d.jsonl"
    options = {"detach": True, "pidfile": str(pidfile), "log_file": str(log)}
    started = python([program("idle"), json.dumps(options)])
    assert started.returncode == 0, started.stderr
    pid = int(pidfile.read_text())
    # Ready does not wait for the log's disk write: the record may still be on its way.
    starting = wait_for(
        lambda: next((r for r in read_json_lines(log) if r["event"] == "starting"), None),
        what="the starting record",
    )
    os.kill(pid, 15)
    wait_gone(pid)
    assert starting["pid"] == pid
    assert starting["detached"] is True
    assert isinstance(starting["options"], dict)
    assert starting["options"]["pidfile"] == str(tmp_path) + "/caf\ufffd/d.pid"


def test_a_refused_record_keeps_every_other_value_and_tells_bytes_from_backslashes(
    tmp_path: Path,
) -> None:
    """A datetime, UUID, enum, dataclass read as in a normal line; `\\xe9` in a name stays distinct.

    The names ``caf<0xe9>`` (Latin-1) and ``caf\\xe9`` (a literal backslash,
    x, e, 9) must not read the same, and a lone surrogate is not shown as
    bytes that never existed.
    """
    names = tmp_path / "names"
    names.mkdir()
    (names / "caf\\xe9").touch()
    (Path(os.fsdecode(bytes(names) + b"/caf\xe9"))).touch()
    log = tmp_path / "d.jsonl"
    options = {"detach": False, "log_file": str(log)}
    ran = python([program("log_odd_values"), json.dumps(options), str(names)])
    assert ran.returncode == 0, ran.stderr
    records = {r["event"]: r for r in read_json_lines(log)}
    plain, odd = records["plain"], records["odd"]
    assert plain["when"] == "2026-01-02T03:04:05+00:00"
    assert plain["id"] == "00000000-0000-0000-0000-000000000001"
    assert plain["color"] == "red"
    assert plain["point"] == {"x": 1, "y": 2}
    for key in ("when", "id", "color", "point", "count", "nested"):
        assert odd[key] == plain[key], key
    assert odd["files"] == ["caf\\xe9", "caf\ufffd"]
    assert odd["lone"] == "a\ufffdb"
    # An enum is its value, as orjson writes one, that value's odd bytes replaced.
    assert odd["place"] == "caf\ufffd"
    assert odd["places"] == {"here": "caf\ufffd"}
    # A dataclass stays an object (it was its repr), its odd bytes replaced.
    assert odd["shop"] == {"name": "caf\ufffd"}


def test_names_that_read_the_same_once_replaced_keep_their_own_values(tmp_path: Path) -> None:
    """``caf<0xe8>`` and ``caf<0xe9>`` as keys: both stay, the second with its byte escaped."""
    names = tmp_path / "names"
    names.mkdir()
    for name in (b"caf\xe8", b"caf\xe9"):
        Path(os.fsdecode(bytes(names) + b"/" + name)).touch()
    log = tmp_path / "d.jsonl"
    ran = python(
        [program("log_odd_values"), json.dumps({"detach": False, "log_file": str(log)}), str(names)]
    )
    assert ran.returncode == 0, ran.stderr
    (record,) = [r for r in read_json_lines(log) if r["event"] == "by name"]
    assert record["index"] == {"caf\ufffd": 0, "caf\\udce9": 1}


def test_keys_that_are_not_strings_never_take_another_keys_place(tmp_path: Path) -> None:
    """``{200: ..., "200": ...}``: JSON would hold "200" twice and a reader keep one; both stay."""
    log = tmp_path / "d.jsonl"
    ran = python(
        [program("log_odd_values"), json.dumps({"detach": False, "log_file": str(log)}), tmp_path]
    )
    assert ran.returncode == 0, ran.stderr
    (record,) = [r for r in read_json_lines(log) if r["event"] == "by key"]
    assert record["hits"] == {"200": 5, "404": 1}
    assert record["mixed"] == {"200": "int", "200 (2)": "str", "1.5": "float"}
