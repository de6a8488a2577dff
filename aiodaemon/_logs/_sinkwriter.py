"""The log writer's side of its sinks: writing batches, reopening, and telling what went wrong.

Everything here runs on the writer thread (:mod:`._logwriter` adds the queue
and the thread). A sink that fails cannot carry its own error: the other
sinks and a stderr someone reads are told, at most once a second, with every
record lost since; once the sink takes writes again it tells its own losses,
ahead of the records that follow. The writer's own notices (records dropped,
syslog records lost, a failed reopen, an error of its own) are written at
once, never queued.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias

from .._prefork._logsinks import FileSink, Record, StreamSink, is_syslog_sink, write_all

if TYPE_CHECKING:
    from .._prefork._syslogsink import SyslogSink
    from ._logecho import TerminalEcho
    from ._outputs import OutputFile

__all__ = ["Sink", "SinkWriter"]

#: Seconds between two ``syslog records lost`` warnings while the losses go on: each
#: warning is a record too, which a full syslog backlog makes room for by dropping one.
_SYSLOG_LOSS_INTERVAL = 10.0
#: Seconds between a forked child's looks, while it logs, for a log file rotated away.
_CHILD_LOOK = 1.0

#: What the writer thread writes to; each has write(records), reopen() and close().
Sink: TypeAlias = "FileSink | StreamSink | SyslogSink | TerminalEcho"


class SinkWriter:
    """Writes batches to the sinks, reopens them, and says what went wrong there."""

    def __init__(self, sinks: list[Sink]) -> None:
        self.sinks = sinks
        #: records refused because the queue was full (or logged after a failed close).
        self.dropped = 0
        self._reported = 0
        self._syslog_lost_reported = 0
        self._syslog_lost_at = -float("inf")
        self._last_failure = -float("inf")
        #: records lost by each failing sink since its last warning, and the last error.
        self._untold: dict[int, tuple[int, Exception]] = {}
        self._notice: Callable[..., Any] | None = None
        #: where the writer's own notices go (None: every sink); set on the writer thread.
        self._notice_sinks: list[Sink] | None = None
        #: where the writer's own notices go instead, while one is rendered for a later write.
        self._capture: list[Record] | None = None
        #: sinks whose last write failed; their losses are reported once one succeeds.
        self._failing: set[int] = set()
        self._lost_reported: dict[int, int] = {}
        #: failed reopens not yet told to a newly opened file.
        self._reopen_failures: list[str] = []
        #: the first error of the writer's own (out of memory) not yet logged, and
        #: the records of the batches it and the later ones struck.
        self._failure: tuple[Exception, int] | None = None
        #: the ``stdout``/``stderr`` files, moved to the new file at a reopen after a rotation.
        self.outputs: list[OutputFile] = []
        #: whether sys.stdout/sys.stderr drop what cannot be written (see _fullstdio).
        self.protects_stdio = False
        #: in a forked child, when it next looks for a rotated log file (see _follow_rotation).
        self._look_at: float | None = None

    def _write(self, batch: list[Record], sinks: list[Sink] | None = None) -> None:
        if not batch:
            return
        for sink in self.sinks if sinks is None else sinks:
            notice: list[Record] = []
            reported = self._lost_reported.get(id(sink), 0)
            if sinks is None and id(sink) in self._failing:
                # Before the first records it takes again, a sink that lost
                # some says so, in the same write: the file reads in order.
                # Written apart, a notice that failed while the batch after it
                # got through (space freed in between) came after that batch.
                notice = self._lost_notice(sink)
            lost = getattr(sink, "lost", None)
            try:
                sink.write([*notice, *batch] if notice else batch)
            except Exception as exc:
                self._failing.add(id(sink))
                # A write cut short by a full disk or RLIMIT_FSIZE kept the
                # records before the cut: only the sink knows how many it lost.
                after = getattr(sink, "lost", None)
                count = len(batch) if lost is None or after is None else after - lost
                if notice and count > len(batch):
                    # The notice went with them: said next time, its own loss not counted.
                    count -= 1
                    self._lost_reported[id(sink)] = reported + 1
                self._sink_failed(sink, exc, count)
            else:
                self._failing.discard(id(sink))
                # Taking writes again, the sink tells its losses itself (_lost_notice).
                self._untold.pop(id(sink), None)

    def _write_now(self, severity: int, line: bytes) -> None:
        if self._capture is not None:
            self._capture.append((severity, line))
            return
        self._write([(severity, line)], self._notice_sinks)

    def _sink_failed(self, sink: Sink, exc: Exception, count: int, *, final: bool = False) -> None:
        # The failing sink cannot carry its own error: tell the other sinks and
        # a stderr someone reads, once a second, with every record lost since
        # the last time (told at the close if no other failure comes).
        untold = self._untold.pop(id(sink), None)
        if untold is not None:
            count += untold[0]
        now = time.monotonic()
        if not final and now - self._last_failure < 1.0:
            self._untold[id(sink)] = (count, exc)
        else:
            self._last_failure = now
            self._alert(
                f"cannot write to {sink}: {exc}; {count} records lost",
                failing=sink,
                event="cannot write to log sink",
                sink=repr(sink),
                error=str(exc),
                records=count,
            )

    def _alert(
        self,
        text: str,
        *,
        failing: Sink | OutputFile,
        event: str,
        to_failing: bool = False,
        **kw: Any,
    ) -> None:
        """Say ``text`` where a person looks when ``failing`` cannot carry it.

        That is every other sink (syslog, a terminal echo) and fd 2 when it is
        a terminal or a file no sink already writes to: never a pipe, which
        could stall the writer, nor /dev/null. ``to_failing`` logs it into the
        failing sink as well.
        """
        others = [sink for sink in self.sinks if sink is not failing]
        shown = any(
            getattr(sink, "fd", None) == 2 and id(sink) not in self._failing for sink in others
        )
        if not shown and _stderr_is_watched():
            with contextlib.suppress(OSError):
                write_all(2, f"aiodaemon: {text}\n".encode(errors="backslashreplace"))
        if to_failing:
            others = self.sinks
        if others:
            self._notice_sinks = others
            try:
                self._log("error", event, **kw)
            finally:
                self._notice_sinks = None

    def _reopen(self, *, only_moved: bool = False) -> None:
        for sink in self.sinks:
            if only_moved and not (isinstance(sink, FileSink) and sink.moved()):
                continue
            try:
                sink.reopen()
            except OSError as exc:
                self._alert(
                    f"cannot reopen {sink}, keeping the old one: {exc}",
                    failing=sink,
                    # Into the old file too: it may still be the one people read.
                    to_failing=True,
                    event="cannot reopen log file, keeping the old one",
                    sink=repr(sink),
                    error=str(exc),
                )
                if isinstance(sink, FileSink):
                    self._reopen_failures.append(str(exc))
            else:
                if isinstance(sink, FileSink):
                    self._warn_if_foreign(sink)
                    if self._reopen_failures:
                        # A file reopened after failed attempts (a log directory
                        # removed, then recreated) says what was missed.
                        failures, self._reopen_failures = self._reopen_failures, []
                        self._log(
                            "error",
                            "log file reopened after failed reopens",
                            sink=repr(sink),
                            failed=len(failures),
                            error=failures[-1],
                        )
        for output in self.outputs:
            if output.replaced():
                # The program's own file on fd 1 or 2 (see OutputFile): never ours to move.
                if not output.told_replaced:
                    output.told_replaced = True
                    self._log(
                        "warning",
                        "output file replaced, left alone",
                        file=repr(output),
                        fd=output.fd,
                    )
                continue
            # Only a file rotated away (see OutputFile): one still in place stays.
            if not output.moved():
                continue
            try:
                output.reopen()
            except OSError as exc:
                self._alert(
                    f"cannot reopen {output}, keeping the old one: {exc}",
                    failing=output,
                    event="cannot reopen output file, keeping the old one",
                    file=repr(output),
                    error=str(exc),
                )
        if self.outputs:
            for sink in self.sinks:
                if isinstance(sink, StreamSink):
                    # fd 2 may hold another file now: the stderr file moved
                    # above, or put back by an upgrade's successor.
                    sink.look_again()

    def _follow_rotation(self) -> None:
        """In a forked child: at most once a second, move to the log file now at its path.

        logrotate's signal reaches the daemon alone: a worker forked from it
        wrote into the rotated file for as long as it lived, and into nothing
        once that file was compressed away. The child follows the file the
        daemon (or logrotate's ``create``) put at the path, never making one
        itself; a reopen refused keeps the old file, as the daemon's own
        reopen said why.
        """
        assert self._look_at is not None
        now = time.monotonic()
        if now < self._look_at:
            return
        self._look_at = now + _CHILD_LOOK
        for sink in self.sinks:
            if not isinstance(sink, FileSink) or sink.reopen_path is None:
                continue
            if os.path.lexists(sink.reopen_path) and sink.moved():
                with contextlib.suppress(OSError):
                    sink.reopen()

    def _warn_if_foreign(self, sink: FileSink) -> None:
        """Log a warning when the file a reopen found is another account's (see _safeopen).

        A rotation can leave one there (logrotate's ``create`` with another
        owner): as at the start, it is written to, and its owner can read and
        rewrite what the daemon writes there.
        """
        from .._prefork._safeopen import foreign_owner_warning  # loaded: it opened the file

        warning = foreign_owner_warning(sink.fd, "log_file", sink.path)
        if warning is not None:
            self._log(
                "warning", "log file owned by another account", sink=repr(sink), error=str(warning)
            )

    def _report(self, *, final: bool = False) -> None:
        """Log the losses not told yet; ``final`` (the close): every one left, at once."""
        if self._failure is not None:
            self._report_failure(*self._failure)
        dropped = self.dropped
        lost = sum(sink.lost for sink in self.sinks if is_syslog_sink(sink))
        now = time.monotonic()
        if dropped > self._reported:
            self._log(
                "warning",
                "log records dropped",
                dropped=dropped - self._reported,
                reason="queue full",
            )
            self._reported = dropped
        # While the collector stays down every batch pushes older messages out
        # of the full backlog, this warning among them: one per batch would
        # double the log for as long. The count adds up; the rest is told at exit.
        if lost > self._syslog_lost_reported and (
            final or now - self._syslog_lost_at >= _SYSLOG_LOSS_INTERVAL
        ):
            self._log("warning", "syslog records lost", lost=lost - self._syslog_lost_reported)
            self._syslog_lost_reported = lost
            self._syslog_lost_at = now
        for sink in self.sinks:
            if id(sink) not in self._failing:
                self._report_lost(sink)
        self._report_refusals()
        if final:
            for sink in self.sinks:
                # No later warning will come: the losses of the last second are told now.
                count, exc = self._untold.get(id(sink), (0, None))
                if count and exc is not None:
                    self._sink_failed(sink, exc, 0, final=True)

    def _report_failure(self, exc: Exception, dropped: int) -> None:
        """Log the writer's own error, with how many records the batches it struck held."""
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        # Still short of memory, it is told after the next batch.
        if self._log("error", "log writer failed", error=error, dropped=dropped, exc_info=exc):
            self._failure = None

    def _report_refusals(self) -> None:
        """Say when a syslog path is no longer trusted at a reconnect (its records wait)."""
        for sink in self.sinks:
            if not is_syslog_sink(sink):
                continue
            reason = sink.take_refusal()
            if reason is not None:
                self._alert(
                    f"refusing to reconnect to {sink}: {reason}; its records wait",
                    failing=sink,
                    event="syslog socket refused",
                    sink=repr(sink),
                    error=reason,
                    waiting=len(sink.backlog),
                )

    def _lost_notice(self, sink: Sink) -> list[Record]:
        """The ``log records lost`` record ``sink`` owes, rendered (none if it owes none).

        Counted as told: the caller writes it ahead of its batch, in one write.
        """
        if not isinstance(sink, FileSink | StreamSink):
            return []
        lost, reported = sink.lost, self._lost_reported.get(id(sink), 0)
        if lost <= reported:
            return []
        rendered: list[Record] = []
        capture, self._capture = self._capture, rendered
        try:
            self._log(
                "warning",
                "log records lost",
                lost=lost - reported,
                sink=repr(sink),
                error=str(sink.last_error),
            )
        finally:
            self._capture = capture
        self._lost_reported[id(sink)] = lost
        return rendered

    def _report_lost(self, sink: Sink) -> None:
        """Tell ``sink`` itself how many records it lost, once it takes writes again.

        Written to that sink alone, ahead of the records that follow (see
        ``_write``); if it fails there, the sink is still failing and the
        notice is not counted among the program's lost records.
        """
        if not isinstance(sink, FileSink | StreamSink):
            return
        reported = self._lost_reported.get(id(sink), 0)
        lost = sink.lost
        # Writing works again (space came back on a full disk): one record
        # in the log itself says how many records it is missing.
        notice = self._lost_notice(sink)
        if not notice:
            return
        self._write(notice, [sink])
        if id(sink) in self._failing:
            # Still failing: the notice is lost with the rest; say it next time.
            self._lost_reported[id(sink)] = reported + (sink.lost - lost)

    def _log(self, level: str, event: str, **kw: Any) -> bool:
        """Log one of the writer's own records at once; False if that failed (no memory)."""
        if self._notice is not None:
            try:
                getattr(self._notice, level)(event, **kw)
            except Exception:
                return False
        return True


def _stderr_is_watched() -> bool:
    """Whether fd 2 is a terminal or a regular file: where a person would look."""
    try:
        mode = os.fstat(2).st_mode
    except OSError:
        return False
    return stat.S_ISREG(mode) or os.isatty(2)
