"""Configure phase: validate every option before anything is acquired or forked.

Every bad input raises :class:`ConfigError` naming the option, so the launching
process can print one line and exit non-zero with nothing started.
"""

from __future__ import annotations

import collections
import logging
import math
import os
import stat
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, NoReturn

from ..exceptions import ConfigError, StartupError
from ._messages import shown

if TYPE_CHECKING:
    from typing import NamedTuple as _Record

    from ._addresses import ListenAddress, SyslogTarget
    from ._identity import Identity

__all__ = [
    "HEALTH_SOCKET",
    "OPTION_NAMES",
    "Options",
    "parse_options",
    "socket_label",
]

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


if not TYPE_CHECKING:

    class _RecordType(type):
        """Makes a class body a ``collections.namedtuple``, as ``typing.NamedTuple`` does.

        Without reading the annotations: ``typing.NamedTuple`` compiles each
        (strings here) into a ``ForwardRef``, ~0.2 ms of every start for
        ``Options``, and nothing ever evaluates them.
        """

        def __new__(mcs, name: str, bases: tuple[type, ...], body: dict[str, Any]) -> type:
            if not bases:
                return super().__new__(mcs, name, bases, body)
            fields = list(body["__annotations__"])
            defaults = [body[field] for field in fields if field in body]
            cls = collections.namedtuple(name, fields, defaults=defaults, module=body["__module__"])
            for key, value in body.items():
                if key not in fields and key != "__module__":
                    setattr(cls, key, value)
            return cls

    class _Record(metaclass=_RecordType):
        pass


# A named tuple, not a dataclass, which every daemon's start-up would pay ~0.3 ms
# to define: immutable all the same, with _replace and _fields.


class Options(_Record):
    """Validated options of one daemon; built only by :func:`parse_options`."""

    pidfile: str | None = None
    detach: bool | None = None
    #: None: not given. A detached daemon enters ``/``; one in the foreground
    #: stays where it was started (systemd's WorkingDirectory=, a WORKDIR).
    workdir: str | None = None
    umask: int = 0o022
    stdout: str | None = None
    stderr: str | None = None
    log_file: str | None = None
    syslog: SyslogTarget | None = None
    log_level: int = logging.INFO
    log_format: Literal["json", "console"] | None = None
    listen: Mapping[str, ListenAddress] = MappingProxyType({})
    identity: Identity | None = None
    chroot: str | None = None
    prevent_core: bool = True
    #: after dropping root: PR_SET_NO_NEW_PRIVS and an empty capability bounding set.
    no_new_privileges: bool = True
    files_preserve: tuple[int, ...] = ()
    shutdown_timeout: float = 30.0
    uvloop: bool | None = None
    ready: Literal["startup", "manual"] = "startup"
    # --- serving (DESIGN section 4) ---
    drain_delay: float = 0.0
    health: ListenAddress | None = None
    #: the control socket's path (None: no control socket); see :func:`_control`.
    control: str | None = None
    start_timeout: float = 90.0

    def socket_addresses(self) -> dict[str, ListenAddress]:
        """The address options of the sockets the daemon listens on: ``listen=`` and ``health``."""
        addresses = dict(self.listen)
        if self.health is not None:
            addresses[HEALTH_SOCKET] = self.health
        return addresses

    def summary(self) -> dict[str, object]:
        """The options not at their defaults, under their public names, as JSON values.

        For the ``starting`` log line: short enough to read, and made only of
        what the user could have written (``user``/``group``, not the resolved
        identity; ``listen`` is left to the line's ``sockets``, which shows the
        bound addresses).
        """
        result: dict[str, object] = {}
        defaults = self._field_defaults
        value: Any
        for name, value in zip(self._fields, self, strict=True):
            if name == "listen" or value == defaults[name]:
                continue
            if name == "control" and self.pidfile is not None and value == self.pidfile + ".ctl":
                continue  # the default derived from the pidfile
            if name == "identity":
                if value.uid is not None:
                    result["user"] = value.user_name or value.uid
                if value.group is not None:  # not the user's primary group, resolved
                    result["group"] = value.group
                continue
            if name in ("syslog", "health"):
                value = str(value)
            elif name == "umask":
                value = f"{value:04o}"
            elif name == "log_level":
                value = logging.getLevelName(value).lower()
            elif isinstance(value, tuple):
                value = list(value)
            result[name] = value
        return result


