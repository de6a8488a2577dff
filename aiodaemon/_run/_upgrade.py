"""Zero-downtime upgrade, run side: start a successor, wait for it, hand over or roll back.

The old daemon (:class:`Upgrader`) spawns the successor with every listening
socket and the locked pidfile (see :mod:`aiodaemon._prefork._handoff`), keeps serving while the
successor runs its startup hooks, and learns the outcome over the private
channel. On ``R`` (ready) it sends ``G``, the successor writes its pid into
the same locked file and answers ``W``; only then does the old daemon stop
accepting, tell systemd ``MAINPID=<new>`` and begin its normal shutdown
(without ``drain_delay``). If the successor fails or exits, it is killed with
its process group through its pidfd and the old daemon carries on as if
nothing happened. One not ready in time may already serve (a startup hook
starts the server, a later one hangs): it is sent SIGTERM, so that it answers
the requests it accepted in its shutdown, and killed only if it still runs
``shutdown_timeout`` + 1 s later; meanwhile no other upgrade starts. A stop of
the old daemon during an upgrade (or while it waits for such a successor)
does the same within its own shutdown budget: the successor is sent SIGTERM
(once) and awaited, killed just before that budget runs out, and the old
daemon exits only once it is gone. Until it exits, the old daemon
keeps the channel open: log reopens are passed on both ways over it (see
:mod:`._upgrade_channel`). Watching the successor start (its lines, its exit,
its stderr) is :mod:`._upgrade_watch`'s; this module decides what follows.

One upgrade at a time: a request during one is refused and starts nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
from collections.abc import Awaitable, Callable, Collection, Coroutine, Mapping
from typing import TYPE_CHECKING, Any

import structlog

from .._prefork._handoff import (
    Inherited,
    describe_file,
    describe_passed,
    describe_pidfile,
    describe_socket,
    spawn_successor,
    write_pid_in_place,
)
from .._prefork._messages import seconds_shown
from ..exceptions import DaemonError, StartupError
from ._own_tasks import own_task

if TYPE_CHECKING:
    from .._logs._logwriter import LogWriter
    from .._prefork._addresses import ListenAddress
    from .._prefork._control_socket import ControlSocket
    from .._prefork._handoff import Spawned
    from .._prefork._pidfile import Pidfile
    from .._prefork._sockets import Listeners
    from ._systemd import Notifier
    from ._upgrade_channel import ChannelLines
    from ._upgrade_watch import SuccessorWatch

__all__ = [
    "DEFAULT_TIMEOUT",
    "REPORT_WAIT",
    "STOPPING",
    "UpgradeError",
    "UpgradeRefused",
    "UpgradeTarget",
    "Upgrader",
]

_log = structlog.get_logger("aiodaemon")

#: Default seconds the successor has to become ready.
DEFAULT_TIMEOUT = 60.0
#: Seconds the shutdown waits for an abandoned upgrade's answer to go out.
REPORT_WAIT = 5.0
STOPPING = "the daemon is stopping"
#: Seconds past ``shutdown_timeout`` a successor sent SIGTERM has before SIGKILL
#: (as the launcher gives a daemon not ready in time).
_RETIRE_GRACE = 1.0
#: Seconds before the end of our own shutdown budget by which a successor still
#: stopping is killed (a quarter of ``shutdown_timeout`` if less): its kill and
#: reaping, and our last steps, fit in them.
_KILL_MARGIN = 0.5
_ABANDONED = f"upgrade abandoned: {STOPPING}"


class UpgradeError(DaemonError):
    """The successor failed; the old daemon keeps serving."""


class UpgradeRefused(UpgradeError):
    """The upgrade was not started (one runs, PID 1, a chroot, a program from stdin, not running).

    ``transient``: refused only for now (the daemon is starting or reloading),
    so that ``aiodaemon upgrade`` asks again within its timeout. ``state``:
    the daemon's state that refused it ("starting", "reloading"), told in the
    answer for a program to go by, never the text.
    """

    def __init__(self, message: str, *, transient: bool = False, state: str | None = None) -> None:
        super().__init__(message)
        self.transient = transient
        self.state = state


class UpgradeTarget:
    """What the old daemon hands over, and how it steps aside.

    Args:
        pidfile: the locked pidfile, if any.
        listeners: the listening sockets, if any.
        listen: the configured ``listen=`` addresses, by name.
        control: the control socket, if any (whether its file is ours to
            hand on is read at each spawn: a successor owns it only from its
            take-over on).
        notifier: the service manager's notifier, if any.
        detached: whether the daemon detached.
        chroot: whether the daemon is chrooted.
        state: the lifecycle state's name ("running", ...).
        stop_accepting: stop accepting on every listening socket (tracked
            servers, control, health).
        handed_over: begin the shutdown that follows a hand-over (no drain
            delay, keep socket files).
        rollback: after a successor failed once told to take over: claim the
            control socket back.
        log_file: ``(path, fd)`` of a new descriptor of the log file, for the
            upgrade to close once it started the successor; None without one.
        logs: the log writer, whose reopens are passed on to the successor
            (and the successor's to it) while both run.
        signals: the ``on_signal`` signals, held in the successor with the
            lifecycle ones until it handles them.
        shutdown_timeout: the daemon's, which a successor not ready in time
            has to stop in (plus a second) before it is killed.
        spawn: starts a task the shutdown sequence leaves running until the
            services close (``RuntimeHandle.spawn``): a successor sent SIGTERM
            is awaited, and its stderr copied, until it is gone. None: plain
            tasks (no runtime keeps them).
        records: where the log records go, a successor's too ("in PATH",
            "in syslog", "on stderr"), or None: a failure after its log opened
            says where to read why.
    """

    # A plain class, not a dataclass: every daemon loads this module on its way
    # to ready (its SIGUSR2 service); a dataclass definition costs ~0.3 ms there.
    __slots__ = (
        "chroot",
        "control",
        "detached",
        "handed_over",
        "listen",
        "listeners",
        "log_file",
        "logs",
        "notifier",
        "pidfile",
        "records",
        "rollback",
        "shutdown_timeout",
        "signals",
        "spawn",
        "state",
        "stop_accepting",
    )

    def __init__(
        self,
        *,
        pidfile: Pidfile | None,
        listeners: Listeners | None,
        listen: Mapping[str, ListenAddress],
        control: ControlSocket | None,
        notifier: Notifier | None,
        detached: bool,
        chroot: bool,
        state: Callable[[], str],
        stop_accepting: Callable[[], Awaitable[None]],
        handed_over: Callable[[int], None],
        rollback: Callable[[], None],
        log_file: Callable[[], tuple[str, int] | None] | None = None,
        logs: LogWriter | None = None,
        signals: Collection[int] = (),
        shutdown_timeout: float = 10.0,
        spawn: Callable[[Coroutine[Any, Any, None], str], asyncio.Task[None]] | None = None,
        records: str | None = None,
    ) -> None:
        self.pidfile = pidfile
        self.listeners = listeners
        self.listen = listen
        self.control = control
        self.notifier = notifier
        self.detached = detached
        self.chroot = chroot
        self.state = state
        self.stop_accepting = stop_accepting
        self.log_file = log_file
        self.logs = logs
        self.signals = signals
        self.shutdown_timeout = shutdown_timeout
        self.spawn = spawn or _plain_task
        self.records = records
        self.handed_over = handed_over
        self.rollback = rollback


def _plain_task(coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
    """A task on the running loop, kept by nobody (an :class:`UpgradeTarget` without a runtime)."""
    return own_task(coro, name)


class Upgrader:
    """The old daemon's side of an upgrade; at most one runs at a time."""

    def __init__(self, target: UpgradeTarget) -> None:
        self.target = target
        self.successor: int | None = None
        self._busy = False
        #: set when the daemon begins to stop: an upgrade under way is abandoned.
        self._abort: asyncio.Event | None = None
        self._spawned: Spawned | None = None
        self._watch: SuccessorWatch | None = None
        #: tasks that will report an upgrade's outcome (control connections).
        self.reporters: set[asyncio.Task[Any]] = set()
        #: the channel to the successor we handed over to, open until we exit.
        self.handed_to: ChannelLines | None = None
        #: awaiting the end of a successor sent SIGTERM (see :meth:`_retire`).
        self._retiring: asyncio.Task[None] | None = None
        #: when a successor still stopping is killed, once our own stop's budget is known.
        self._kill_by: asyncio.Future[float] | None = None

    def abort(self) -> None:
        """The daemon is stopping: SIGTERM a successor not yet in charge, hand nothing over.

        It may serve already (its server's startup hook ran): killed at once, it
        reset the requests it had accepted. It stops as a daemon stopped before
        ready does, and our shutdown awaits it (:meth:`wait_retired`), killing
        it just before our own budget runs out (:meth:`stop_by`). One already
        sent SIGTERM (not ready in time) is not sent another: a second stop
        signal forces a daemon's exit.
        """
        if self._abort is None:
            return
        self._abort.set()
        watch = self._watch
        # At once: the stop may cancel the upgrade's task before it sees the flag.
        if watch is not None and watch.held and self._retiring is None:
            _log.warning(_ABANDONED, successor=self.successor)
            self._retire(watch, None)

    def stop_by(self, end: float) -> None:
        """Our shutdown's budget ends at ``end`` (``time.monotonic()``): a successor still
        stopping then is killed a moment before, so that our exit stays within it."""
        margin = min(_KILL_MARGIN, self.target.shutdown_timeout / 4)
        kill_by = self._kill_by_future()
        if not kill_by.done():
            kill_by.set_result(end - margin)

    async def wait_retired(self) -> None:
        """Return once a successor sent SIGTERM is gone (stopped, or killed in time)."""
        retiring = self._retiring
        if retiring is not None:
            await asyncio.wait([retiring])

    def _kill_by_future(self) -> asyncio.Future[float]:
        if self._kill_by is None:
            self._kill_by = asyncio.get_running_loop().create_future()
        return self._kill_by

    def kill_at_forced_exit(self) -> None:
        """A forced exit: kill a successor not yet in charge (runs inside a signal handler).

        Left alive, it took the exit for a vanished old daemon and took over,
        though the person who forced the exit asked for no daemon, and the
        exit had removed the pidfile: a daemon nobody could find.
        """
        spawned = self._spawned
        if spawned is not None and self.handed_to is None:
            spawned.send_kill()

    async def upgrade(self, within: float = DEFAULT_TIMEOUT) -> int:
        """Replace this daemon by a fresh process of the same program; return its pid.

        Raises:
            UpgradeRefused: nothing was started (see the message).
            UpgradeError: the successor failed and was killed; we keep serving.
        """
        self._check_allowed()
        # Loaded at the first upgrade: a daemon that never upgrades starts without it.
        from ._upgrade_watch import SuccessorWatch

        self._busy = True
        self._abort = asyncio.Event()
        started = time.monotonic()
        inherited: list[Inherited] = []
        try:
            inherited = self._inherited()
            target = self.target
            activated = target.listeners is not None and target.listeners.activated
            spawned = spawn_successor(
                inherited, detached=target.detached, signals=target.signals, activated=activated
            )
        except (DaemonError, OSError) as exc:
            self._busy = False
            self._abort = None
            message = _plain(str(exc))
            _log.error("upgrade failed", error=message)
            raise UpgradeError(message) from exc
        finally:
            for entry in inherited:
                if entry.role == "log":
                    os.close(entry.fd)  # our copy: the successor has its own
        self.successor = spawned.pid
        self._spawned = spawned
        # Before any await: a stop from now on finds it to retire (see abort).
        self._watch = SuccessorWatch(
            spawned, self._abort, self.target.spawn, records=self.target.records
        )
        _log.info("upgrade started", successor=spawned.pid, timeout=within)
        try:
            await self._run(self._watch, within, started)
        except BaseException:
            if self._retiring is None:
                self._end()
            raise
        # Handed over: we stop, and later requests hear of the successor (still busy).
        self._abort = None
        self._spawned = None
        self._watch = None
        return spawned.pid

    def _end(self) -> None:
        """A failed upgrade is over: nobody succeeds us, and another upgrade may start."""
        self._busy = False
        self._abort = None
        self._spawned = None
        self._watch = None
        self.successor = None

    def _check_allowed(self) -> None:
        if self._retiring is not None and self._spawned is not None:
            # Over within shutdown_timeout: the command asks again meanwhile.
            raise UpgradeRefused(
                f"the last upgrade's new process (pid {self._spawned.pid}), not ready in time, "
                "is still stopping",
                transient=True,
            )
        if self._busy:
            raise UpgradeRefused(
                f"an upgrade is already in progress (successor pid {self.successor}); "
                "nothing started"
            )
        if self.target.chroot:
            raise UpgradeRefused(
                "cannot upgrade a chrooted daemon: its program is outside the chroot; use restart"
            )
        # Loaded at the first upgrade (its code read at the start, see _pinned):
        # after the chroot's refusal, which must not depend on it.
        from .._prefork._init import under_container_init
        from .._prefork._relaunch import unreadable_program

        if os.getpid() == 1 or under_container_init():
            raise UpgradeRefused(
                "cannot upgrade PID 1 of a container: its exit ends the container; "
                "roll the container instead"
            )
        unreadable = unreadable_program()
        if unreadable is not None:
            raise UpgradeRefused(f"cannot upgrade: {unreadable}; use restart")
        state = self.target.state()
        if state in ("starting", "reloading"):
            # Over in a moment, unlike a stop: the command waits for it.
            raise UpgradeRefused(f"cannot upgrade while {state}", transient=True, state=state)
        if state != "running":
            # Stopping: it never runs again, so no "later" to try.
            raise UpgradeRefused(f"{STOPPING}; nothing started")

    def _inherited(self) -> list[Inherited]:
        target = self.target
        entries: list[Inherited] = []
        if target.pidfile is not None:
            entries.append(describe_pidfile(target.pidfile))
        if target.listeners is not None:
            owned = target.listeners.owned_unix_files()
            for name, sock in target.listeners.items():
                address = target.listen[name]
                configured = str(address)
                identity = owned.get(configured.removeprefix("unix:"))
                entries.append(
                    describe_socket("listen", name, sock, configured, identity, address.query())
                )
            # Passed fds nobody claims keep their numbers in the successor: a
            # program may serve one by the number systemd gave it.
            listeners = target.listeners
            for fd_name, fds in listeners.unclaimed.items():
                for fd in fds:
                    try:
                        passed = describe_passed(fd_name, fd, listeners.passed_identities.get(fd))
                    except ValueError as exc:
                        # The program closed it and the number was reused: its own
                        # file is not the service manager's socket.
                        _log.warning(
                            "passed fd not handed on", name=fd_name, fd=fd, reason=str(exc)
                        )
                        continue
                    if passed is not None:
                        entries.append(passed)
        if target.control is not None:
            control = target.control
            entries.append(
                describe_socket("control", "control", control.sock, control.path, control.identity)
            )
        log_file = None if target.log_file is None else target.log_file()
        if log_file is not None and log_file[1] >= 0:
            entries.append(describe_file("log", *log_file))
        return entries

    async def _run(self, watch: SuccessorWatch, within: float, started: float) -> None:
        # The seconds the successor has to write its pid once told to: the
        # commands that meet it meanwhile wait as long (shared with the CLI).
        from .._prefork._control_protocol import HANDOVER_WAIT

        spawned = watch.spawned
        told = False
        try:
            lines = watch.open_channel(self.target.logs)
            line = await watch.next_line(within)
            self._check_aborted()
            if line is None:
                # Not ready in time: it may serve already, so it stops as a
                # daemon does, answering what it accepted (see _retire).
                why = await watch.failure(line, within)
                self._check_aborted()  # then our stop retires it (see abort)
                budget = self.target.shutdown_timeout + _RETIRE_GRACE
                self._retire(watch, budget)
                fate = f"SIGKILL if still running {seconds_shown(budget)} s later"
                raise self._failed(spawned.pid, f"{why}; sent it SIGTERM ({fate})")
            if line != b"R\n":
                raise self._failed(spawned.pid, await watch.failure(line, within))
            ready_after = time.monotonic() - started
            told = True
            with contextlib.suppress(OSError):
                lines.send(b"G\n")  # if it is gone, the channel's end says so next
            line = await watch.next_line(HANDOVER_WAIT)
            self._check_aborted()
            if line != b"W\n":
                why = await watch.failure(line, HANDOVER_WAIT, ready=True)
                raise self._failed(spawned.pid, why)
        except BaseException:
            # Retiring (not ready in time, or our stop): it ends on its own
            # first, or is killed at the end of its time (see _await_retired).
            retiring = self._retiring is not None
            if not retiring:
                watch.kill()
            if told:
                # The successor may have written its pid, or listened on the
                # control socket, before it failed: both are ours again.
                if self.target.pidfile is not None:
                    try:
                        write_pid_in_place(self.target.pidfile)
                    except StartupError as exc:
                        # The rest of the rollback still runs: we serve on.
                        _log.error("pidfile not restored", error=str(exc))
                self.target.rollback()
            if not retiring:
                await watch.stop_copying()
            raise
        # From here on the successor owns the pidfile and gets logrotate's signal:
        # it passes reopens on over the channel; a rename nobody signalled is followed now.
        self.handed_to = watch.took_over()
        if self.target.logs is not None:
            self.target.logs.follow_rename()
            lines.follow_renames_alone()
        await self.target.stop_accepting()
        cut_over = time.monotonic() - started
        notifier = self.target.notifier
        if notifier is not None:
            # Sent by us, the main pid, so NotifyAccess=main accepts it; after
            # it nothing more from us may reach the manager (a STOPPING=1 would
            # now stop the successor's service).
            notifier.hand_over(spawned.pid)
        _log.info(
            "upgrade handed over",
            successor=spawned.pid,
            ready_after=round(ready_after, 3),
            cut_over=round(cut_over, 3),
        )
        # Once the caller has answered (the control command's reply is written
        # in the same step as our return), the shutdown begins.
        asyncio.get_running_loop().call_soon(self.target.handed_over, spawned.pid)

    def _check_aborted(self) -> None:
        # The kill that abort() sends may end the successor before the abort is seen.
        if self._abort is not None and self._abort.is_set():
            raise UpgradeError(_ABANDONED)

    def _retire(self, watch: SuccessorWatch, budget: float | None) -> None:
        """SIGTERM the successor; kill it if it still runs after ``budget`` seconds.

        It may already accept connections (a startup hook starts the server,
        a later one hangs on a database): killed at once, it reset them. Its
        stop runs as a daemon's before ready does (the servers it tracks
        answer what they accepted, its shutdown hooks run), and, never told
        to take over, it takes nothing of ours. The upgrade stays in progress
        (no other starts) until it is gone. A stop of ours shortens the wait
        to our own budget (see :meth:`stop_by`); None: that budget alone.
        """
        watch.terminate()
        # Nobody succeeds us: reloads are ours again (they are refused during an upgrade).
        self.successor = None
        # Kept through our shutdown's cancelling step: awaited at its end.
        retire = self._await_retired(watch, budget)
        self._retiring = self.target.spawn(retire, "aiodaemon-upgrade-retire")

    async def _await_retired(self, watch: SuccessorWatch, budget: float | None) -> None:
        pid = watch.spawned.pid
        sent = time.monotonic()
        kill_by = self._kill_by_future()
        #: seconds from its SIGTERM to its SIGKILL: its own budget, or our stop's.
        given = math.inf if budget is None else budget
        try:
            ended = await watch.ended_within(budget, unless=kill_by)
            if not ended and kill_by.done():
                # Our stop's budget is known now: the kill comes before it ends.
                given = min(given, max(0.0, kill_by.result() - sent))
                ended = await watch.ended_within(max(0.0, sent + given - time.monotonic()))
            if ended:
                status = watch.spawned.exit_status()
                # Its own exit record has why; the operator reading ours should not need it.
                reason = await watch.last_error()
                _log.info("upgrade successor stopped", successor=pid, status=status, reason=reason)
            else:
                _log.warning("upgrade successor killed", successor=pid, after=round(given, 3))
        finally:
            watch.kill()
            await watch.stop_copying()
            self._retiring = None
            self._end()

    def _failed(self, pid: int, message: str) -> UpgradeError:
        """Log why the successor failed; the error to raise."""
        message = _plain(message)
        _log.error("upgrade failed", successor=pid, error=message)
        return UpgradeError(message)


def _plain(message: str) -> str:
    """``message`` without the prefixes it gathered on its way ("upgrade: ", "aiodaemon: ").

    The CLI says "upgrade failed: " once; the successor's own messages, and its
    last stderr line, name the program or the upgrade again.
    """
    while True:
        for prefix in ("upgrade: ", "aiodaemon: "):
            if message.startswith(prefix):
                message = message[len(prefix) :]
                break
        else:
            return message
