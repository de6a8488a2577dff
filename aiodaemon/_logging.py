"""Structured logging: structlog and stdlib ``logging`` to a file, syslog or stderr.

Records are rendered on the thread that logs them (orjson is fast, and the
bound context and exception are only valid there) and handed as bytes to a
bounded queue; one writer thread, started after the last fork, batches them
into the sinks. The event loop thread therefore never waits on a disk, a
socket or a full pipe.

Full-queue policy: a record that finds the queue full is refused at once
(never blocking the caller) and counted in :attr:`LogWriter.dropped`; as soon
as the writer has made room it logs one ``log records dropped`` warning with
the count. Reopen and close requests are never refused: they are ordered
within the record stream, so records logged before a reopen go to the old
file and records logged after it to the new one.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import stat
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias

import structlog

from ._config import Options
from ._logchain import (
    QueueLogger,
    QueueLoggerFactory,
    StdlibHandler,
    processors,
    set_pid,
    wants_colors,
)
from ._logsinks import (
    FileSink,
    Record,
    StreamSink,
    SyslogSink,
    open_file_sink,
    open_syslog_sink,
    write_all,
)
from .exceptions import StartupError

if TYPE_CHECKING:
    from ._logecho import TerminalEcho

__all__ = ["LogTargets", "LogWriter", "open_log_targets", "start_logging"]

#: Records the queue holds before refusing more (about 7 MB of 200-byte lines,
#: half a second at 50,000 lines/s: enough to ride out a slow disk or a rotation).
DEFAULT_QUEUE_SIZE = 32_768
#: Seconds between retries of a syslog daemon that is down, when nothing new is logged.
_RETRY_INTERVAL = 0.5
#: At most this many records per write(): bounds the writer's time holding the GIL.
_BATCH = 2048


class LogTargets:
    """Log sinks opened in the launching process, before the fork and the privilege drop."""

    def __init__(self, file: FileSink | None, syslog: SyslogSink | None) -> None:
        self.file = file
        self.syslog = syslog
        #: the writer :func:`start_logging` handed the sinks to; closed with them.
        self.writer: LogWriter | None = None
        #: seconds the writer may take to drain its queue at :meth:`close`.
        self.drain_timeout = 5.0

    def __enter__(self) -> LogTargets:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def keep_fds(self) -> list[int]:
        """Descriptors that must survive the detach's close-all."""
        fds = []
        if self.file is not None:
            fds.append(self.file.fd)
        if self.syslog is not None and self.syslog.sock is not None:
            fds.append(self.syslog.sock.fileno())
        return fds

    def chown(self, uid: int | None, gid: int | None) -> None:
        """Give the log file to the user the daemon drops to, so it can reopen and rotate it.

        Raises:
            StartupError: the file cannot be given away.
        """
        if self.file is None or (uid is None and gid is None):
            return
        try:
            os.fchown(self.file.fd, -1 if uid is None else uid, -1 if gid is None else gid)
        except OSError as exc:
            raise StartupError(f"cannot chown log_file {self.file.path}: {exc.strerror}") from exc

    def close(self) -> None:
        """Drain and stop the writer if logging started, else close the sinks themselves."""
        if self.writer is not None:
            self.writer.close(self.drain_timeout)
        if self.file is not None:
            self.file.close()
            self.file = None
        if self.syslog is not None:
            self.syslog.close()
            self.syslog = None


def open_log_targets(options: Options) -> LogTargets:
    """Open ``log_file`` and connect a Unix ``syslog`` socket, failing on the terminal.

    Raises:
        StartupError: ``cannot open log_file PATH: reason`` or an unreachable syslog.
    """
    file = open_file_sink(options.log_file) if options.log_file is not None else None
    try:
        syslog = open_syslog_sink(options.syslog) if options.syslog is not None else None
    except StartupError:
        if file is not None:
            file.close()
        raise
    return LogTargets(file, syslog)


#: What the writer thread writes to; each has write(records), reopen() and close().
Sink: TypeAlias = "FileSink | StreamSink | SyslogSink | TerminalEcho"

_REOPEN = object()
_STOP = object()


