"""Upgrade hand-off, the old daemon's side: start a successor that inherits our descriptors.

The old daemon starts a fresh process of the same program (its command line,
see :mod:`._invocation` and :mod:`._relaunch`; the same environment; the
launch directory) that inherits, at the same numbers, the pidfile's locked
descriptor and every listening socket; nothing is bound twice and nothing
rebinds. One environment
variable, :data:`HANDOFF_VARIABLE`, names each inherited fd with its role and
what it must be, the old daemon's pid, a one-time secret and a private
socketpair (the *channel*). The successor checks all of it before trusting
any (see :mod:`._adopt`).

Channel lines, one each, ``\n``-ended:

- old → new: ``S<secret>`` (first: the proof), ``G`` (you own the pidfile now);
- new → old: ``R`` (ready), ``W`` (pid written), ``E<code> <message>``
  (failed, or refused the take-over), ``V<version>`` (does not take this
  hand-off's version), and ``N <why>`` (readiness checks not passing yet,
  each new verdict) only to an old daemon whose ``hears`` lists ``N``;
- both ways: ``O`` (a log reopen passed on, see :mod:`aiodaemon._run._upgrade_channel`).

A side ignores (logs at debug) a line it does not know, so a line added
later never fails an upgrade with an earlier release; one the receiver must
act on is sent only to a side that announced it: the old daemon lists the
optional lines it understands in the variable's ``hears`` (:data:`HEARS`;
absent before ``N`` existed, so a successor sends none of them).

Across versions: the old daemon's aiodaemon speaks to the new code's, either of
them the later. The variable's ``v`` (:data:`VERSION`) changes only with a
change an earlier successor cannot take; keys and fd roles may be added
without it (a successor ignores keys it does not know and closes the fds of
roles it does not claim). The envelope (``v``, ``parent``, ``secret``,
``channel``) and the lines ``S`` and ``E`` are the same in every version, so
a successor that does not take ``v`` verifies the channel and answers
``V<the version it takes>`` before it exits: the old daemon can say why (or,
later, start it again with that version). A successor that never reads the
channel (aiodaemon 0.1.0 knows no hand-off) leaves the secret unread, which the
old daemon sees as the channel's reset (see :mod:`aiodaemon._run._upgrade_channel`).

Synchronous and asyncio-free.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import stat
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..exceptions import StartupError
from ._inherited import LIFECYCLE_SIGNALS
from ._readiness import open_pidfd

if TYPE_CHECKING:
    import subprocess

    from ._pidfile import Pidfile

__all__ = [
    "HANDOFF_VARIABLE",
    "HEARS",
    "VERSION",
    "Inherited",
    "Spawned",
    "describe_file",
    "describe_passed",
    "describe_pidfile",
    "describe_socket",
    "give_back_withheld",
    "remember_launch_directory",
    "spawn_successor",
    "withhold_from_children",
    "write_pid_in_place",
]

#: The environment variable that tells a process it is a successor.
HANDOFF_VARIABLE = "AIODAEMON_HANDOFF"
#: The hand-off variable's format version.
VERSION = 1
#: The optional successor lines this old daemon understands, sent in ``hears``.
HEARS = ("N",)

_launch_directory: str | None = None
#: Variables taken out of the environment so that the program's children do
#: not inherit them, given back to the successor (see withhold_from_children).
_withheld: dict[str, str] = {}


def remember_launch_directory(directory: str | None) -> None:
    """Record the working directory the program was started from, before any chdir.

    The successor is started there, so a relative ``python app.py`` or a
    ``python -m`` finds the same files again.
    """
    global _launch_directory
    _launch_directory = directory


def withhold_from_children(names: Sequence[str]) -> None:
    """Remove ``names`` from this process's environment, keeping them for the successor.

    For what belongs to this process alone (the service manager's
    ``NOTIFY_SOCKET``, its watchdog's variables): a child inheriting them would
    speak for the service. The successor is this daemon again, so it gets them.
    """
    for name in names:
        value = os.environ.pop(name, None)
        if value is not None:
            _withheld[name] = value


def give_back_withheld() -> None:
    """Put what :func:`withhold_from_children` took back into the environment.

    For when the daemon's run is over: what the program does next (a second
    ``run()`` under the same service manager) finds the variables as the first
    run did. One the program has set again since is left as it is.
    """
    while _withheld:
        name, value = _withheld.popitem()
        os.environ.setdefault(name, value)


# Plain classes, not dataclasses nor NamedTuples: every daemon loads this
# module on its way to ready (its SIGUSR2 service); a dataclass definition
# costs ~0.3 ms there, a NamedTuple ~0.15 ms (a ForwardRef compiled per field).
class Inherited:
    """One descriptor handed to the successor: its role, name, number and identity."""

    __slots__ = ("configured", "fd", "identity", "name", "options", "role", "unix_file")

    def __init__(
        self,
        role: str,
        name: str,
        fd: int,
        configured: str = "",
        identity: str = "",
        unix_file: str = "",
        options: str | None = "",
    ) -> None:
        #: "pidfile", "listen", or another listening socket's role ("control", "health").
        self.role = role
        #: the ``listen=`` name, the path of a pidfile, or the role again.
        self.name = name
        self.fd = fd
        #: for sockets: the configured address (``str(ListenAddress)``) or path.
        self.configured = configured
        #: for sockets: ``repr(getsockname())``; for the pidfile: ``"dev:ino"``.
        self.identity = identity
        #: for a unix listener file the old daemon created: ``"dev:ino"`` of that file.
        self.unix_file = unix_file
        #: for ``listen=`` sockets: the address's options (``?reuseport``,
        #: ``?mode=0660``, or ""); None from an old daemon that did not say.
        self.options = options

    def __repr__(self) -> str:
        return f"Inherited({self.role!r}, {self.name!r}, fd={self.fd})"

    def to_json(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "name": self.name,
            "fd": self.fd,
            "configured": self.configured,
            "identity": self.identity,
            "unix_file": self.unix_file,
            "options": self.options,
        }


def describe_socket(
    role: str,
    name: str,
    sock: socket.socket,
    configured: str,
    unix_file: tuple[int, int] | None = None,
    options: str = "",
) -> Inherited:
    """The :class:`Inherited` entry for a listening socket we hand over."""
    owned = "" if unix_file is None else f"{unix_file[0]}:{unix_file[1]}"
    identity = repr(sock.getsockname())
    return Inherited(role, name, sock.fileno(), configured, identity, owned, options)


def describe_file(role: str, path: str, fd: int) -> Inherited:
    """The :class:`Inherited` entry for an open file (the log file) we hand over."""
    st = os.fstat(fd)
    return Inherited(role, path, fd, identity=f"{st.st_dev}:{st.st_ino}")


def describe_passed(name: str, fd: int, adopted: tuple[int, int] | None) -> Inherited | None:
    """The entry for a socket-activation fd no ``listen=`` name claims; None if closed since.

    Role ``passed``: the successor keeps it at this very number, as systemd
    gave it (a program may use it by that number, see docs/systemd.md).
    ``adopted``: the socket's (st_dev, st_ino) when it was adopted.

    Raises:
        ValueError: why the fd is not handed on: the program closed the socket
            and the number now holds another file (or it never was a socket).
    """
    try:
        st = os.fstat(fd)
    except OSError:
        return None
    if not stat.S_ISSOCK(st.st_mode):
        raise ValueError("not a socket")
    if (st.st_dev, st.st_ino) != adopted:
        raise ValueError("another socket than the one passed")
    return Inherited("passed", name, fd, identity=f"{st.st_dev}:{st.st_ino}")


def describe_pidfile(pidfile: Pidfile) -> Inherited:
    """The :class:`Inherited` entry for our locked pidfile."""
    st = os.fstat(pidfile.fd)
    return Inherited("pidfile", str(pidfile.path), pidfile.fd, identity=f"{st.st_dev}:{st.st_ino}")


# --- the old daemon's side ----------------------------------------------------------


class Spawned:
    """A successor just started: its process, pidfd, our end of the channel, its stderr."""

    __slots__ = ("channel", "pid", "pidfd", "process", "stderr")

    def __init__(
        self, process: subprocess.Popen[bytes], pidfd: int, channel: socket.socket, stderr: int
    ) -> None:
        #: None once :meth:`release` let the successor go.
        self.process: subprocess.Popen[bytes] | None = process
        self.pid = process.pid
        self.pidfd = pidfd
        self.channel = channel
        #: read end of the pipe that is the successor's fd 2 until the hand-over.
        self.stderr = stderr

    def exit_status(self) -> int | None:
        """The exit code if the successor has exited, without reaping it (None if running).

        Left unreaped, its pid and process group cannot be reused before
        :meth:`kill` signals them (pids are recycled fast on a busy host).
        """
        try:
            result = os.waitid(os.P_PIDFD, self.pidfd, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return None
        if result is None:
            return None
        if result.si_code == os.CLD_EXITED:
            return result.si_status
        return -result.si_status

    def kill(self) -> None:
        """SIGKILL the successor and its process group, then reap it and close everything.

        Both signals go out while the successor is unreaped, so neither its
        pid nor its group id can name another process by then.
        """
        self.send_kill()
        if self.process is not None:
            self.process.wait()
        self.close()

    def release(self) -> None:
        """The successor is in charge and outlives us: drop its ``Popen``, knowingly.

        A ``Popen`` collected while its child runs warns "subprocess N is still
        running" (a ``ResourceWarning``: a log record under ``-X dev``, an
        "Exception ignored" under ``-W error``). Here that is the point of the
        upgrade, not a leak: our exit hands the successor to the init process.
        """
        import warnings

        process, self.process = self.process, None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            # The last reference: collected here, under the filter.
            del process

    def send_kill(self) -> None:
        """SIGKILL the successor and its process group, leaving it unreaped."""
        import signal

        if self.pidfd < 0:
            return
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)

    def close(self) -> None:
        """Close the pidfd, the channel and the stderr pipe (not the process)."""
        for fd in (self.pidfd, self.stderr):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.pidfd = self.stderr = -1
        self.channel.close()


def spawn_successor(
    inherited: Sequence[Inherited],
    *,
    detached: bool,
    env: Mapping[str, str] | None = None,
    signals: Collection[int] = (),
    activated: bool = False,
) -> Spawned:
    """Start the successor: this program again, with ``inherited`` at the same fd numbers.

    Args:
        inherited: every descriptor to hand over.
        detached: whether this daemon is detached (the successor behaves the same).
        env: the environment to start from; ``os.environ`` by default.
        signals: the ``on_signal`` signals, held across the exec with the lifecycle ones.
        activated: whether our ``listen=`` sockets came from the service manager.

    Raises:
        StartupError: the program cannot be started again.
    """
    import json
    import subprocess

    # Loaded here, at the first upgrade: read at the start with the rest of the
    # upgrade's modules (see _pinned).
    from ._relaunch import relaunch

    environ = {**(os.environ if env is None else env), **_withheld}
    argv, executable = relaunch(environ, _launch_directory)
    if not argv:
        raise StartupError("upgrade: the command line of this process is unknown")
    # Everything is closed again if a step fails (EMFILE near the fd limit,
    # say): a daemon retrying its upgrade must not run out of descriptors.
    # ``always``: the successor's ends and copies, ours to close once it has them.
    with contextlib.ExitStack() as always, contextlib.ExitStack() as on_failure:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        on_failure.callback(ours.close)
        always.callback(theirs.close)
        # secrets.token_hex(32) is exactly this; importing secrets (hashlib, hmac,
        # random) would cost every privilege-dropping daemon ~3 ms of its start,
        # where it must be loaded ahead (see _launch._preload).
        secret = os.urandom(32).hex()
        err_read, err_write = os.pipe2(os.O_CLOEXEC)
        on_failure.callback(os.close, err_read)
        always.callback(os.close, err_write)
        # The successor's real stderr, switched back onto its fd 2 at the hand-over.
        real_stderr = os.dup(2)
        always.callback(os.close, real_stderr)
        payload = {
            "v": VERSION,
            "parent": os.getpid(),
            "secret": secret,
            "channel": theirs.fileno(),
            "stderr": real_stderr,
            "detached": detached,
            "uid": os.geteuid(),
            "gid": os.getegid(),
            "fds": [entry.to_json() for entry in inherited],
            "hears": list(HEARS),
            # Added later (a successor that does not know it ignores it): a
            # `restart` must not move a socket-activated daemon off its sockets.
            "activated": activated,
        }
        environ[HANDOFF_VARIABLE] = json.dumps(payload, separators=(",", ":"))
        if environ.get("WATCHDOG_PID", "").strip() == str(os.getpid()):
            # Ours to feed, hence the successor's once it takes over.
            environ[HANDOFF_VARIABLE + "_WATCHDOG"] = "1"
        pass_fds = sorted({theirs.fileno(), real_stderr, *(entry.fd for entry in inherited)})
        # Held across the exec (the new process inherits our mask) until its
        # loop handles them: a SIGUSR2, SIGHUP or on_signal signal (SIGPWR, a
        # real-time one) reaching it while its code imports (a `pkill` meant
        # for both) waits, instead of ending it with its default action. Ours
        # wait the same instant, then reach our loop.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, {*LIFECYCLE_SIGNALS, *signals})
        try:
            process = subprocess.Popen(
                argv,
                executable=executable,
                pass_fds=pass_fds,
                env=environ,
                cwd=_launch_directory,
                stdin=subprocess.DEVNULL,
                stderr=err_write,
                # Its own process group: a failed successor is killed with its children.
                process_group=0,
            )
        except OSError as exc:
            if exc.filename is not None and exc.filename == _launch_directory:
                # Deleted or closed to us since the start: a deploy that replaced the
                # release directory the daemon was started from, not a missing program.
                what = (
                    f"cannot enter {_launch_directory}, the directory the daemon was started from"
                )
            elif exc.filename == os.devnull:
                # The successor's stdin: removed since the start, not a missing program.
                what = f"cannot open {os.devnull}"
            else:
                what = f"cannot start {argv[0]}"
            raise StartupError(f"upgrade: {what}: {exc.strerror or exc}") from None
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        on_failure.callback(_end, process)
        pidfd = open_pidfd(process.pid)
        if pidfd is None:  # never: our child, not yet reaped, keeps its pid
            raise StartupError(f"upgrade: new process {process.pid} vanished")
        ours.sendall(f"S{secret}\n".encode())
        on_failure.pop_all()
    return Spawned(process, pidfd, ours, err_read)


def _end(process: subprocess.Popen[bytes]) -> None:
    """Kill and reap a successor the spawn could not complete."""
    process.kill()
    process.wait()


def write_pid_in_place(pidfile: Pidfile, pid: int | None = None) -> None:
    """Overwrite the pid without ever leaving the file empty (readers see old or new).

    Raises:
        StartupError: the file cannot take the whole pid (an ``RLIMIT_FSIZE``
            shorter than it, checked before a byte is written: a part written
            over the old pid would name a third process, "8824" from 8814 and
            8820), or the write fails.
    """
    import resource  # only an upgrade writes in place

    data = f"{os.getpid() if pid is None else pid}\n".encode()
    try:
        if os.pread(pidfile.fd, len(data) + 1, 0) == data:
            return  # already ours (a rollback after a claim that never wrote)
        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if limit != resource.RLIM_INFINITY and limit < len(data):
            raise OSError(errno.EFBIG, f"{os.strerror(errno.EFBIG)} (RLIMIT_FSIZE {limit})")
        if os.pwrite(pidfile.fd, data, 0) < len(data):
            # The file was shorter and no block was left for the rest: a full disk.
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        os.ftruncate(pidfile.fd, len(data))
        os.fsync(pidfile.fd)
    except OSError as exc:
        raise StartupError(
            f"cannot write pidfile {pidfile.path}: {exc.strerror}", option="pidfile"
        ) from exc
