"""Output that cannot be written is lost, not the daemon: a full disk, a reader gone.

A ``stdout`` or ``stderr`` file on a full file system is opened all the same
at start (space may be freed later). A plain stream raised there: the first
``print()`` failed with ``ENOSPC`` and ended ``main``. A file that reaches
``RLIMIT_FSIZE`` did the same with ``EFBIG`` (Python ignores SIGXFSZ, so the
write fails instead of the process being killed).

Here the raw layer under the daemon's ``sys.stdout`` and ``sys.stderr`` drops
what does not fit (``ENOSPC``, ``EDQUOT``, ``EFBIG``), counts it, and writes
again as soon as a write fits: the log says so once per episode, at its start
(``output lost``) and at its end (``output written again``, with the bytes
lost), or at the daemon's exit while it lasts (``output still lost``, see
:func:`tell_losses_at_exit`). The records are queued for the log writer,
never written here: the failing file may be fd 2, where the writer itself
writes, and the writer never writes through ``sys.stderr``, so nothing comes
back to this layer.

A foreground daemon's stdout and stderr on a pipe, a socket or a terminal
(not a ``stdout``/``stderr`` file) lose their reader instead: the pipe's
reader exits (``aiodaemon run app:main | head``), the terminal of a daemon in
a session of its own (``setsid``, ``& disown``) hangs up. The first ``print()``
after that raised ``EPIPE`` or ``EIO`` into the program and ended ``main``; a
print left in the buffer failed the interpreter's last flush, which made the
exit status 120. The same layer drops those writes (``EPIPE``, ``EIO``): the
reader does not come back, so the log says ``output lost`` once and, at the
exit, ``output still lost`` with the bytes lost.

Only what goes through ``sys.stdout`` and ``sys.stderr`` is protected: a C
extension or a child process writing to fd 1 or 2 gets its own error, and so
does an object that held the old stream (``sys.__stdout__``). Any other error
(``EBADF``; ``EIO`` and ``EPIPE`` on a file) is raised as before. The text
layer is built again with the old one's encoding, error handler, line
buffering and write-through, so what is written, and when, is unchanged; a
healthy write costs one Python call more (~0.15 us, on a print of ~1.5 us to a file).

Loaded only for a daemon that has a ``stdout`` or ``stderr`` file, or runs in
the foreground with stdout or stderr on a pipe, a socket or a terminal.
"""

from __future__ import annotations

import contextlib
import errno
import io
import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing import Protocol

    from _typeshed import ReadableBuffer

    from ._outputs import OutputFile

    # For the type checker only: a Protocol class costs ~0.1 ms to create.
    class Logger(Protocol):
        """Where a loss is told: ``warning(event, **fields)`` must not block (a queue)."""

        def warning(self, event: str, **fields: Any) -> object: ...


__all__ = [
    "GONE_ERRORS",
    "SPACE_ERRORS",
    "LossyOutput",
    "StandardStream",
    "protect_outputs",
    "protected_stream",
    "tell_losses_at_exit",
]

#: Why a write to a regular file fails when nothing more fits: its file system
#: is full, the user's quota is used up, or the file reached RLIMIT_FSIZE.
SPACE_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
#: Why a write to a pipe, a socket or a terminal fails once its reader is gone:
#: the pipe's or socket's reader closed it, the terminal hung up.
GONE_ERRORS = frozenset({errno.EPIPE, errno.EIO})


class StandardStream:
    """A foreground daemon's fd 1 or 2 on a pipe, a socket or a terminal (no file of ours).

    Args:
        fd: 1 or 2.
        kind: ``"pipe"``, ``"socket"`` or ``"terminal"`` (for the log).
    """

    __slots__ = ("fd", "kind")

    def __init__(self, fd: int, kind: str) -> None:
        self.fd = fd
        self.kind = kind

    def __repr__(self) -> str:
        return f"{'stdout' if self.fd == 1 else 'stderr'} ({self.kind})"


class _LossLog:
    """Tells a stream's losses to a :class:`Logger`, never from within its own telling."""

    __slots__ = ("_telling", "logger")

    def __init__(self, logger: Logger) -> None:
        self.logger = logger
        self._telling = False

    def warning(self, event: str, **fields: Any) -> None:
        if self._telling:
            return  # the logger itself wrote to this stream (one on stderr): no loop
        self._telling = True
        try:
            self.logger.warning(event, **fields)
        except Exception:
            # Out of memory, say: the print() that got here must not fail for
            # a record about output that is lost anyway.
            pass
        finally:
            self._telling = False


#: FileIO's own write: ``None`` when a non-blocking fd takes nothing (typeshed says ``int``).
_Write = Callable[[io.FileIO, "ReadableBuffer"], "int | None"]
_write: _Write = io.FileIO.write


