"""The testing kit's daemon processes: start, wait, stop and reap, never blocking the loop.

A daemon is our child and is not reaped before the test is done with it, so
its pid and process group stay reserved: signalling them can never reach a
stranger that reused the number.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import grp
import os
import pwd
import shutil
import signal
import socket
import struct
import subprocess
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path

from ._errors import LaunchError
from ._files import open_regular

__all__ = [
    "STOP_GRACE",
    "finish",
    "hand_directory_to",
    "kill_group",
    "peek",
    "receive_notification",
    "run_command",
    "spawn",
    "successor_running",
    "terminate",
    "wait_exit",
]

#: How long a daemon gets to exit after SIGTERM when a test leaves the block.
STOP_GRACE = 10.0

Process = subprocess.Popen[bytes]


def spawn(
    argv: list[str],
    outputs: tuple[int, int],
    env: Mapping[str, str] | None,
    cwd: str | os.PathLike[str] | None,
    path_entry: str | None,
) -> tuple[Process, socket.socket]:
    """Start ``aiodaemon ARGV`` in a session of its own; return it and its notify socket.

    ``outputs``: the descriptors of the files its stdout and stderr go to.
    """
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    # An abstract name the kernel picks (autobind): no file, so a long TMPDIR
    # cannot push it past sun_path's 108 bytes. Anyone may send to an abstract
    # socket: the credentials let receive_notification() hear only the daemon.
    notify.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    notify.bind("")
    notify.setblocking(False)
    environment = {k: v for k, v in os.environ.items() if not _is_service_manager_variable(k)}
    environment.update(env or {})
    # The notify protocol tells us when it is ready, exactly as systemd would learn it.
    environment["NOTIFY_SOCKET"] = "@" + notify.getsockname()[1:].decode()
    if path_entry is not None:
        environment["PYTHONPATH"] = os.pathsep.join(
            filter(None, [path_entry, environment.get("PYTHONPATH")])
        )
    try:
        # A session of its own: Ctrl-C in the test's terminal reaches the test, not the
        # daemon, and the whole group (the daemon's children too) can be killed at the end.
        process = subprocess.Popen(
            [*_die_with_us(), *_command(), *argv],
            stdin=subprocess.DEVNULL,
            stdout=outputs[0],
            stderr=outputs[1],
            env=environment,
            cwd=cwd,
            start_new_session=True,
        )
    except BaseException:
        # Nothing started (a cwd that does not exist, an env value that is not a
        # str): the caller never gets the socket to close, so it is closed here.
        notify.close()
        raise
    _running.add(process)
    _watch(process)
    return process, notify


def receive_notification(notify: socket.socket, pid: int) -> bytes | None:
    """The next datagram on ``notify`` if process ``pid`` sent it, else None (dropped).

    Raises:
        BlockingIOError: nothing is waiting.
    """
    message, ancillary, _, _ = notify.recvmsg(4096, socket.CMSG_SPACE(_UCRED.size))
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            sender, _, _ = _UCRED.unpack(data[: _UCRED.size])
            return message if sender == pid else None
    return None


#: ``struct ucred``: the sender's pid, uid and gid, as SCM_CREDENTIALS carries them.
_UCRED = struct.Struct("iII")


def hand_directory_to(directory: Path, user: str | int | None, group: str | int | None) -> None:
    """Give the kit's directory to the user (and group) the daemon drops to.

    A daemon that dropped privileges reopens its log file there at every reload
    (and creates it anew after a rotation). An unknown user or group, and a
    test run without the right to give the directory away (not root), are left
    to the daemon to report, as it would in production.
    """
    uid = gid = -1
    try:
        if isinstance(user, int):
            uid = user
            with contextlib.suppress(KeyError):
                gid = pwd.getpwuid(user).pw_gid
        elif user is not None:
            entry = _user_entry(user)
            uid, gid = entry.pw_uid, entry.pw_gid
        if group is not None:
            gid = group if isinstance(group, int) else _group_id(group)
    except KeyError:
        return
    # Changed through a descriptor of the directory we created, never by path.
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        os.fchown(fd, uid, gid)
    except PermissionError:
        pass
    finally:
        os.close(fd)


def _user_entry(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        if name.isdigit():
            return pwd.getpwuid(int(name))
        raise


def _group_id(name: str) -> int:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        if name.isdigit():
            return int(name)
        raise


def _is_service_manager_variable(name: str) -> bool:
    return name in ("NOTIFY_SOCKET", "INVOCATION_ID", "WATCHDOG_USEC", "WATCHDOG_PID") or (
        name.startswith("LISTEN_")
    )


def peek(process: Process) -> int | None:
    """The child's exit status (``-N`` for signal N) if it has exited, without reaping it."""
    if process.returncode is not None:
        return process.returncode
    info = os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    if info is None:
        return None
    return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status


