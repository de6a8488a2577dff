"""A ``stdout``/``stderr`` file with no room left: the output is lost, not the daemon.

Before, the first ``print()`` to a full file system (or past ``ulimit -f``)
raised ``OSError`` into the program: ``main failed``, status 1, the daemon gone,
although ``start`` had warned that only output was lost.
"""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .support import (
    AIODAEMON,
    aiodaemon_cli,
    clean_env,
    install_program,
    is_alive,
    kill_quietly,
    read_json_lines,
    read_pid,
    require_tool,
    wait_for,
    wait_gone,
)
from .test_logging_faults import fill, tiny_disk

__all__ = ["tiny_disk"]  # the fixture, used by name below

#: A whole line of tests/programs/stdio_printer.py (a line cut by the full disk is not).
LINE = re.compile(rb"line (\d+) x{1000}\n")


class Printer:
    """tests/programs/stdio_printer.py started with ``aiodaemon start``, in ``directory``."""

    def __init__(
        self, directory: Path, target: str, *options: str | Path, prefix: tuple[str, ...] = ()
    ) -> None:
        install_program("stdio_printer", directory)
        self.directory = directory
        self.pidfile = directory / "app.pid"
        self.started = subprocess.run(
            [*prefix, str(AIODAEMON), "start", target, "--pidfile", str(self.pidfile)]
            + [str(option) for option in options],
            capture_output=True,
            text=True,
            cwd=directory,
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            timeout=45,
            check=False,
        )
        assert self.started.returncode == 0, self.started.stderr
        self.pid = read_pid(self.pidfile)

    def printed(self) -> int:
        """How many lines the program has printed so far."""
        try:
            return int((self.directory / "printed").read_text())
        except FileNotFoundError:
            return 0

    def wait_printed(self, count: int, what: str) -> None:
        """Wait until the program has printed ``count`` lines in all (it runs on)."""
        wait_for(lambda: self.printed() >= count, what=what)

    def assert_running(self) -> None:
        """The daemon is alive, and ``status`` says it runs."""
        assert is_alive(self.pid)
        status = aiodaemon_cli("status", "--pidfile", self.pidfile, cwd=self.directory)
        assert status.returncode == 0, status.stdout + status.stderr

    def stop(self) -> None:
        """Stop it with ``aiodaemon stop``; it must stop."""
        stopped = aiodaemon_cli("stop", "--pidfile", self.pidfile, cwd=self.directory)
        assert stopped.returncode == 0, stopped.stderr
        wait_gone(self.pid)


def printed_lines(path: Path) -> set[int]:
    """The numbers of the whole lines in ``path``."""
    return {int(n) for n in LINE.findall(path.read_bytes())}


def records(path: Path, event: str) -> list[dict[str, Any]]:
    """The JSON records of ``path`` with ``event`` (lines that are not JSON are skipped)."""
    found = []
    for line in path.read_bytes().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("event") == event:
            found.append(record)
    return found


def one_record(path: Path, event: str) -> Callable[[], dict[str, Any] | None]:
    """A predicate for wait_for: the first ``event`` record of ``path``, once there."""
    return lambda: next(iter(records(path, event)), None)


def assert_loss_told(log: Path, output: str, error: str) -> dict[str, Any]:
    """The ``output lost`` record names ``output`` and ``error`` with a byte count."""
    lost = wait_for(one_record(log, "output lost"), what="the loss in the log")
    assert lost["level"] == "warning"
    assert lost["file"] == output
    assert error in lost["error"]
    assert isinstance(lost["bytes"], int)
    assert lost["bytes"] > 0
    return lost