class LogWriter:
    """The writer thread and its bounded queue; owns the sinks once started."""

    def __init__(self, sinks: list[Sink], queue_size: int) -> None:
        self.sinks = sinks
        #: records refused because the queue was full (or logged after a failed close).
        self.dropped = 0
        self._reported = 0
        self._syslog_lost_reported = 0
        self._last_failure = -float("inf")
        self._limit = queue_size
        # A deque is thread-safe for append/popleft without a lock; the event is
        # only touched when the writer sleeps, not once per record.
        self._queue: deque[object] = deque()
        self._wakeup = threading.Event()
        self._idle = False
        self._closed = False
        self._drained = False
        self._finished = False
        self._notice: Callable[..., Any] | None = None
        #: where the writer's own notices go (None: every sink); set on the writer thread.
        self._notice_sinks: list[Sink] | None = None
        #: sinks whose last write failed; their losses are reported once one succeeds.
        self._failing: set[int] = set()
        self._lost_reported: dict[int, int] = {}
        #: failed reopens not yet told to a newly opened file.
        self._reopen_failures: list[str] = []
        self._thread = self._new_thread()

    def _new_thread(self) -> threading.Thread:
        # A daemon thread: a sink stalled for good must not keep the process alive.
        return threading.Thread(target=self._run, name="aiodaemon-log-writer", daemon=True)

    def put(self, severity: int, line: bytes) -> None:
        """Hand a rendered record to the writer; never blocks."""
        queue = self._queue
        if len(queue) >= self._limit or self._closed:
            self._refuse(line)
            return
        queue.append((severity, line))
        if self._idle:
            self._idle = False
            self._wakeup.set()

    def _refuse(self, line: bytes) -> None:
        if self._closed and self._drained:
            # After a clean close (the loop is gone, the sinks kept up) a late
            # record, such as one from interpreter shutdown, goes straight to fd 2.
            with contextlib.suppress(OSError):
                write_all(2, line)
            return
        self.dropped += 1

    def _control(self, marker: object) -> None:
        self._queue.append(marker)
        self._idle = False
        self._wakeup.set()

    def reopen(self) -> None:
        """Reopen the log file after the records already queued; returns at once."""
        if not self._closed:
            self._control(_REOPEN)

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
        self._drained = self._finished
        return self._drained

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException:
            # A bug here must not pass for a drained queue at close(): say it on fd 2.
            with contextlib.suppress(OSError):
                write_all(2, f"aiodaemon: log writer failed\n{traceback.format_exc()}".encode())

    def _loop(self) -> None:
        queue = self._queue
        batch: list[Record] = []
        while True:
            while queue and len(batch) < _BATCH:
                item = queue.popleft()
                if type(item) is tuple:
                    batch.append(item)
                    continue
                self._write(batch)
                batch = []
                if item is _STOP:
                    self._report()
                    for sink in self.sinks:
                        sink.close()
                    self._finished = True
                    return
                self._reopen()
            if batch:
                self._write(batch)
                batch = []
                self._report()
                continue
            self._idle = True
            waiting = [sink for sink in self.sinks if isinstance(sink, SyslogSink) and sink.backlog]
            if not queue:
                # Messages waiting for a syslog daemon that is down are retried
                # even when nothing new is logged.
                self._wakeup.wait(_RETRY_INTERVAL if waiting else None)
            self._wakeup.clear()
            self._idle = False
            for sink in waiting:
                sink.retry()

    def _write(self, batch: list[Record], sinks: list[Sink] | None = None) -> None:
        if not batch:
            return
        for sink in self.sinks if sinks is None else sinks:
            try:
                sink.write(batch)
            except Exception as exc:
                self._failing.add(id(sink))
                self._sink_failed(sink, exc, len(batch))
            else:
                self._failing.discard(id(sink))

    def _write_now(self, severity: int, line: bytes) -> None:
        self._write([(severity, line)], self._notice_sinks)

    def _sink_failed(self, sink: Sink, exc: Exception, count: int) -> None:
        # The failing sink cannot carry its own error: tell the other sinks and
        # a stderr someone reads, once a second.
        now = time.monotonic()
        if now - self._last_failure >= 1.0:
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
        self, text: str, *, failing: Sink, event: str, to_failing: bool = False, **kw: Any
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

    def _reopen(self) -> None:
        for sink in self.sinks:
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
                if isinstance(sink, FileSink) and self._reopen_failures:
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

    def _report(self) -> None:
        dropped = self.dropped
        lost = sum(sink.lost for sink in self.sinks if isinstance(sink, SyslogSink))
        if dropped > self._reported:
            self._log(
                "warning",
                "log records dropped",
                dropped=dropped - self._reported,
                reason="queue full",
            )
            self._reported = dropped
        if lost > self._syslog_lost_reported:
            self._log("warning", "syslog records lost", lost=lost - self._syslog_lost_reported)
            self._syslog_lost_reported = lost
        for sink in self.sinks:
            if not isinstance(sink, FileSink | StreamSink) or id(sink) in self._failing:
                continue
            # Writing works again (space came back on a full disk): one record
            # in the log itself says how many records it is missing.
            reported = self._lost_reported.get(id(sink), 0)
            if sink.lost > reported:
                self._lost_reported[id(sink)] = sink.lost
                self._log(
                    "warning",
                    "log records lost",
                    lost=sink.lost - reported,
                    sink=repr(sink),
                    error=str(sink.last_error),
                )

    def _log(self, level: str, event: str, **kw: Any) -> None:
        if self._notice is not None:
            with contextlib.suppress(Exception):
                getattr(self._notice, level)(event, **kw)

    def _start(self) -> None:
        self._thread.start()

    def _after_fork_in_child(self) -> None:
        # A child forked later (multiprocessing) gets no writer thread and a copy
        # of the parent's queue: start afresh so its records are written once.
        self._queue.clear()
        self._wakeup = threading.Event()
        self._idle = False
        self._thread = self._new_thread()
        if not self._closed:
            self._thread.start()


