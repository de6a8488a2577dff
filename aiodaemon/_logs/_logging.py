"""Structured logging: structlog and stdlib ``logging`` to a file, syslog or stderr.

Records are rendered on the thread that logs them (orjson is fast, and the
bound context and exception are only valid there) and handed as bytes to a
bounded queue; one writer thread (``_logwriter``), started after the last
fork, batches them into the sinks. The event loop thread therefore never
waits on a disk, a socket or a full pipe. The sinks are opened in the launching
process (:mod:`aiodaemon._prefork._logsinks`); this module configures structlog and
stdlib ``logging`` in the daemon.
"""

from __future__ import annotations

import atexit
import gc
import logging
import os
import stat
import sys
import threading
from typing import TYPE_CHECKING, Any

import structlog

from .._prefork._config import Options
from .._prefork._logsinks import StreamSink, is_syslog_sink
from ._logchain import (
    QueueLogger,
    QueueLoggerFactory,
    StdlibHandler,
    filtering_bound_logger,
    import_bound_processors,
    processors,
    set_pid,
    wants_colors,
)
from ._logwriter import DEFAULT_QUEUE_SIZE, LogWriter
from ._sinkwriter import Sink

if TYPE_CHECKING:
    from sys import UnraisableHookArgs

    from .._prefork._logsinks import LogTargets
    from ._program_config import ProgramChain

