"""The log writer: one thread and a bounded queue between the loggers and the sinks.

Records arrive rendered (bytes) from whatever thread logs them; the writer
batches them into the sinks (files, syslog, stderr), so the event loop never
waits on a disk, a socket or a full pipe.

Full-queue policy: a record that finds the queue full is refused at once
(never blocking the caller) and counted in :attr:`LogWriter.dropped`; as soon
as the writer has made room it logs one ``log records dropped`` warning with
the count. Reopen and close requests are never refused: they are ordered
within the record stream, so records logged before a reopen go to the old
file and records logged after it to the new one.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias

from .._prefork._logsinks import FileSink, Record, StreamSink, is_syslog_sink, write_all
from ..exceptions import StartupError

if TYPE_CHECKING:
    from .._prefork._syslogsink import SyslogSink
    from ._logecho import TerminalEcho
    from ._outputs import OutputFile

__all__ = ["BEGIN_WAIT", "DEFAULT_QUEUE_SIZE", "QUEUE_BYTES", "LogWriter", "Sink", "start_bounded"]

#: Records the queue holds before refusing more (about 7 MB of 200-byte lines,
#: half a second at 50,000 lines/s: enough to ride out a slow disk or a rotation).
DEFAULT_QUEUE_SIZE = 32_768
#: Bytes of lines the queue holds before refusing more, whatever their number: a
#: stalled sink while every request logs a 20 KB traceback would otherwise hold
#: 32,768 of them (640 MB) and invite the OOM killer to take the whole daemon.
QUEUE_BYTES = 32 << 20
#: Seconds between retries of a syslog daemon that is down, when nothing new is logged.
_RETRY_INTERVAL = 0.5
#: The same for one that is up but reads slowly (its socket's buffer was full).
_BLOCKED_RETRY = 0.02
#: Seconds between two ``syslog records lost`` warnings while the losses go on: each
#: warning is a record too, which a full syslog backlog makes room for by dropping one.
_SYSLOG_LOSS_INTERVAL = 10.0
#: At most this many records per write() (~3 MB of 200-byte lines). A loop logging
#: flat out hands the GIL to this thread only every switch interval (5 ms): the
#: batch must be large enough to drain in one turn what the loop queues in
#: one, or a burst overflows the queue (2,048 lost half of a 200,000-record
#: burst, benchmarks/logging.py); the join and the write are C, ~1 ms.
_BATCH = 16384
#: Past this many waiting records, a record is copied to its own size as it is queued.
_COMPACT_AFTER = 256
#: Past this many waiting records, the logging thread hands the GIL to the writer now and then.
_YIELD_AFTER = 4096
#: Seconds the writer pauses after an error of its own (out of memory) before it goes on.
_FAILURE_PAUSE = 0.1
#: Seconds between a forked child's looks, while it logs, for a log file rotated away.
_CHILD_LOOK = 1.0
#: The writer thread's blocked signals (from its birth, see start_bounded). No signal is
#: ever its own: one the main thread holds back while its handler changes (the loop's
#: close) would come here and meet the default action, for most the end of the process.
#: All but SIGTTOU, which the kernel lets a thread that blocks it write to the terminal
#: from a background job (`stty tostop` is there to stop).
_WRITER_BLOCKS = frozenset(signal.valid_signals() - {signal.SIGTTOU})


#: Seconds a thread of aiodaemon's (this writer, a backstop) has to begin once created
#: (it does in microseconds).
BEGIN_WAIT = 2.0


#: What the writer thread writes to; each has write(records), reopen() and close().
Sink: TypeAlias = "FileSink | StreamSink | SyslogSink | TerminalEcho"

_REOPEN = object()
#: reopen only the files whose path names another file now (see follow_rename).
_FOLLOW_RENAME = object()
_STOP = object()
#: the sinks are being closed: an error there is not tried again (a descriptor closed twice).
_CLOSING = object()


class _Reopen:
    """A reopen whose caller is told (``done()``) once the writer carried it out."""

    __slots__ = ("done",)

    def __init__(self, done: Callable[[], object]) -> None:
        self.done = done


class LogWriter:
    """The writer thread and its bounded queue; owns the sinks once started."""

    def __init__(self, sinks: list[Sink], queue_size: int) -> None:
        self.sinks = sinks
        #: records refused because the queue was full (or logged after a failed close).
        self.dropped = 0
        self._reported = 0
        self._syslog_lost_reported = 0
        self._syslog_lost_at = -float("inf")
        self._last_failure = -float("inf")
        #: records lost by each failing sink since its last warning, and the last error.
        self._untold: dict[int, tuple[int, Exception]] = {}
        self._limit = queue_size
        # Bytes queued are _bytes_in - _bytes_out, each written by one side only:
        # a lock per record would cost more than the count. Two loggers racing on
        # _bytes_in lose an update now and then, which only makes the bound looser.
        self._bytes_in = 0
        self._bytes_out = 0
        # A deque is thread-safe for append/popleft without a lock; the event is
        # only touched when the writer sleeps, not once per record.
        self._queue: deque[object] = deque()
        self._wakeup = threading.Event()
        self._idle = False
        self._closed = False
        #: set by the writer as it takes its last records: later ones go to fd 2.
        self._drained = False
        # Taken only by a refusal and once as the writer drains: a record refused
        # as the writer told its last count would be counted and never told, and
        # two threads refusing at once would lose a count. Reentrant: a signal
        # handler that logs may interrupt a refusal on the main thread.
        self._refusing = threading.RLock()
        #: no record is queued any more: the writer took its last, or close() gave up on it.
        self._shut = False
        #: the thread whose records alone are still taken (see seal), or None.
        self._sealed_by: int | None = None
        #: that thread's records, written after every other at the drain (see seal).
        self._final: list[Record] = []
        self._finished = False
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
        #: the batch being written and the request being carried out, for _recover.
        self._batch: list[Record] = []
        self._request: object = None
        #: the request _recover queued again: tried twice, it is given up.
        self._retried: object = None
        #: the first error of the writer's own (out of memory) not yet logged, and
        #: the records of the batches it and the later ones struck.
        self._failure: tuple[Exception, int] | None = None
        #: called on the caller's thread at each reopen requested here (a signal,
        #: not one passed on by another process): an upgrade passes it on.
        self.reopen_listeners: list[Callable[[], None]] = []
        #: the ``stdout``/``stderr`` files, moved to the new file at a reopen after a rotation.
        self.outputs: list[OutputFile] = []
        #: in a forked child, when it next looks for a rotated log file (see _follow_rotation).
        self._look_at: float | None = None
        self._thread = self._new_thread()

    def _new_thread(self) -> threading.Thread:
        # A daemon thread: a sink stalled for good must not keep the process alive.
        return threading.Thread(target=self._run, name="aiodaemon-log-writer", daemon=True)

    def put(self, severity: int, line: bytes) -> None:
        """Hand a rendered record to the writer; never blocks."""
        queue = self._queue
        waiting = len(queue)
        size = len(line)
        if (
            waiting >= self._limit
            or self._shut
            or (self._bytes_in - self._bytes_out + size > QUEUE_BYTES and waiting)
        ):
            if self._sealed_by is not None:
                self._last_words(severity, line)
                return
            self._refuse(line)
            return
        self._bytes_in += size
        if waiting > _YIELD_AFTER and not waiting % 1024:
            # A thread logging flat out keeps the GIL but for one turn in each switch
            # interval: the writer falls behind. Letting it have the GIL now and then
            # (a GIL hand-over, never a wait on a sink) keeps the queue from overflowing.
            time.sleep(0)
        if waiting > _COMPACT_AFTER:
            # orjson's bytes keep its whole output buffer (4 KB and more) however
            # short the line: a full queue of them would hold 130-260 MB, not the
            # few MB of its lines. Only a record that will wait pays for the copy.
            line = bytes(memoryview(line))
        record = (severity, line)
        queue.append(record)
        if self._drained:
            # Queued as the writer took its last records (another thread's, at exit):
            # taken back, unless the writer already had it, to go to fd 2.
            try:
                queue.remove(record)
            except ValueError:
                return
            self._refuse(line)
            return
        if self._idle:
            self._idle = False
            self._wakeup.set()

    def seal(self) -> None:
        """From now on take this thread's records only: a forced exit's last words.

        The process ends next: what other threads log from now on (a program
        logging flat out) is dropped, neither counted nor sent to fd 2, and the
        last words are written after everything queued, at :meth:`close`.
        """
        self._sealed_by = threading.get_ident()
        self._shut = True

    def _last_words(self, severity: int, line: bytes) -> None:
        if self._sealed_by != threading.get_ident() or self._drained:
            return
        # Kept apart, written last: a record another thread was putting as the
        # seal came (its check passed, its append not yet done) would follow it.
        self._final.append((severity, line))

    def _refuse(self, line: bytes) -> None:
        with self._refusing:
            if not self._drained:
                self.dropped += 1
                return
        # After a clean close (the loop is gone, the sinks kept up) a late
        # record, such as one from interpreter shutdown, goes straight to fd 2.
        with contextlib.suppress(OSError):
            write_all(2, line)

    def _control(self, marker: object) -> None:
        self._queue.append(marker)
        self._idle = False
        self._wakeup.set()

    def reopen(self, *, pass_on: bool = True, done: Callable[[], object] | None = None) -> None:
        """Reopen the log file after the records already queued; returns at once.

        Args:
            pass_on: tell :attr:`reopen_listeners`; False for a reopen that
                another process passed on to us (it is not passed back).
            done: called on the writer's thread once the files are reopened
                (or refused), and the ``stdout``/``stderr`` files moved: a
                reload waits for it (see ``_run._reload``). Called at once
                when the writer is closed.
        """
        if self._closed:
            if done is not None:
                done()
            return
        self._control(_REOPEN if done is None else _Reopen(done))
        if pass_on:
            for listener in tuple(self.reopen_listeners):
                listener()

    def follow_rename(self) -> None:
        """Reopen, after the records already queued, each log file whose path names another file.

        For a rotation this process may have missed (an upgrade's take-over):
        a file still at its path is left alone, so a directory the daemon's
        user cannot reopen in costs no warning.
        """
        if not self._closed:
            self._control(_FOLLOW_RENAME)

    def close(self, timeout: float) -> bool:
        """Write every accepted record, then stop the thread and close the sinks.

        Args:
            timeout: seconds to wait for the queue to drain.

        Returns:
            False when the writer did not finish in time (a stalled sink).
        """
        if not self._closed:
            self._closed = True
            self._control(_STOP)
        self._thread.join(max(timeout, 0.0))
        if not self._finished:
            # A stalled sink: what is logged from now on is counted, not queued for
            # nothing (what raced in now is lost with the rest of the queue).
            self._shut = True
        return self._finished

    def _run(self) -> None:
        try:
            while not self._finished:
                try:
                    self._loop()
                except Exception as exc:
                    # Out of memory (RLIMIT_AS), any allocation here may fail: a
                    # writer that ended would lose every later record, the exit's
                    # too, with nothing said in the log.
                    if self._request is _CLOSING:
                        raise
                    self._recover(exc)
        except BaseException:
            # A bug here must not pass for a drained queue at close(): say it on fd 2.
            with contextlib.suppress(OSError):
                write_all(2, f"aiodaemon: log writer failed\n{traceback.format_exc()}".encode())

    def _recover(self, exc: Exception) -> None:
        """After an error of the writer's own: count the batch it struck, retry its request once."""
        dropped, self._batch = len(self._batch), []
        request, self._request = self._request, None
        first, before = self._failure or (exc, 0)
        self._failure = first, before + dropped
        if request is _STOP or (request is not None and request is not self._retried):
            # The stop must still drain and close the sinks; a reopen is tried once more.
            self._retried = request
            self._queue.appendleft(request)
        elif request is not None:
            # Given up. Forgotten too: a SIGUSR1's reopen is one object, and the
            # next one would be taken for this one, given up at its first error.
            self._retried = None
            if type(request) is _Reopen:
                with contextlib.suppress(Exception):
                    request.done()
        # Memory may come back meanwhile; a fault that stays must not spin the CPU.
        time.sleep(_FAILURE_PAUSE)

    def _loop(self) -> None:
        queue = self._queue
        if self._failure is not None:
            # Ahead of the records logged since, so the log reads in order.
            self._report_failure(*self._failure)
        batch: list[Record] = []
        self._batch = batch
        while True:
            while queue and len(batch) < _BATCH:
                item = queue.popleft()
                if type(item) is tuple:
                    batch.append(item)
                    self._bytes_out += len(item[1])
                    continue
                self._request = item
                self._write(batch)
                self._batch = batch = []
                if item is _STOP:
                    for sink in self.sinks:
                        if is_syslog_sink(sink):
                            # Messages still waiting for a collector that is down
                            # go with the process: counted, and told in _report.
                            sink.give_up()
                    # From here a record goes to fd 2 (see _refuse), not counted
                    # after the count was told; those queued behind the stop
                    # (another thread's, logged during the drain) are written first.
                    with self._refusing:
                        self._drained = self._shut = True
                    while queue:
                        late = queue.popleft()
                        if type(late) is tuple:
                            batch.append(late)
                    batch.extend(self._final)
                    self._write(batch)
                    self._batch = batch = []
                    self._report(final=True)
                    for sink in self.sinks:
                        # No later warning will come: the losses of the last second are told now.
                        count, exc = self._untold.get(id(sink), (0, None))
                        if count and exc is not None:
                            self._sink_failed(sink, exc, 0, final=True)
                    self._request = _CLOSING
                    for sink in self.sinks:
                        sink.close()
                    self._finished = True
                    return
                self._reopen(only_moved=item is _FOLLOW_RENAME)
                self._request = self._retried = None
                if type(item) is _Reopen:
                    # The caller's (a call into a loop that may be closed by now):
                    # whatever it raises must not end the writer.
                    with contextlib.suppress(Exception):
                        item.done()
            if batch:
                if self._look_at is not None:
                    self._follow_rotation()
                self._write(batch)
                self._batch = batch = []
                self._report()
                continue
            self._idle = True
            waiting = [sink for sink in self.sinks if is_syslog_sink(sink) and sink.backlog]
            if not queue:
                # Messages waiting for a syslog daemon that is down are retried
                # even when nothing new is logged.
                slow = any(sink.blocked for sink in waiting)
                retry = _BLOCKED_RETRY if slow else _RETRY_INTERVAL
                self._wakeup.wait(retry if waiting else None)
            self._wakeup.clear()
            self._idle = False
            for sink in waiting:
                try:
                    sink.retry()
                except Exception as exc:
                    # As a failed write: said, and the thread (every sink's) goes on.
                    self._sink_failed(sink, exc, 0)
            self._report_refusals()

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

    def _start(self) -> None:
        try:
            start_bounded(self._thread, _WRITER_BLOCKS)
        except RuntimeError as exc:  # RLIMIT_NPROC, a cgroup's pids.max, no memory
            raise StartupError(f"cannot start the log writer thread: {exc}") from exc

    def _after_fork_in_child(self) -> None:
        # A child forked later (multiprocessing) gets no writer thread and a copy
        # of the parent's queue: start afresh so its records are written once.
        self._queue.clear()
        self._bytes_out = self._bytes_in
        self._wakeup = threading.Event()
        # Held by another thread at the fork, it would never be released here.
        self._refusing = threading.RLock()
        self._idle = False
        self._look_at = 0.0
        self._thread = self._new_thread()
        if not self._closed:
            start_bounded(self._thread, _WRITER_BLOCKS)
        else:
            # No writer here to take them: refused and counted.
            self._shut = True


class _BoundedBegin(threading.Event):
    """A ``Thread._started`` that ``Thread.start()`` waits on at most BEGIN_WAIT.

    CPython's ``Thread.start()`` waits for the new thread to begin without a
    limit. Out of memory (``RLIMIT_AS``), a thread may be created (its stack
    reused from one that ended, or mapped in the last space left) and fail
    before it begins, on an allocation: the start of a daemon waited for ever
    on its log writer, a shutdown on the very backstop meant to bound it.
    """

    def wait(self, timeout: float | None = None) -> bool:
        return super().wait(BEGIN_WAIT if timeout is None else timeout)


def start_bounded(thread: threading.Thread, blocked: frozenset[int] | None = None) -> None:
    """Start ``thread``, waiting at most BEGIN_WAIT for it to begin.

    It is born with the signals ``blocked`` blocked (by default every one).

    Raises:
        RuntimeError: no thread can be started (RLIMIT_NPROC, a cgroup's
            pids.max, no memory), or it did not begin in time.
    """
    # The event start() waits on (the same private name in CPython 3.11 to 3.13).
    begun = thread._started = _BoundedBegin()  # type: ignore[attr-defined]
    # Born with every signal blocked: no signal is ever one of our threads'.
    # Set in the thread itself, its mask came too late: glibc blocks every
    # signal in this thread while it creates the other, and a stop signal sent
    # then went to the new thread before it blocked it, its Python handler run
    # only when the main thread next ran Python code (seconds later, if sync
    # code blocked the loop), and taken for a second request.
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, blocked or signal.valid_signals())
    try:
        thread.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    # Not is_alive(): a thread may have begun and already ended.
    if not begun.is_set():
        raise RuntimeError(f"its thread did not begin within {BEGIN_WAIT:g}s (out of memory?)")


def _stderr_is_watched() -> bool:
    """Whether fd 2 is a terminal or a regular file: where a person would look."""
    try:
        mode = os.fstat(2).st_mode
    except OSError:
        return False
    return stat.S_ISREG(mode) or os.isatty(2)