class LossyOutput(io.FileIO):
    """fd 1 or 2 under ``sys.stdout``/``sys.stderr``: a write that does not fit is dropped.

    While writes are lost the object is a :class:`_LosingOutput`, whose writes
    look for the end of the loss: a healthy write pays for no such check.

    Args:
        output: the ``stdout`` or ``stderr`` file or stream (its repr names it in the log).
        logger: where the loss is told.
        dropped: the errnos whose writes are dropped (:data:`SPACE_ERRORS` for
            a file, :data:`GONE_ERRORS` for a pipe, a socket or a terminal).
    """

    def __init__(
        self,
        output: OutputFile | StandardStream,
        logger: Logger,
        dropped: frozenset[int] = SPACE_ERRORS,
    ) -> None:
        super().__init__(output.fd, "w", closefd=False)
        self.output = output
        self.log = _LossLog(logger)
        self.dropped = dropped
        #: bytes dropped since the loss began (0: writes fit).
        self.lost = 0

    def write(  # type: ignore[override]
        self, data: ReadableBuffer, /, _write: _Write = _write
    ) -> int | None:
        """Write ``data``; what does not fit is dropped and counted, as if written."""
        try:
            written = _write(self, data)
        except OSError as exc:
            if exc.errno not in self.dropped:
                raise
            return self._drop(data, 0, exc)
        # All of it written: the one check a healthy write pays for.
        if written == len(data):  # type: ignore[arg-type]
            return written
        return self._finish(data, written)

    def _finish(self, data: ReadableBuffer, written: int | None) -> int | None:
        """After a write that was cut short (or ``data`` of items larger than a byte)."""
        if written is None:
            return None  # EAGAIN (a non-blocking fd): as FileIO says it
        view = memoryview(data).cast("B")
        while written < len(view):
            # Cut short: the file system filled up (or the size limit came) in
            # this very write. The text layer would drop the rest uncounted.
            try:
                more = _write(self, view[written:])
            except OSError as exc:
                if exc.errno not in self.dropped:
                    # As before: the short write stands, the next one raises.
                    return written
                return self._drop(view, written, exc)
            if not more:
                return written
            written += more
        return written

    def _drop(self, data: ReadableBuffer, written: int, exc: OSError) -> int:
        """Count what ``data`` holds past ``written`` as lost; say so if the loss begins."""
        size = memoryview(data).nbytes
        if not self.lost and size > written:
            self.__class__ = _LosingOutput
            self.log.warning(
                "output lost", file=repr(self.output), error=str(exc), bytes=size - written
            )
        self.lost += size - written
        # Written, for the layer above: a BufferedWriter would otherwise keep
        # it and try again at every write, and the text layer ignores it.
        return size

    def _written_again(self) -> None:
        """End the loss: a write fitted again."""
        self.__class__ = LossyOutput
        lost, self.lost = self.lost, 0
        self.log.warning("output written again", file=repr(self.output), lost=lost)


class _LosingOutput(LossyOutput):
    """A :class:`LossyOutput` whose writes are being lost: the first that fits ends the loss."""

    def write(  # type: ignore[override]
        self, data: ReadableBuffer, /, _write: _Write = _write
    ) -> int | None:
        lost = self.lost
        written = LossyOutput.write(self, data, _write)
        if written and self.lost == lost:
            self._written_again()
        return written


def protected_stream(
    stream: object, output: OutputFile | StandardStream, logger: Logger
) -> io.TextIOWrapper | None:
    """A stream that writes as ``stream`` does, on :class:`LossyOutput`; None to keep ``stream``.

    ``stream`` is kept when it is not a plain text stream on ``output``'s fd
    (the program set its own) or is protected already (a second ``run()`` in
    this process: it reports to this run's log from now on).
    """
    raw = _raw(stream)
    if isinstance(raw, LossyOutput):
        raw.output, raw.log.logger = output, logger
        raw.dropped = GONE_ERRORS if isinstance(output, StandardStream) else SPACE_ERRORS
        return None
    if type(raw) is not io.FileIO or raw.closed or raw.fileno() != output.fd:
        return None
    assert isinstance(stream, io.TextIOWrapper)  # as _raw found it
    buffer = stream.buffer
    with contextlib.suppress(OSError, ValueError):
        stream.flush()  # what it holds goes out through the old stream
    dropped = GONE_ERRORS if isinstance(output, StandardStream) else SPACE_ERRORS
    lossy = LossyOutput(output, logger, dropped)
    # Python's own streams (an upgrade's new process keeps them) have a
    # buffer layer; the detach's (see _stdfds.text_stream) have none.
    layer: io.FileIO | io.BufferedWriter = lossy
    if type(buffer) is io.BufferedWriter:
        # Sized as io.open sizes it: the file system's block size.
        size = getattr(raw, "_blksize", 0)
        layer = io.BufferedWriter(lossy, size if size > 1 else io.DEFAULT_BUFFER_SIZE)
    return io.TextIOWrapper(
        layer,
        encoding=stream.encoding,
        errors=stream.errors,
        line_buffering=stream.line_buffering,
        write_through=stream.write_through,
    )


def protect_outputs(outputs: Iterable[OutputFile | StandardStream], logger: Logger) -> None:
    """Put the ``sys`` stream of each output file or stream on :class:`LossyOutput`."""
    for output in outputs:
        name = "stdout" if output.fd == 1 else "stderr"
        stream = protected_stream(getattr(sys, name), output, logger)
        if stream is not None:
            setattr(sys, name, stream)


def _raw(stream: object) -> io.RawIOBase | None:
    """The raw layer under a plain text stream (through its buffer, if any); None otherwise."""
    if type(stream) is not io.TextIOWrapper:
        return None
    buffer = stream.buffer
    raw = buffer.raw if type(buffer) is io.BufferedWriter else buffer
    return raw if isinstance(raw, io.RawIOBase) else None


def tell_losses_at_exit(*, flush: bool = True) -> None:
    """Before the ``exit`` record: say what a loss still under way has dropped (``lost``).

    ``output written again`` totals an episode when a write fits again; one
    that lasts until the exit was never totalled. Called once the program is
    done, not on any write: a healthy write pays nothing for it.

    Args:
        flush: write out what the streams still hold first (it fits, or is
            counted with the rest); False on a thread other than the main
            one, which may hold a stream's lock in a write that hangs.
    """
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        raw = _raw(stream)
        if not isinstance(raw, LossyOutput):
            continue
        if flush:
            with contextlib.suppress(Exception):  # closed by the program, say
                stream.flush()
        if raw.lost:
            raw.log.warning("output still lost", file=repr(raw.output), lost=raw.lost)