def assert_recovered(printer: Printer, log: Path, output: Path, name: str) -> None:
    """After space came back, new lines reach ``output`` and the log says how much was lost."""
    freed_at = printer.printed()
    wait_for(
        lambda: any(n >= freed_at for n in printed_lines(output)), what="new output after the loss"
    )
    again = wait_for(one_record(log, "output written again"), what="the recovery in the log")
    assert again["level"] == "warning"
    assert again["file"] == f"{name} {output}"
    # At least the line the first loss struck, and no more than was printed.
    lost = records(log, "output lost")[0]["bytes"]
    assert lost <= again["lost"] <= 1100 * freed_at


def runs_on_through_the_loss(
    printer: Printer, log: Path, output: Path, name: str, free: Callable[[], object]
) -> None:
    """Past the loss: prints go on, the loss is told once; ``free()`` makes room, output again."""
    printer.wait_printed(printer.printed() + 10, "prints after the loss")
    printer.assert_running()
    assert len(records(log, "output lost")) == 1  # once, not once per print
    free()
    assert_recovered(printer, log, output, name)
    printer.stop()


def assert_ended_cleanly(log: Path) -> None:
    """``main`` never failed, and the daemon exited 0."""
    assert records(log, "main failed") == []
    assert [r["status"] for r in records(log, "exit")] == [0]


@pytest.mark.root
def test_a_stdout_file_full_at_start_loses_output_and_the_daemon_runs_on(
    tmp_path: Path, tiny_disk: Path
) -> None:
    """--stdout on a full disk: print() loses its line, main goes on, the loss is logged."""
    out = tiny_disk / "out.txt"
    log = tmp_path / "app.log"
    fill(tiny_disk / "filler")
    printer = Printer(tmp_path, "app:main", "--log-file", log, "--stdout", out)
    try:
        assert "its file system is full; output is lost" in printer.started.stderr
        assert_loss_told(log, f"stdout {out}", "No space left on device")
        runs_on_through_the_loss(printer, log, out, "stdout", (tiny_disk / "filler").unlink)
    finally:
        kill_quietly(printer.pid)
    assert_ended_cleanly(log)


@pytest.mark.root
def test_a_stderr_file_filling_up_while_running_loses_output_and_the_daemon_runs_on(
    tmp_path: Path, tiny_disk: Path
) -> None:
    """--stderr whose disk fills as the daemon prints: lines are lost, then written again."""
    err = tiny_disk / "err.txt"
    log = tmp_path / "app.log"
    printer = Printer(tmp_path, "app:to_stderr", "--log-file", log, "--stderr", err)
    try:
        wait_for(lambda: len(printed_lines(err)) >= 5, what="first lines")
        fill(tiny_disk / "filler")
        assert_loss_told(log, f"stderr {err}", "No space left on device")
        runs_on_through_the_loss(printer, log, err, "stderr", (tiny_disk / "filler").unlink)
    finally:
        kill_quietly(printer.pid)
    assert_ended_cleanly(log)


#: RLIMIT_FSIZE for the size-limit test: the log file stays far below it.
SIZE_LIMIT = 1 << 20


def test_a_stdout_file_at_the_size_limit_loses_output_and_the_daemon_runs_on(
    tmp_path: Path,
) -> None:
    """Past `ulimit -f` (EFBIG; SIGXFSZ stays ignored) print() loses its line, not the daemon."""
    out = tmp_path / "out.txt"
    log = tmp_path / "app.log"
    # A few lines short of the limit: the daemon's prints reach it at once.
    out.write_bytes(b"\0" * (SIZE_LIMIT - 5000))
    prlimit = require_tool("prlimit")
    printer = Printer(
        tmp_path,
        "app:main",
        "--log-file",
        log,
        "--stdout",
        out,
        prefix=(prlimit, f"--fsize={SIZE_LIMIT}"),
    )
    try:
        assert_loss_told(log, f"stdout {out}", "File too large")
        assert out.stat().st_size == SIZE_LIMIT
        # What logrotate's copytruncate does: the file has room again.
        runs_on_through_the_loss(printer, log, out, "stdout", lambda: os.truncate(out, 0))
    finally:
        kill_quietly(printer.pid)
    assert_ended_cleanly(log)