OPTION_NAMES = frozenset(Options._fields) - {"identity"} | {
    "user",
    "group",
}


def _unknown_option(name: object) -> str:
    """``unknown option``, with the closest name when ``name`` looks like a typo (``pid_file``)."""
    if not isinstance(name, str):
        return "unknown option"
    import difflib  # only on this error path: a start does not pay for it

    matches = difflib.get_close_matches(name, sorted(OPTION_NAMES), n=1)
    return f"unknown option; did you mean {matches[0]}?" if matches else "unknown option"


def parse_options(raw: Mapping[str, Any]) -> Options:
    """Validate keyword options as given to ``run()``.

    Raises:
        ConfigError: naming the first invalid option.
    """
    unknown = sorted(set(raw) - OPTION_NAMES)
    if unknown:
        name = unknown[0]
        # repr() for odd names: a newline in a ** key must not split the error line.
        raise ConfigError(name if name.isidentifier() else repr(name), _unknown_option(name))
    chroot = _opt_dir("chroot", raw.get("chroot"), must_be_absolute=True)
    if chroot is not None and os.geteuid() != 0:
        # Refused here like user=, not after the fork with a late exit 1.
        raise ConfigError("chroot", "changing the root directory needs root", needs_privilege=True)
    workdir = _workdir(raw, chroot)
    pidfile = _opt_file("pidfile", raw.get("pidfile"), regular_only=True)
    outputs = {
        name: _opt_file(name, raw.get(name), regular_only=True)
        for name in ("stdout", "stderr", "log_file")
    }
    _check_not_pidfile(pidfile, outputs)
    options = Options(
        pidfile=pidfile,
        detach=_opt_bool("detach", raw.get("detach"), allow_none=True),
        workdir=workdir,
        umask=_umask(raw.get("umask", 0o022)),
        stdout=outputs["stdout"],
        stderr=outputs["stderr"],
        log_file=outputs["log_file"],
        syslog=_syslog(raw.get("syslog")),
        log_level=_log_level(raw.get("log_level", "info")),
        log_format=_log_format(raw.get("log_format")),
        listen=_listen(raw.get("listen")),
        identity=_identity(raw.get("user"), raw.get("group")),
        chroot=chroot,
        prevent_core=bool(_opt_bool("prevent_core", raw.get("prevent_core", True))),
        no_new_privileges=bool(_opt_bool("no_new_privileges", raw.get("no_new_privileges", True))),
        files_preserve=_files_preserve(raw.get("files_preserve", ())),
        shutdown_timeout=_timeout(raw.get("shutdown_timeout", 30.0)),
        uvloop=_uvloop(raw.get("uvloop")),
        ready=_ready(raw.get("ready", "startup")),
        **_serving_options(raw),
        control=_control(raw.get("control"), pidfile),
        start_timeout=_timeout(raw.get("start_timeout", 90.0), "start_timeout"),
    )
    if options.control is not None or options.listen or options.health is not None:
        _check_socket_paths(options, implicit_control=raw.get("control") is None)
    return options


