"""The log writer: one thread and a bounded queue between the loggers and the sinks.

Records arrive rendered (bytes) from whatever thread logs them; the writer
batches them into the sinks (files, syslog, stderr), so the event loop never
waits on a disk, a socket or a full pipe. What it does with the sinks, and
says of their failures, is :mod:`._sinkwriter`'s.

Full-queue policy: a record that finds the queue full is refused at once
(never blocking the caller) and counted in :attr:`LogWriter.dropped`; as soon
as the writer has made room it logs one ``log records dropped`` warning with
the count. Reopen and close requests are never refused: they are ordered
within the record stream, so records logged before a reopen go to the old
file and records logged after it to the new one.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from .._prefork._logsinks import is_syslog_sink, write_all
from ..exceptions import StartupError
from ._sinkwriter import SinkWriter

if TYPE_CHECKING:
    from .._prefork._logsinks import Record
    from ._sinkwriter import Sink

__all__ = ["BEGIN_WAIT", "DEFAULT_QUEUE_SIZE", "QUEUE_BYTES", "LogWriter", "start_bounded"]

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
#: The writer thread's blocked signals (from its birth, see start_bounded). No signal is
#: ever its own: one the main thread holds back while its handler changes (the loop's
#: close) would come here and meet the default action, for most the end of the process.
#: All but SIGTTOU, which the kernel lets a thread that blocks it write to the terminal
#: from a background job (`stty tostop` is there to stop).
_WRITER_BLOCKS = frozenset(signal.valid_signals() - {signal.SIGTTOU})


#: Seconds a thread of aiodaemon's (this writer, a backstop) has to begin once created
#: (it does in microseconds).
BEGIN_WAIT = 2.0

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


class LogWriter(SinkWriter):
    """The writer thread and its bounded queue; owns the sinks once started."""

    def __init__(self, sinks: list[Sink], queue_size: int) -> None:
        super().__init__(sinks)
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
        #: the batch being written and the request being carried out, for _recover.
        self._batch: list[Record] = []
        self._request: object = None
        #: the request _recover queued again: tried twice, it is given up.
        self._retried: object = None
        #: called on the caller's thread at each reopen requested here (a signal,
        #: not one passed on by another process): an upgrade passes it on.
        self.reopen_listeners: list[Callable[[], None]] = []
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

    def _start(self) -> None:
        try:
            start_bounded(self._thread, _WRITER_BLOCKS)
        except RuntimeError as exc:  # RLIMIT_NPROC, a cgroup's pids.max, no memory
            from .._prefork._nproc import nproc_note  # only a refused thread pays for it

            raise StartupError(f"cannot start the log writer thread: {exc}{nproc_note()}") from exc

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
