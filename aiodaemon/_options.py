"""The keyword options of ``run()`` as a ``TypedDict``, so a type checker catches a typo.

Only for type checkers and readers: ``aiodaemon._prefork._config.parse_options``
still validates every value at run time (the CLI and untyped callers go there).
"""

from __future__ import annotations

import os
import ssl  # not for type checkers alone: get_type_hints(ServerOptions); asyncio loads it anyway
from collections.abc import Iterable, Mapping
from typing import Literal, Protocol, TypeAlias, TypedDict

__all__ = ["DaemonOptions", "HasFileno", "ServerOptions", "StrPath"]

#: A path as ``open()`` takes it, minus bytes (paths go into JSON log lines).
StrPath: TypeAlias = str | os.PathLike[str]


class HasFileno(Protocol):
    """Anything with ``fileno()``: a file, a socket, a selector."""

    def fileno(self) -> int: ...


class DaemonOptions(TypedDict, total=False):
    """Options of ``aiodaemon.run`` and ``aiodaemon.Daemon.run``; every key optional.

    The meaning of each is in the options reference (docs/options.md).
    """

    #: locked with ``flock``, holds the daemon's pid.
    pidfile: StrPath | None
    #: True: double fork; False: foreground; None: detach unless supervised.
    detach: bool | None
    #: working directory; None: "/" once detached, unchanged in the foreground.
    workdir: StrPath | None
    #: file mode creation mask (default 0o022).
    umask: int
    #: files to append the daemon's stdout/stderr to.
    stdout: StrPath | None
    stderr: StrPath | None
    #: JSON-lines log file, reopened on SIGUSR1 and SIGHUP.
    log_file: StrPath | None
    #: True (``/dev/log``), a socket path, ``udp://host:port`` or ``tcp://host:port``.
    syslog: bool | StrPath | None
    #: "debug", "info", "warning", "error" or "critical" in any case, or ``logging.DEBUG``...
    #: A str, not a Literal: "INFO" is as valid, and a level read from the environment
    #: or a config file is a str (run() refuses a bad one with a one-line error).
    log_level: str | int
    log_format: Literal["json", "console"] | None
    #: name -> "host:port", "[v6]:port" or "unix:/path".
    listen: Mapping[str, str] | None
    #: names or ids to drop to after acquiring.
    user: str | int | None
    group: str | int | None
    chroot: StrPath | None
    prevent_core: bool
    #: after dropping root: no setuid or file-capability program can regain privileges.
    no_new_privileges: bool
    #: descriptors kept open across the detach.
    files_preserve: Iterable[int | HasFileno]
    #: seconds for the whole shutdown sequence before a forced exit.
    shutdown_timeout: float
    #: None: use uvloop when installed; True: require it; False: never.
    uvloop: bool | None
    #: "startup": ready once the startup hooks returned; "manual": ctx.notify_ready().
    ready: Literal["startup", "manual"]
    #: control socket path; None: ``<pidfile>.ctl`` with a pidfile; False: none.
    control: StrPath | Literal[False] | None
    #: seconds to become ready before the start fails.
    start_timeout: float
    #: seconds to keep accepting after a stop request while reporting not-ready.
    drain_delay: float
    #: "host:port" or "unix:/path" serving ``/livez`` and ``/readyz``.
    health: str | None


class ServerOptions(TypedDict, total=False):
    """Options of ``Context.start_server``: ``asyncio.start_server``'s on a bound socket.

    Without ``host``, ``port``, ``family``, ``flags`` or ``reuse_*``: the socket
    is the framework's, already bound (they would be refused or ignored).
    """

    #: the StreamReader buffer limit.
    limit: int
    #: the listen() backlog (default: the framework's, ``socket.SOMAXCONN``).
    backlog: int
    ssl: ssl.SSLContext | None
    ssl_handshake_timeout: float | None
    ssl_shutdown_timeout: float | None
    start_serving: bool