def _check_socket_paths(options: Options, *, implicit_control: bool = False) -> None:
    """Refuse a socket path that another of the daemon's files or sockets has.

    Found by the bind, it was "Address already in use" or "file exists and is
    a regular file" (exit 1) for a file the same start had just made. Paths
    are compared as written (normalised), without a system call: two spellings
    through a symlinked directory are still refused by the bind.
    ``implicit_control``: the control socket is ``<pidfile>.ctl`` by default.

    Raises:
        ConfigError: naming the socket's option, or the file's when the
            control socket was not given (the user never wrote ``control``).
    """
    files = (
        ("pidfile", options.pidfile, "the pidfile"),
        ("log_file", options.log_file, "the log file"),
        ("stdout", options.stdout, "the stdout file"),
        ("stderr", options.stderr, "the stderr file"),
    )
    taken = {
        os.path.normpath(path): (option, what) for option, path, what in files if path is not None
    }
    sockets = [("control", options.control, "the control socket")]
    for name, address in options.listen.items():
        sockets.append(
            (f"listen[{name}]", getattr(address, "path", None), f"listen socket {name!r}")
        )
    sockets.append(("health", getattr(options.health, "path", None), "the health socket"))
    for option, path, what in sockets:
        if path is None:
            continue
        key = os.path.normpath(path)
        if key in taken:
            other, what_there = taken[key]
            if option == "control" and implicit_control:
                # Only a file can be there yet: name the option the user wrote.
                option, what_there = other, "the control socket (the pidfile's path + .ctl)"
            raise ConfigError(
                option,
                f"{path} is also {what_there}; each of the daemon's files and sockets"
                " needs a path of its own",
            )
        taken[key] = (option, what)
    _check_socket_ports(options)


def _check_socket_ports(options: Options) -> None:
    """Refuse a TCP address (host as written, a port other than 0) given twice.

    Found by the bind, it was "Address already in use" (exit 1); with
    ``?reuseport`` on both, both were bound and the kernel split the
    connections between two servers of one daemon.

    Raises:
        ConfigError: naming the second option.
    """
    if len(options.listen) + (options.health is not None) < 2:
        return  # nothing to clash (and _addresses stays unloaded: issue 16)
    from ._addresses import InetAddress

    addresses: list[tuple[str, object, str]] = [
        (f"listen[{name}]", address, f"listen socket {name!r}")
        for name, address in options.listen.items()
    ]
    addresses.append(("health", options.health, "the health socket"))
    taken: dict[tuple[str, int], str] = {}
    for option, address, what in addresses:
        if not isinstance(address, InetAddress) or address.port == 0:
            continue
        key = (address.host.lower(), address.port)
        if key in taken:
            raise ConfigError(
                option,
                f"{address} is also {taken[key]}; each of the daemon's sockets needs an"
                " address of its own",
            )
        taken[key] = what


def _clean(text: str) -> str:
    """``text`` as ``str(pathlib.PurePosixPath(text))`` spells it, without pathlib's import.

    Empty and "." components and trailing slashes go; ".." stays (it may cross
    a symlink). Paths are plain strings here: the start-up of every daemon
    would otherwise pay for importing pathlib (and urllib.parse, ipaddress).
    """
    head = "/" if text.startswith("/") else ""
    if text.startswith("//") and not text.startswith("///"):
        head = "//"  # POSIX leaves a leading "//" to the implementation
    return head + "/".join(part for part in text.split("/") if part not in ("", ".")) or "."


def _workdir(raw: Mapping[str, Any], chroot: str | None) -> str | None:
    """The ``workdir`` option, absolute and checked; None when not given (or None)."""
    workdir = _as_path("workdir", raw.get("workdir"))
    if workdir is None:
        return None
    if chroot is not None:
        # Inside a chroot the cwd of the launcher means nothing: "srv" and "/srv"
        # both name <chroot>/srv.
        workdir = _clean("/" + workdir.lstrip("/"))
    elif not os.path.isabs(workdir):
        # First: in a removed current directory, "srv" was "not a directory".
        workdir = os.path.realpath(_absolute("workdir", workdir))
    real_workdir = _clean(f"{chroot}/{workdir}") if chroot else workdir
    if not os.path.isdir(real_workdir):
        raise ConfigError("workdir", f"not a directory: {real_workdir}")
    _check_enterable(real_workdir)
    return workdir


def _check_enterable(workdir: str) -> None:
    """Refuse a workdir this process may not enter, before the fork hides why.

    Only a user who is not root meets this (root enters any directory; a
    daemon that drops to ``user=`` is checked as that user after the drop).
    Found later, the daemon's ``chdir`` failed after the detach, where its
    error reached no one: the launcher said only that the daemon exited.

    Raises:
        ConfigError: the directory denies search permission to our effective ids.
    """
    if os.access(workdir, os.X_OK, effective_ids=True):
        return
    from ._identity import effective_user

    raise ConfigError("workdir", f"{workdir}: {effective_user()} cannot enter it")


def _as_path(option: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str | os.PathLike):
        raise ConfigError(option, f"must be a path, not {type(value).__name__}")
    raw = os.fspath(value)
    if not isinstance(raw, str):
        raise ConfigError(option, "must be a str path, not bytes")
    if not raw:
        raise ConfigError(option, "must not be empty")
    text = path = _clean(raw)
    if "\0" in text:
        raise ConfigError(option, "must not contain a NUL byte")
    # A newline in a path would split the one-line error (and log lines) in two.
    if any(ord(c) < 0x20 or c == "\x7f" for c in text):
        raise ConfigError(option, f"must not contain control characters: {text!r}")
    try:
        encoded = os.fsencode(text)
    except UnicodeEncodeError:
        raise ConfigError(option, f"not encodable as a file name: {text!r}") from None
    # Checked here, not left to stat(): ENAMETOOLONG would escape as OSError.
    if len(encoded) >= 4096 or any(len(part) > 255 for part in encoded.split(b"/")):
        raise ConfigError(option, f"path too long: {text[:40]!r}...")
    return path


def _opt_file(option: str, value: object, *, regular_only: bool = False) -> str | None:
    """A file we create later: absolute, in an existing writable directory anyone may not empty.

    ``regular_only``: anything but a regular file already at the path is
    refused (see :func:`_check_regular_or_absent`).
    """
    path = _as_path(option, value)
    if path is None:
        return None
    raw = os.fspath(value) if isinstance(value, str | os.PathLike) else path
    if os.path.basename(raw) in ("", "."):
        # "app.pid/" names a directory: the file made at "app.pid" was one the
        # same argument could not reach (`status --pidfile app.pid/`: ENOTDIR).
        raise ConfigError(option, f"not a file path: {raw}")
    path = _absolute(option, path)
    parent, name = os.path.split(path)
    if name in ("", ".", ".."):
        raise ConfigError(option, f"not a file path: {path}")
    if not os.path.isdir(parent):
        raise ConfigError(option, f"directory does not exist: {parent}")
    if regular_only:
        _check_regular_or_absent(option, path)
    if os.path.isdir(path):
        raise ConfigError(option, f"is a directory: {path}")
    if not os.access(parent, os.W_OK | os.X_OK) and not os.access(path, os.W_OK):
        _refuse_unwritable(option, parent)
    check_open_directory(option, parent)
    return path


