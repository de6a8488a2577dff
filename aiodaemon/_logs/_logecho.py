"""Warnings and errors of a foreground daemon that logs to a file, echoed on its terminal.

Someone who runs ``aiodaemon run app:main --log-file F`` in a terminal would
otherwise see nothing at all, not even why the program is failing. Only records
of level warning and above are echoed, rendered for a person; the file keeps the
complete record. Runs on the log writer thread, like every sink.

The terminal is written through a non-blocking descriptor of its own
(``LogTargets.open_echo``): a terminal that stops reading (Ctrl-S, a stalled
ssh connection) must not hold the writer thread, which the log file shares.
Lines that do not fit are skipped and counted, and the terminal is told how
many once it reads again; the file has them all.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
from collections.abc import Sequence
from typing import Any

import orjson

from .._prefork._logsinks import Record, lines_not_whole, write_all
from ._console import console_encoder, console_renderer
from ._logchain import local_from_utc

__all__ = ["TerminalEcho"]

#: syslog severities: 4 is warning, lower numbers are worse.
_WARNING = 4
#: Seconds the echo waits at its close for the terminal to take the count of
#: lines it skipped: no later line will carry it. A stopped one costs no more.
_LAST_WAIT = 0.5


class TerminalEcho:
    """A sink that shows warning-and-worse records on a terminal's fd, never closing it."""

    def __init__(
        self, fd: int, *, json_lines: bool, colors: bool, encoding: str, out: int | None = None
    ) -> None:
        """Echo on ``fd``.

        Args:
            fd: the terminal (fd 2 of a foreground daemon).
            json_lines: records arrive as JSON lines, to be rendered as console lines.
            colors: colour the console lines.
            encoding: the terminal's, which the lines are written in.
            out: a non-blocking descriptor of that terminal, owned (closed) by
                the echo; None: write to ``fd`` itself, blocking.
        """
        #: the terminal shown on: the log writer's own notices need not go to it twice.
        self.fd = fd
        self._out = out
        #: lines not shown since the terminal last took one.
        self.skipped = 0
        #: the terminal hung up: nothing more is echoed.
        self.hung_up = False
        #: the terminal ends inside a line cut short.
        self._mid_line = False
        self._json_lines = json_lines
        self._renderer = console_renderer(colors)
        self._encode = console_encoder(encoding)

    def __repr__(self) -> str:
        return f"terminal fd {self.fd}"

    def write(self, records: Sequence[Record]) -> None:
        """Write the warning-and-worse records of ``records`` in one ``write``."""
        if self.hung_up:
            return
        lines = [self._render(line) for severity, line in records if severity <= _WARNING]
        if not lines:
            return
        try:
            self._show(lines)
        except OSError as exc:
            if exc.errno != errno.EIO:
                raise
            # The terminal hung up (its window closed, the ssh connection lost):
            # nobody is left to show them to, and the log has them. Not a
            # failure to report as records lost, nor to retry at each record.
            self.hung_up = True

    def _show(self, lines: list[bytes]) -> None:
        """Write ``lines``, skipping (and counting) what a terminal that is not read cannot take."""
        if self._out is None:
            write_all(self.fd, b"".join(lines))
            return
        head = b"\n" if self._mid_line else b""
        if self.skipped:
            head += self._encode(
                None,
                "",
                f"aiodaemon: {self.skipped} warnings and errors not shown here while the"
                " terminal was not reading; the log has them",
            )
        data = head + b"".join(lines)
        try:
            written = os.write(self._out, data)
        except BlockingIOError:
            written = 0
        if written:
            self._mid_line = data[written - 1] != ord("\n")
        if written < len(head):
            self.skipped += len(lines)
            return
        # A line cut short is skipped; the next write starts on a fresh line.
        self.skipped = lines_not_whole(lines, written - len(head))

    def _render(self, line: bytes) -> bytes:
        if not self._json_lines:
            # Console lines made for the log file: in UTF-8, not the terminal's encoding.
            return self._encode(None, "", line.decode("utf-8", "replace").rstrip("\n"))
        try:
            loaded: Any = orjson.loads(line)
        except orjson.JSONDecodeError:
            return line
        if not isinstance(loaded, dict):
            return line
        record: dict[str, Any] = loaded
        record.pop("pid", None)
        stamp = record.get("timestamp")
        if isinstance(stamp, str):
            # The file's UTC, shown as every console line shows time: local,
            # with its offset (the daemon's stderr without --log-file, too).
            with contextlib.suppress(ValueError, OverflowError, OSError):
                record["timestamp"] = local_from_utc(stamp)
        exceptions = record.pop("exception", None)
        if isinstance(exceptions, list) and exceptions and isinstance(exceptions[0], dict):
            # The structured traceback is in the file; one line says what it was.
            # structlog lists the chain from the exception logged to its first
            # cause: the first is the one Python's traceback ends with.
            logged = exceptions[0]
            record["exception"] = f"{logged.get('exc_type')}: {logged.get('exc_value')}"
        text = line.decode("utf-8", "replace").rstrip("\n")
        with contextlib.suppress(Exception):
            text = str(self._renderer(None, str(record.get("level", "")), record))
        return self._encode(None, "", text)

    def reopen(self) -> None:
        """Nothing to reopen: the terminal belongs to whoever started us."""

    def close(self) -> None:
        """Say how many lines were skipped, then close the echo's own descriptor.

        fd 2 stays open: it is not ours. The count is said at the next line
        shown, and at the end there is none: a line too big for the terminal's
        buffer, and those after it, went unsaid when the daemon then exited.
        """
        if self._out is not None:
            if self.skipped and not self.hung_up:
                with contextlib.suppress(OSError):
                    select.select([], [self._out], [], _LAST_WAIT)
                    self._show([])
            os.close(self._out)
            self._out = None