async def wait_exit(process: Process, limit: float | None) -> int | None:
    """Wait for our child to exit without blocking the loop; None after ``limit`` seconds."""
    status = peek(process)
    if status is not None:
        return status
    pidfd = os.pidfd_open(process.pid)
    try:
        if not await _wait_pidfd(pidfd, limit):
            return None
    finally:
        os.close(pidfd)
    return peek(process)


async def _wait_pidfd(pidfd: int, limit: float | None) -> bool:
    """Wait until the process of ``pidfd`` exits; False after ``limit`` seconds."""
    loop = asyncio.get_running_loop()
    # A pidfd turns readable when the process exits: the loop watches it like a socket.
    exited: asyncio.Future[None] = loop.create_future()

    def on_exit() -> None:
        if not exited.done():
            exited.set_result(None)

    loop.add_reader(pidfd, on_exit)
    try:
        await asyncio.wait_for(exited, limit)
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(pidfd)
    return True


async def terminate(process: Process, grace: float) -> int:
    """SIGTERM, wait up to ``grace`` seconds, then SIGKILL the group; the exit status."""
    if peek(process) is None:
        os.kill(process.pid, signal.SIGTERM)
        # Stopped by the test (SIGSTOP), the SIGTERM would wait until it runs
        # again, and the SIGKILL at the end of the grace cut its shutdown: it
        # is continued, as systemd continues what it sends SIGTERM to. Always,
        # not when /proc says it is stopped: a SIGSTOP sent a moment ago is not
        # acted on yet (state still S), and a SIGCONT discards it; a running
        # daemon takes no notice.
        os.kill(process.pid, signal.SIGCONT)
        status = await wait_exit(process, grace)
        if status is not None:
            return status
        kill_group(process)
    status = await wait_exit(process, None)
    assert status is not None
    return status


async def finish(process: Process, pidfile: Path) -> None:
    """Stop ``process`` gracefully, then kill what is left of its session and reap it.

    A successor that took over in an upgrade (named by ``pidfile``) is stopped
    gracefully too. If the wait is cancelled (a second Ctrl-C, a test's
    timeout), everything is killed at once: nothing may outlive the test.
    """
    try:
        await terminate(process, STOP_GRACE)
        await _stop_successor(process, pidfile)
    finally:
        # Its own children must not outlive it either.
        kill_group(process)
        # Before it is reaped: its session id cannot have been reused yet.
        _unwatch(process)
        # Instant once it has exited; only a cancelled stop waits here, for a SIGKILL.
        process.wait()
        _running.discard(process)


async def _stop_successor(process: Process, pidfile: Path) -> None:
    """SIGTERM the daemon an upgrade put in our daemon's place, and wait for it.

    It is not our child but our daemon's, in its session, with a process
    group of its own: the kit would miss it, and it would outlive the test.
    """
    pidfd = _successor_pidfd(process, pidfile)
    if pidfd is None:
        return
    try:
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(pidfd, signal.SIGTERM)
        await _wait_pidfd(pidfd, STOP_GRACE)
    finally:
        os.close(pidfd)


def _successor_pidfd(process: Process, pidfile: Path) -> int | None:
    """A pidfd of the process ``pidfile`` names, if another of our daemon's session."""
    try:
        # In the directory the daemon's account may write: not followed, not waited on.
        fd = open_regular(pidfile)
    except (OSError, LaunchError):
        return None
    try:
        pid = int(os.pread(fd, 32, 0))
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)
    return _session_pidfd(process, pid)


def successor_running(process: Process, pidfile: Path) -> bool:
    """Whether a daemon an upgrade put in our daemon's place (named by ``pidfile``) runs."""
    pidfd = _successor_pidfd(process, pidfile)
    if pidfd is None:
        return False
    os.close(pidfd)
    return True


def kill_group(process: Process) -> None:
    """SIGKILL what is left of the daemon's session: its group, and every other group
    in it (an upgrade's successor, children that made groups of their own)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (pidfd := _session_pidfd(process, int(entry))) is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            os.close(pidfd)


def _session_pidfd(process: Process, pid: int) -> int | None:
    """A pidfd of ``pid`` if it is another process of ``process``'s session, else None.

    The session's id is our unreaped daemon's pid, so it cannot name a stranger's
    session; the pidfd, taken before the check, cannot reach a process that
    reused ``pid`` after it.
    """
    if pid == process.pid:
        return None
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:  # gone, or not a pid at all
        return None
    try:
        if os.getsid(pid) == process.pid:
            return pidfd
    except OSError:
        pass
    os.close(pidfd)
    return None


#: Daemons started and not yet reaped, for the atexit safety net.
_running: set[Process] = set()


@atexit.register
def _kill_leftovers() -> None:
    for process in list(_running):
        if process.returncode is None:
            kill_group(process)
            _unwatch(process)
            process.wait()
    # The watchdog runs until our exit closes its pipe: its Popen, collected as
    # the interpreter ends, warned "subprocess N is still running" (an
    # "Exception ignored" under -W error, in each xdist worker on 3.12+).
    _drop_watchdog()


class _Watchdog:
    """This test process's watchdog process, and the pipe it reads (see _watchdog.py)."""

    def __init__(self) -> None:
        #: the test process that started it (a forked one starts its own).
        self.owner = os.getpid()
        #: the sessions registered with it, registered again should it be restarted.
        self.sessions: set[int] = set()
        read, self.pipe = os.pipe()  # both close-on-exec: no daemon holds them
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-I", "-S", str(Path(__file__).with_name("_watchdog.py"))],
                stdin=read,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                # Out of the test's session and process group: what kills those
                # (a CI job's timeout, a terminal's hangup) must not kill it first.
                start_new_session=True,
            )
        except BaseException:
            os.close(self.pipe)
            raise
        finally:
            os.close(read)

    def send(self, line: str) -> bool:
        """Write ``line``; False if the watchdog is gone."""
        try:
            os.write(self.pipe, line.encode())
        except BrokenPipeError:
            return False
        return True