def _refuse_unwritable(option: str, parent: str) -> NoReturn:
    """Say why ``parent``, a directory we may not write, is so.

    Raises:
        StartupError: it is on a read-only file system, which root could not
            write either and no option fixes: exit 1, as the failure to create
            the file there would be.
        ConfigError: its permissions forbid it; ``needs_privilege`` when we
            are not root, who would have been allowed (the CLI's start: exit 4).
    """
    try:
        read_only = bool(os.statvfs(parent).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    if read_only:
        raise StartupError(f"{option}: directory is on a read-only file system: {parent}")
    raise ConfigError(
        option, f"directory is not writable: {parent}", needs_privilege=os.geteuid() != 0
    )


def _check_regular_or_absent(option: str, path: str) -> None:
    """Refuse what is at ``path`` when it exists and is not a regular file.

    Found here by ``lstat`` (a symlink is never followed, to a directory
    either), it is a bad option like a directory that does not exist, exit 2,
    for the pidfile and the output files alike. Before, only a directory was,
    and a FIFO, socket, device or symlink was found by the acquire (exit 1).
    One put there after this check still is: the open itself refuses it
    (``O_NOFOLLOW``, then ``fstat``).

    Raises:
        ConfigError: naming what is there.
    """
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return  # absent, or out of reach: the acquire says why, if it matters
    if stat.S_ISREG(mode):
        return
    if stat.S_ISLNK(mode):
        raise ConfigError(option, f"{path} is a symlink; refusing to follow it")
    from ._filekind import describe_mode

    hint = ""
    if option in ("stdout", "stderr") and os.path.realpath(path) == os.devnull:
        hint = f"; not given, it is {os.devnull} already when detached"
    raise ConfigError(option, f"{path} is {describe_mode(mode)}, not a regular file{hint}")


def _absolute(option: str, path: str) -> str:
    """``path`` absolute, as ``os.path.abspath`` makes it; see :func:`._cwd.absolute_path`."""
    if os.path.isabs(path):
        return os.path.normpath(path)
    # Only a relative path needs the current directory (and the module).
    from ._cwd import absolute_path

    return absolute_path(option, path)


def _check_not_pidfile(pidfile: str | None, outputs: Mapping[str, str | None]) -> None:
    """Refuse an output file that is the pidfile: its records would be removed with it at exit."""
    if pidfile is None:
        return
    for name, path in outputs.items():
        if path is not None and _real(path) == _real(pidfile):
            raise ConfigError(
                name, f"is the pidfile {pidfile}, which holds the pid and goes at exit"
            )


def _real(path: str) -> tuple[str, str]:
    """``path``'s directory resolved, and its name: a symlinked directory names the same file."""
    return os.path.realpath(os.path.dirname(path)), os.path.basename(path)


def _opt_dir(option: str, value: object, *, must_be_absolute: bool = False) -> str | None:
    path = _as_path(option, value)
    if path is None:
        return None
    if must_be_absolute and not os.path.isabs(path):
        raise ConfigError(option, f"must be an absolute path: {path}")
    if not os.path.isdir(path):
        raise ConfigError(option, f"not a directory: {path}")
    return path


def _opt_bool(option: str, value: object, *, allow_none: bool = False) -> bool | None:
    if value is None and allow_none:
        return None
    if not isinstance(value, bool):
        expected = "True, False or None" if allow_none else "True or False"
        raise ConfigError(option, f"must be {expected}, not {shown(value)}")
    return value


def _umask(value: object) -> int:
    if isinstance(value, str):
        # Only a string loads it (the CLI's --umask; run() is given ints).
        from ._addresses import parse_octal

        try:
            value = parse_octal(value)
        except ValueError:
            raise ConfigError("umask", f"not an octal number: {shown(value)}") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError("umask", f"must be an int such as 0o022, not {shown(value)}")
    if not 0 <= value <= 0o777:
        octal = shown(value) if value.bit_length() > 64 else f"{value:#o}"
        raise ConfigError("umask", f"must be between 0o000 and 0o777, not {octal}")
    return value


def _log_level(value: object) -> int:
    if isinstance(value, str) and value.lower() in _LEVELS:
        return _LEVELS[value.lower()]
    if isinstance(value, int) and not isinstance(value, bool) and value in _LEVELS.values():
        return value
    raise ConfigError(
        "log_level",
        f"must be one of debug, info, warning (or warn), error, critical, not {shown(value)}",
    )


def _log_format(value: object) -> Literal["json", "console"] | None:
    if value is None or value == "json" or value == "console":
        return value
    raise ConfigError("log_format", f"must be 'json', 'console' or None, not {shown(value)}")


def _ready(value: object) -> Literal["startup", "manual"]:
    if value == "startup" or value == "manual":
        return value
    raise ConfigError("ready", f"must be 'startup' or 'manual', not {shown(value)}")


#: The longest a timeout or delay stands for (infinity too): 1e9 s is 31 years,
#: "as long as it takes"; past ~9.2e9 s a thread's wait overflows (OverflowError: the backstop
#: threads died, and the exit ended in a traceback).
_LONGEST_SECONDS = 1e9


def _timeout(value: object, option: str = "shutdown_timeout") -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(option, f"must be a number of seconds, not {shown(value)}")
    seconds = _as_float(value)
    if math.isnan(seconds) or seconds <= 0:
        raise ConfigError(option, f"must be a positive number of seconds, not {shown(value)}")
    return min(seconds, _LONGEST_SECONDS)


def _as_float(value: int | float) -> float:
    """``value`` as a float: an int past the largest one (10**400) is an infinity."""
    try:
        return float(value)
    except OverflowError:  # not a traceback from run(): as long as it takes, or negative
        return math.inf if value > 0 else -math.inf


def _control(value: object, pidfile: str | None) -> str | None:
    """The control socket's path: given, ``<pidfile>.ctl`` by default, or none (False).

    An implicit ``<pidfile>.ctl`` whose name is too long for a unix socket is
    kept here and skipped with a warning at acquire (see ``_acquire``), as one
    in a directory the daemon may not write to is: the user asked for none.
    """
    if value is False:
        return None
    if value is None:
        return None if pidfile is None else pidfile + ".ctl"
    if value is True:
        raise ConfigError("control", "must be a path, None or False, not True")
    path = _opt_file("control", value)
    return None if path is None else _check_socket_name(path)


def _check_socket_name(path: str) -> str:
    """``path``, once sure a control socket can be bound there (see :mod:`._sunpath`).

    Found later, the bind failed in the acquire phase with "AF_UNIX path too
    long", naming no option.

    Raises:
        ConfigError: the socket's file name is too long even so.
    """
    from ._sunpath import name_too_long

    too_long = name_too_long(path)
    if too_long is not None:
        raise ConfigError("control", f"{path} {too_long}")
    return path


def _uvloop(value: object) -> bool | None:
    choice = _opt_bool("uvloop", value, allow_none=True)
    if choice:
        import importlib.util  # only uvloop=True asks

        if importlib.util.find_spec("uvloop") is None:
            raise ConfigError("uvloop", "uvloop=True but uvloop is not installed")
    return choice


def _files_preserve(value: object) -> tuple[int, ...]:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise ConfigError(
            "files_preserve", f"must be a sequence of fds or files, not {shown(value)}"
        )
    fds: list[int] = []
    for item in value:
        if isinstance(item, int) and not isinstance(item, bool):
            fd = item
        elif callable(getattr(item, "fileno", None)):
            try:
                fd = item.fileno()
            except (OSError, ValueError) as exc:
                raise ConfigError(
                    "files_preserve", f"{shown(item)} has no usable fileno: {exc}"
                ) from None
            if not isinstance(fd, int) or isinstance(fd, bool):
                raise ConfigError("files_preserve", f"{shown(item)}.fileno() returned {shown(fd)}")
        else:
            raise ConfigError("files_preserve", f"not an fd or file: {shown(item)}")
        try:
            os.fstat(fd)
        except (OSError, OverflowError):
            raise ConfigError("files_preserve", f"fd {shown(fd)} is not open") from None
        fds.append(fd)
    return tuple(sorted(set(fds)))


def _syslog(value: object) -> SyslogTarget | None:
    if value is None:
        return None
    # Addresses are parsed by a module of their own, loaded only when one is given.
    from ._addresses import parse_syslog

    return parse_syslog(value)


#: sd_listen_fds_with_names(3): systemd refuses a longer FileDescriptorName=.
_FD_NAME_MAX = 255


def _fd_name(name: str) -> bool:
    """Whether systemd could pass a socket under this name (its ``fdname_is_valid``).

    A name it cannot pass would work bound by us and never once adopted from
    socket activation; ':' separates the names in ``LISTEN_FDNAMES``.
    """
    return len(name) <= _FD_NAME_MAX and all(" " <= c <= "~" and c != ":" for c in name)


def _listen(value: object) -> dict[str, ListenAddress]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError("listen", f"must be a mapping of name to address, not {shown(value)}")
    from ._addresses import parse_listen_address

    result: dict[str, ListenAddress] = {}
    for name, address in value.items():
        if not isinstance(name, str) or not name:
            raise ConfigError("listen", f"bad socket name {shown(name)}")
        if not _fd_name(name):
            raise ConfigError(
                "listen",
                f"bad socket name {shown(name)}: a name is printable ASCII without ':',"
                f" at most {_FD_NAME_MAX} characters (as systemd's FileDescriptorName=)",
            )
        result[name] = parse_listen_address(f"listen[{name}]", address)
    return result


# --- serving: drain_delay, health (DESIGN section 4) ---------------------------------

#: The ``listen=`` name the health socket takes: systemd socket activation passes
#: it as the fd named "health" (``FileDescriptorName=health``).
HEALTH_SOCKET = "health"


def socket_label(name: str, health: bool = True) -> str:
    """How messages name socket ``name``: ``health`` for the health socket, else ``listen[NAME]``.

    The user gave ``health=``, not a ``listen=`` entry ("health" is refused as a
    ``listen=`` name beside it), so "listen[health]: cannot bind ..." would send
    them looking for one.

    Args:
        name: the socket's name.
        health: whether a socket named ``health`` is the ``health=`` one; without
            ``health=``, it is a ``listen=`` entry of that name.
    """
    return "health" if health and name == HEALTH_SOCKET else f"listen[{name}]"


def _serving_options(raw: Mapping[str, Any]) -> dict[str, Any]:
    drain_delay = raw.get("drain_delay", 0.0)
    if isinstance(drain_delay, bool) or not isinstance(drain_delay, int | float):
        raise ConfigError("drain_delay", f"must be a number of seconds, not {shown(drain_delay)}")
    delay = _as_float(drain_delay)
    if math.isnan(delay) or delay < 0:
        raise ConfigError(
            "drain_delay", f"must be zero or a positive number, not {shown(drain_delay)}"
        )
    health = raw.get("health")
    if health is not None:
        listen = raw.get("listen")
        if isinstance(listen, Mapping) and HEALTH_SOCKET in listen:
            raise ConfigError(
                "health", f"listen name {HEALTH_SOCKET!r} is taken by the health socket"
            )
        from ._addresses import parse_listen_address

        if isinstance(health, str) and not health.startswith("unix:") and "?" in health:
            if health.endswith("?reuseport"):
                # A probe must reach the daemon it asks about, not any one sharing the port.
                raise ConfigError(
                    "health", f"?reuseport is for listen= sockets only: {shown(health)}"
                )
            # Checked before the listen= parser, whose "expected ?reuseport after
            # the port" would send the user to the option refused just above.
            raise ConfigError("health", f"takes nothing after the port: {shown(health)}")
        health = parse_listen_address("health", health)
    return {"drain_delay": min(delay, _LONGEST_SECONDS), "health": health}


def _identity(user: object, group: object) -> Identity | None:
    if user is None and group is None:
        return None
    # The identity's module (and the user and group databases) only for a
    # daemon that changes identity.
    from ._identity import parse_identity

    return parse_identity(user, group)


def check_open_directory(option: str, directory: str) -> None:
    """Refuse a daemon file in a world-writable directory without the sticky bit.

    Anyone may rename or remove any file there and put their own in its place:
    a pidfile whose pid ``stop`` then signals, or a log file the daemon's next
    reopen (SIGUSR1) adopts, which its planter reads and forges.

    Raises:
        ConfigError: ``directory`` is such a directory.
    """
    from ._sharedfile import is_open_to_all

    if is_open_to_all(os.stat(directory).st_mode):
        raise ConfigError(
            option, f"directory is world-writable without the sticky bit: {directory}"
        )