__all__ = ["program_config_summary", "reader_ends", "start_logging"]


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
        options: the daemon's options (``log_level``, ``log_format``, the output files).
        detached: whether stdio is no longer a terminal we were started from.
        container: started as PID 1 (a container): stderr is the container's
            log stream, read by a collector, even when it is a TTY (``-t``).
        queue_size: records the queue holds before refusing more.
    """
    pid = os.getpid()
    set_pid(pid)
    sinks: list[Sink] = []
    if targets.file is not None:
        targets.file.reopen_path = targets.seen(targets.file.path)
        sinks.append(targets.file)
    if targets.syslog is not None:
        targets.syslog.pid = pid
        if targets.syslog.target.transport == "unix":
            # A syslog daemon's restart makes a new socket: the jail's own (an
            # extra rsyslog socket in the chroot) is found at its path inside.
            # Any other path is tried as given: the jail may have a /dev/log.
            syslog_path = targets.syslog.target.path
            targets.syslog.path = targets.seen(syslog_path) or syslog_path
        sinks.append(targets.syslog)
    # From here on the writer thread owns the sinks: targets.close() must not close them.
    targets.file = targets.syslog = None
    log_format = options.log_format
    colors = False
    # Files and syslog get UTF-8; console lines on stderr are for a person, in
    # the encoding Python would write stderr in.
    encoding = "utf-8"
    if not sinks:
        sinks.append(StreamSink(2))
        encoding = terminal_encoding()
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

        echo = TerminalEcho(
            2,
            json_lines=log_format != "console",
            colors=wants_colors(True),
            encoding=terminal_encoding(),
            out=targets.echo,
        )
        targets.echo = None  # the echo owns it now
        sinks.append(echo)
    chain = processors(log_format or "json", colors=colors, encoding=encoding)
    writer = LogWriter(sinks, queue_size)
    owner = options.identity.uid if options.identity is not None else None
    for fd, option, path in ((1, "stdout", options.stdout), (2, "stderr", options.stderr)):
        if path is not None:
            # Loaded here, not at import: a bare daemon has no output file
            # (launch's _preload loads it, before a chroot or a drop, when one has).
            from ._outputs import OutputFile

            writer.outputs.append(OutputFile(fd, option, path, targets.seen(path), owner))

    if _runs.started:
        _forget_cached_loggers()
    else:
        _take_over_import_config()
    _runs.started = True
    # structlog records only: the stdlib's never went through the program's processors.
    program_step = _runs.program.processor() if _runs.program is not None else None
    structlog_chain = chain if program_step is None else [program_step, *chain]
    structlog.configure(
        processors=structlog_chain,
        wrapper_class=filtering_bound_logger(options.log_level),
        logger_factory=QueueLoggerFactory(writer.put),
        context_class=dict,
        cache_logger_on_first_use=True,
    )
    if _runs.import_bound is not None:
        # In place, at every run: those loggers cannot be found and rebuilt.
        _runs.import_bound[:] = import_bound_processors(
            structlog_chain, writer.put, options.log_level
        )
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
        old.close()
    root.addHandler(StdlibHandler(chain, writer.put, options.log_level))
    root.setLevel(options.log_level)
    # A detached daemon's stderr is /dev/null: warnings must reach the log too,
    # and so must a thread's uncaught exception and one Python can only ignore
    # (in a __del__, a callback of the collector), unless the program has a hook.
    logging.captureWarnings(True)
    if threading.excepthook is threading.__excepthook__:
        threading.excepthook = _log_thread_exception
    if sys.unraisablehook is sys.__unraisablehook__:
        sys.unraisablehook = _log_unraisable

    # The writer's own notices (records dropped, a failed reopen) are written at
    # once on its thread: queueing them could be refused, or land after a close.
    writer._notice = structlog.wrap_logger(
        QueueLogger("aiodaemon.logging", writer._write_now),
        processors=chain,
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
    )
    # A foreground daemon's stdout and stderr, unless files of ours: a print
    # once their reader is gone must not end main (see _fullstdio).
    readers = [] if detached else reader_ends({output.fd for output in writer.outputs})
    if writer.outputs or readers:
        # Loaded with _outputs (see there), or for a foreground daemon's pipe or
        # terminal: a detached daemon without output files never pays for it.
        from ._fullstdio import StandardStream, protect_outputs

        # Queued, not written at once as the writer's own notices are: the
        # loss happens on the program's thread, in a print(), which must not
        # wait for a sink (the failing file may be one).
        losses = structlog.wrap_logger(
            QueueLogger("aiodaemon.logging", writer.put),
            processors=chain,
            wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        )
        streams = [StandardStream(fd, kind) for fd, kind in readers]
        protect_outputs([*writer.outputs, *streams], losses)
        writer.protects_stdio = True
    writer._start()
    targets.writer = writer
    if _runs.writer is None:
        # Once per process, for the writer of the latest run: registered for
        # each, they kept every run's writer alive (a test suite's thousand
        # foreground runs: ~25 kB each).
        os.register_at_fork(after_in_child=_after_fork_latest)
        # Safety net for an exit that skips the runtime's close (sys.exit in a
        # hook): accepted records are still written, within a bounded time.
        atexit.register(_close_latest_at_exit)
    _runs.writer = writer
    return writer


def reader_ends(skip: set[int] | frozenset[int] = frozenset()) -> list[tuple[int, str]]:
    """fd 1 and 2 (but ``skip``) when on a pipe, a socket or a terminal, with what each is.

    Their reader may go (a pipe's reader exits, a terminal hangs up); a file
    or /dev/null has none.
    """
    ends = []
    for fd in (1, 2):
        if fd in skip:
            continue
        try:
            mode = os.fstat(fd).st_mode
        except OSError:
            continue  # closed
        if stat.S_ISFIFO(mode):
            ends.append((fd, "pipe"))
        elif stat.S_ISSOCK(mode):
            ends.append((fd, "socket"))
        elif stat.S_ISCHR(mode) and os.isatty(fd):
            ends.append((fd, "terminal"))
    return ends


class _Runs:
    """Whether a run of this process has configured logging already."""

    started = False
    #: the processor list the loggers made at import hold (structlog's default
    #: one, or the program's), if it can be filled in.
    import_bound: list[Any] | None = None
    #: what is kept of the program's own structlog configuration, if it made one.
    program: ProgramChain | None = None
    #: the latest run's writer (an earlier one is closed), for the fork and exit hooks.
    writer: LogWriter | None = None


_runs = _Runs()


def _take_over_import_config() -> None:
    """The first run: take over what the program configured and made at import.

    A program that called ``structlog.configure()`` (its processors, its logger
    factory printing to stdout, cached loggers) had its loggers' records
    printed in its format on stdout, /dev/null when detached, for every logger
    but one made after the start; nothing said so. Its processors now run in
    front of aiodaemon's (:mod:`._program_config`), its cached loggers are
    forgotten, and the loggers it bound at import write through the list they
    hold, as those made from structlog's defaults do.
    """
    config = structlog.get_config()
    held = config["processors"]
    if isinstance(held, list):
        _runs.import_bound = held
    if not structlog.is_configured():
        return
    # Loaded for such a program only (launch's _preload loads it before a drop).
    from ._program_config import ProgramChain

    _runs.program = ProgramChain(held)
    if config["cache_logger_on_first_use"]:
        _forget_cached_loggers()


def program_config_summary() -> dict[str, list[str]] | None:
    """The program's processors kept and replaced, if it configured structlog itself."""
    return _runs.program.summary() if _runs.program is not None else None


def _forget_cached_loggers() -> None:
    """No logger may write through a configuration replaced since it was used.

    structlog's ``get_logger()`` proxies (aiodaemon's own and the program's, made
    at import) keep the logger they built on first use (``cache_logger_on_first_use``):
    at a second ``run()`` in this process, the first run's writer, closed by now
    (its records went to fd 2 instead of the second run's log file), level and
    format; at the first, the program's own configuration's. Forgetting it
    makes the next call build one from the new configuration. Rare, so a walk over every
    object is affordable; the start-up's frozen objects (see ``hold_gc``) are
    thawed for it and frozen again, as they were.
    """
    proxy_type = type(structlog.get_logger())
    frozen = gc.get_freeze_count()
    if frozen:
        gc.unfreeze()
    try:
        for obj in gc.get_objects():
            if type(obj) is proxy_type and "bind" in vars(obj):
                del obj.bind
    finally:
        if frozen:
            gc.freeze()


def _log_thread_exception(args: threading.ExceptHookArgs) -> None:
    """``threading.excepthook``: a thread's uncaught exception as an error record.

    SystemExit ends its thread without a word, as with Python's own hook.
    """
    if args.exc_type is SystemExit:
        return
    thread = args.thread.name if args.thread is not None else None
    exc_info = (args.exc_type, args.exc_value, args.exc_traceback)
    structlog.get_logger("aiodaemon").error(
        "unhandled exception in thread", thread=thread, exc_info=exc_info
    )


#: Characters of the ``object`` an ignored exception names (a function, most often).
_OBJECT_REPR_LIMIT = 500


def _log_unraisable(unraisable: UnraisableHookArgs) -> None:
    """``sys.unraisablehook``: an exception Python ignores (in a ``__del__``) as a record."""
    try:
        where = repr(unraisable.object)[:_OBJECT_REPR_LIMIT]
    except Exception:
        where = f"<{type(unraisable.object).__name__} object>"
    exc_info = (unraisable.exc_type, unraisable.exc_value, unraisable.exc_traceback)
    structlog.get_logger("aiodaemon").error(
        "exception ignored",
        detail=unraisable.err_msg or "Exception ignored in",
        object=where,
        exc_info=exc_info if unraisable.exc_value is not None else None,
    )


def _after_fork_latest() -> None:
    if _runs.writer is not None:
        _after_fork(_runs.writer)


def _close_latest_at_exit() -> None:
    if _runs.writer is not None:
        _close_at_exit(_runs.writer)


def _after_fork(writer: LogWriter) -> None:
    pid = os.getpid()
    set_pid(pid)
    for sink in writer.sinks:
        if is_syslog_sink(sink):
            sink.forked(pid)
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


def terminal_encoding() -> str:
    """The encoding Python writes stderr in (the locale's, or ``PYTHONIOENCODING``'s).

    Console lines on fd 2 are for the person at that terminal: a Latin-1 or
    ASCII one shows UTF-8 bytes as ``caf\u00c3\u00a9``. Its codec is loaded
    at interpreter start, so it is still found after a chroot.
    """
    return getattr(sys.stderr, "encoding", None) or "utf-8"