def test_a_loss_still_under_way_at_exit_is_totalled_before_the_exit_record(
    tmp_path: Path,
) -> None:
    """Stopped while its --stdout file is still at `ulimit -f`: no write fitted again to say
    what was lost, so the exit does (`output still lost`, just before the `exit` record)."""
    out = tmp_path / "out.txt"
    log = tmp_path / "app.log"
    out.write_bytes(b"\0" * (SIZE_LIMIT - 5000))
    prlimit = require_tool("prlimit")
    printer = Printer(
        tmp_path,
        "app:main",
        "--log-file",
        log,
        "--stdout",
        out,
        prefix=(prlimit, f"--fsize={SIZE_LIMIT}"),
    )
    try:
        began = assert_loss_told(log, f"stdout {out}", "File too large")
        # Five whole lines (1 kB each) more, every one of them lost.
        printer.wait_printed(printer.printed() + 5, "prints after the loss")
        printer.stop()
    finally:
        kill_quietly(printer.pid)
    assert records(log, "output written again") == []
    [still] = records(log, "output still lost")
    assert still["level"] == "warning"
    assert still["file"] == f"stdout {out}"
    assert began["bytes"] + 5 * 1000 <= still["lost"] <= 1100 * printer.printed()
    events = [record["event"] for record in read_json_lines(log)]
    assert events[-2:] == ["output still lost", "exit"]
    assert_ended_cleanly(log)


@pytest.mark.root
def test_a_full_stderr_file_that_also_takes_the_log_keeps_the_daemon_running(
    tmp_path: Path, tiny_disk: Path
) -> None:
    """Detached with only --stderr, full: the log and print() both fail there, nothing loops."""
    err = tiny_disk / "err.txt"
    fill(tiny_disk / "filler")
    printer = Printer(tmp_path, "app:to_stderr", "--stderr", err)
    try:
        printer.wait_printed(20, "prints into the full file")
        printer.assert_running()
        (tiny_disk / "filler").unlink()
        freed_at = printer.printed()
        wait_for(lambda: any(n >= freed_at for n in printed_lines(err)), what="new output")
        # The loss is told in the file itself once it takes writes again.
        again = wait_for(one_record(err, "output written again"), what="the recovery")
        assert again["file"] == f"stderr {err}"
        assert again["lost"] >= 1000 * 20
        wait_for(one_record(err, "log records lost"), what="the log's own loss")
        printer.stop()
    finally:
        kill_quietly(printer.pid)
    assert_ended_cleanly(err)


def test_a_foreground_stdout_file_at_its_limit_keeps_the_stream_as_it_was(tmp_path: Path) -> None:
    """`aiodaemon run --stdout`: the stream writes as before, loses what does not fit, main ends."""
    install_program("stdio_encoding", tmp_path)
    out = tmp_path / "out.txt"
    log = tmp_path / "app.log"
    out.write_bytes(b"\0" * (SIZE_LIMIT - 100))
    limited = [require_tool("prlimit"), f"--fsize={SIZE_LIMIT}", str(AIODAEMON)]
    ran = subprocess.run(
        [*limited, "run", "app:main", "--log-file", str(log), "--stdout", str(out)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=clean_env({"PYTHONIOENCODING": "latin-1:surrogateescape"}),
        stdin=subprocess.DEVNULL,
        timeout=45,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert records(log, "main failed") == []
    assert_loss_told(log, f"stdout {out}", "File too large")
    written = out.read_bytes()
    assert len(written) == SIZE_LIMIT
    assert written[SIZE_LIMIT - 100 :].startswith(b"caf\xe9 \xff\nxxx")
    streams = json.loads((tmp_path / "streams.json").read_text())
    assert streams["main"] == {**streams["import"], "line_buffering": True}
    assert streams["main"]["encoding"] == "iso8859-1"
    assert streams["main"]["errors"] == "surrogateescape"
    assert streams["closed"] == errno.EBADF