def _stderr_is_watched() -> bool:
    """Whether fd 2 is a terminal or a regular file: where a person would look."""
    try:
        mode = os.fstat(2).st_mode
    except OSError:
        return False
    return stat.S_ISREG(mode) or os.isatty(2)


def _reopen_path(path: str, chroot: str | None) -> str | None:
    """The log file's path as the daemon sees it after ``chroot``; None if outside it."""
    if chroot is None:
        return path
    real, root = os.path.realpath(path), os.path.realpath(chroot)
    if real == root:
        return "/"
    if not real.startswith(root.rstrip("/") + "/"):
        return None
    return "/" + os.path.relpath(real, root)


def start_logging(
    targets: LogTargets,
    options: Options,
    *,
    detached: bool,
    container: bool = False,
    queue_size: int = DEFAULT_QUEUE_SIZE,
) -> LogWriter:
    """Configure structlog and stdlib logging and start the writer thread.

    Called once in the daemon, after the last fork and the privilege drop and
    before the event loop exists; takes ownership of ``targets``' sinks.

    Args:
        targets: what :func:`open_log_targets` opened in the launching process.
        options: the daemon's options (``log_level``, ``log_format``, ``chroot``).
        detached: whether stdio is no longer a terminal we were started from.
        container: started as PID 1 (a container): stderr is the container's
            log stream, read by a collector, even when it is a TTY (``-t``).
        queue_size: records the queue holds before refusing more.
    """
    pid = os.getpid()
    set_pid(pid)
    sinks: list[Sink] = []
    if targets.file is not None:
        targets.file.reopen_path = _reopen_path(targets.file.path, options.chroot)
        sinks.append(targets.file)
    if targets.syslog is not None:
        targets.syslog.pid = pid
        sinks.append(targets.syslog)
    # From here on the writer thread owns the sinks: targets.close() must not close them.
    targets.file = targets.syslog = None
    log_format = options.log_format
    colors = False
    if not sinks:
        sinks.append(StreamSink(2))
        on_terminal = not detached and not container and os.isatty(2)
        if log_format is None and on_terminal:
            log_format = "console"
        # Colour codes only on stderr (a person's terminal, or FORCE_COLOR for
        # a CI log viewer), never into a file or syslog.
        colors = wants_colors(on_terminal)
    elif not detached and os.isatty(2):
        # A foreground daemon logging to a file still shows its warnings and
        # errors to the person at the terminal.
        from ._logecho import TerminalEcho

        sinks.append(TerminalEcho(2, json_lines=log_format != "console", colors=wants_colors(True)))
    chain = processors(log_format or "json", colors=colors)
    writer = LogWriter(sinks, queue_size)

    structlog.configure(
        processors=chain,
        wrapper_class=structlog.make_filtering_bound_logger(options.log_level),
        logger_factory=QueueLoggerFactory(writer.put),
        context_class=dict,
        cache_logger_on_first_use=True,
    )
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
        old.close()
    root.addHandler(StdlibHandler(chain, writer.put, options.log_level))
    root.setLevel(options.log_level)
    # A detached daemon's stderr is /dev/null: warnings must reach the log too.
    logging.captureWarnings(True)

    # The writer's own notices (records dropped, a failed reopen) are written at
    # once on its thread: queueing them could be refused, or land after a close.
    writer._notice = structlog.wrap_logger(
        QueueLogger("aiodaemon.logging", writer._write_now),
        processors=chain,
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
    )
    writer._start()
    targets.writer = writer
    os.register_at_fork(after_in_child=lambda: _after_fork(writer))
    # Safety net for an exit that skips the runtime's close (sys.exit in a hook):
    # accepted records are still written, within a bounded time.
    atexit.register(_close_at_exit, writer)
    return writer


def _after_fork(writer: LogWriter) -> None:
    pid = os.getpid()
    set_pid(pid)
    for sink in writer.sinks:
        if isinstance(sink, SyslogSink):
            sink.pid = pid
    writer._after_fork_in_child()
    mp_util = sys.modules.get("multiprocessing.util")
    if mp_util is not None:
        # multiprocessing children leave through os._exit, skipping atexit, and
        # clear the finalizers they inherit: register ours after that clearing.
        mp_util.register_after_fork(writer, _drain_at_multiprocessing_exit)


def _drain_at_multiprocessing_exit(writer: LogWriter) -> None:
    import multiprocessing.util

    multiprocessing.util.Finalize(writer, _close_at_exit, args=(writer,), exitpriority=-100)


def _close_at_exit(writer: LogWriter) -> None:
    if not writer._closed:
        writer.close(5.0)