_watchdog: _Watchdog | None = None
#: Whether _forget_at_fork is registered to run in every forked copy of this process.
_forgets_at_fork = False


def _watch(process: Process) -> None:
    """Have the watchdog kill ``process``'s session should this test process die first.

    The parent-death signal (see _die_with_us) kills the daemon alone: the
    processes it started (a subprocess, an upgrade's successor) would outlive
    a test runner killed outright.
    """
    global _watchdog, _forgets_at_fork
    old = _watchdog
    if old is not None and old.send(f"+{process.pid}\n"):
        old.sessions.add(process.pid)
        return
    if not _forgets_at_fork:
        # Once (a forked copy inherits it), before the first pipe: see _forget_at_fork.
        os.register_at_fork(after_in_child=_forget_at_fork)
        _forgets_at_fork = True
    _watchdog = _Watchdog()
    if old is not None:  # it died: the new one guards what it guarded
        os.close(old.pipe)
        old.process.poll()
        _watchdog.sessions = old.sessions
    _watchdog.sessions.add(process.pid)
    _watchdog.send("".join(f"+{sid}\n" for sid in sorted(_watchdog.sessions)))


def _forget_at_fork() -> None:
    """In a process forked from a test process: let go of its watchdog's pipe.

    Only the test process that started the watchdog may hold the pipe: a
    forked copy (a multiprocessing worker, a server a fixture forked) that
    outlived it kept the pipe open, and the watchdog did not see the test
    process die. The copy starts a watchdog of its own if it launches.
    Nor are the test process's daemons the copy's: its exit (the inherited
    atexit _kill_leftovers) killed them.
    """
    _running.clear()
    if _watchdog is not None:
        with contextlib.suppress(OSError):
            os.close(_watchdog.pipe)
        # Not this copy's child: its Popen, collected while the watchdog runs, warns
        # "subprocess N is still running" ("Exception ignored" under -W error).
        _drop_watchdog()


def _drop_watchdog() -> None:
    """Let go of the watchdog's Popen while its process runs, without its ResourceWarning."""
    global _watchdog
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        # The last reference: collected here, under the filter.
        _watchdog = None


def _unwatch(process: Process) -> None:
    """The test is done with ``process``: the watchdog forgets its session."""
    if _watchdog is not None and _watchdog.owner == os.getpid():
        _watchdog.sessions.discard(process.pid)
        _watchdog.send(f"-{process.pid}\n")


async def run_command(*args: str, timeout: float) -> tuple[int, str, str]:  # noqa: ASYNC109
    """Run ``aiodaemon ARGS`` on the loop; its exit status, stdout and stderr.

    Raises:
        TimeoutError: it did not finish within ``timeout`` seconds (it is killed).
    """
    proc = await asyncio.create_subprocess_exec(
        *_command(),
        *args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def _command() -> list[str]:
    """The daemon's interpreter with the test process's own flags (``-X dev``, ``-W``, ``-b``...).

    A suite run under ``python -X dev -W error::ResourceWarning -m pytest`` to
    catch leaks expects its daemons to run so too, as ``aiodaemon start`` run
    that way would. The helper is the one multiprocessing and CPython's own
    tests spawn interpreters with.
    """
    flags: list[str] = subprocess._args_from_interpreter_flags()  # type: ignore[attr-defined]
    # Not -I nor -E: the daemon is handed PYTHONPATH (a script's directory,
    # launch(env=)), which they would make it ignore.
    flags = ["-s" if flag == "-I" else flag for flag in flags if flag != "-E"]
    return [sys.executable, *flags, "-m", "aiodaemon"]


def _die_with_us() -> list[str]:
    """A prefix that makes the kernel SIGKILL the daemon when the test process dies.

    The last safety net, for a test runner killed without running any cleanup
    (SIGKILL, pytest-timeout's ``os._exit``): util-linux's ``setpriv`` sets the
    parent-death signal and execs the daemon, so its pid stays the daemon's.
    """
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []
