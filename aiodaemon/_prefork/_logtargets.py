"""The log targets: the file and syslog sinks, opened on the terminal before the fork.

Opening them is part of acquiring (a missing directory or an unreachable syslog
fails the start with one line); :func:`aiodaemon._logs._logging.start_logging` takes
them over in the daemon. Nothing here imports structlog or asyncio.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Protocol

from ..exceptions import StartupError
from ._logsinks import FileSink, open_file_sink

if TYPE_CHECKING:
    from ._config import Options
    from ._syslogsink import SyslogSink

__all__ = ["LogTargets", "open_log_targets"]


class _Writer(Protocol):
    """The log writer that took the sinks over (``_logs._logwriter.LogWriter``)."""

    def close(self, timeout: float) -> object: ...


class LogTargets:
    """Log sinks opened in the launching process, before the fork and the privilege drop."""

    def __init__(self, file: FileSink | None, syslog: SyslogSink | None) -> None:
        self.file = file
        self.syslog = syslog
        #: the writer :func:`start_logging` handed the sinks to; closed with them.
        self.writer: _Writer | None = None
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
            raise StartupError(
                f"cannot chown log_file {self.file.path}: {exc.strerror}", option="log_file"
            ) from exc

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
    owner = options.identity.uid if options.identity is not None else None
    file = open_file_sink(options.log_file, owner) if options.log_file is not None else None
    try:
        syslog = None
        if options.syslog is not None:
            from .._prefork._syslogsink import (
                open_syslog_sink,
            )  # only a daemon with syslog= loads it

            syslog = open_syslog_sink(options.syslog, owner)
    except StartupError:
        if file is not None:
            file.close()
        raise
    return LogTargets(file, syslog)
