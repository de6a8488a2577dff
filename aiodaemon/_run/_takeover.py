"""Upgrade hand-over, the successor's side: become the daemon, at the old one's word or alone.

Normally the old daemon says when: once we reported ready (``R``) it sends
``G``; we claim what it handed us (write our pid into the locked pidfile,
own the socket files, start serving control and health), speak to the
service manager (``READY=1``, ``MAINPID``) and answer ``W``.

The old daemon may also vanish (SIGKILL, the OOM killer) before it says so.
Everything it handed over is already ours to keep: the pidfile's lock belongs
to the open file we share, and so do the listening sockets. So we watch its
pidfd from the start of the run and, the moment it exits, claim at once
("old daemon vanished, taking over"): ``status`` and ``stop`` then work even
while our startup hooks still run, and a startup that fails afterwards
removes the files at exit like any daemon's. Readiness is still reported only
when we are ready. A channel that ends while the old daemon lives is a
rollback: it kills us, and we touch nothing.

A program with readiness checks (``@readiness_check``) says ``R`` only once
they pass, as a rollout waits for the new pod's readiness probe: until then
they are run again every :data:`_CHECK_INTERVAL` seconds, and each new
verdict is told to the old daemon (``N`` and why), which names it if the
upgrade's timeout runs out first; an old daemon that does not list ``N`` in
the hand-off's ``hears`` (an earlier release) is told nothing but ``R``.

A run that begins to stop after ``R`` but before ``W`` (``main`` raised or
returned at once, a SIGTERM) takes nothing over: it gives back what it
claimed, if anything, and answers ``E`` with why (:func:`refuse_takeover`),
so the old daemon rolls back and keeps serving instead of handing its
clients to a process on its way out.

The channel is read from the start of the run, and kept open until the old
daemon exits, for the log reopens the two pass on to each other (see
:mod:`._upgrade_channel`). We inherited the log file's descriptor as it was
when we were spawned: before our first record (see ``Runtime.live``) and
once the pidfile names us, we reopen the file if its path names another file
by then (a rotation done while we started).

See :mod:`._upgrade` for the old daemon's side.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import structlog

from .._prefork._handoff import write_pid_in_place
from ..exceptions import StartupError
from ._own_tasks import own_task

if TYPE_CHECKING:
    from .._logs._logwriter import LogWriter
    from .._prefork._adopt import SuccessorChannel
    from ._health import HealthServer
    from ._upgrade_channel import ChannelLines

__all__ = [
    "checks_failing",
    "close_channel",
    "hand_over",
    "not_in_charge",
    "readiness_verdict",
    "refuse_takeover",
    "watch_predecessor",
]

_log = structlog.get_logger("aiodaemon")

#: Seconds to wait, after the channel ended, for the old daemon's exit to show.
_EXIT_WAIT = 5.0
#: Loop turns let pass before the claim: ``main`` is started just after ``R``
#: (a task that starts its own), so one that fails at its first step has begun
#: the stop by then.
_MAIN_FIRST_STEP = 5
#: Seconds between two runs of failing readiness checks before ``R``.
_CHECK_INTERVAL = 0.5


class _TakeOver:
    """One successor's take-over; a process has at most one."""

    def __init__(self, channel: SuccessorChannel, logs: LogWriter | None) -> None:
        self.channel = channel
        self.logs = logs
        #: the channel on the loop, open from the start of the run.
        self.lines: ChannelLines | None = None
        #: set once the old daemon has exited.
        self.gone = asyncio.Event()
        self.claim: asyncio.Task[None] | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        #: why our run stops, once it began to stop before we answered ``W``.
        self.refusal: str | None = None
        #: set once ``W`` or ``E`` went out: the old daemon knows.
        self.answered = False
        #: set once the pidfile names us (the claim's first step).
        self.pid_written = False
        #: the unix socket files of inherited sockets we do not serve (the new
        #: release dropped their names): ours to remove once the hand-over is done.
        self.dropped_files: dict[str, tuple[int, int]] = {}
        #: why the readiness checks fail, while ``R`` waits for them.
        self.checks_failing: str | None = None

    def open_lines(self) -> ChannelLines:
        """The channel on the loop (opened now if not yet), passing log reopens both ways."""
        if self.lines is None:
            from ._upgrade_channel import ChannelLines

            self.lines = ChannelLines(self.channel.handoff.channel, self.logs)
        return self.lines

    def watch(self) -> None:
        """Claim as soon as the old daemon exits (now, if it already has)."""
        pidfd = self.channel.handoff.parent_pidfd
        if pidfd is None:
            self._exited()
        else:
            asyncio.get_running_loop().add_reader(pidfd, self._exited)

    def _exited(self) -> None:
        handoff = self.channel.handoff
        if handoff.parent_pidfd is not None:
            asyncio.get_running_loop().remove_reader(handoff.parent_pidfd)
            os.close(handoff.parent_pidfd)
            handoff.parent_pidfd = None
        self.gone.set()
        if self.claim is None:
            # It exits after our "W" in a normal hand-over: then this is nothing new.
            _log.warning("old daemon vanished, taking over", predecessor=handoff.parent)
            self.start_claim()

    def start_claim(self) -> asyncio.Task[None]:
        """The one claim of this process, started now if not yet."""
        if self.claim is None:
            self.claim = own_task(self._claim(), "aiodaemon-takeover")
            self.tasks.add(self.claim)
        return self.claim

    async def _claim(self) -> None:
        channel = self.channel
        handoff = channel.handoff
        if self.refusal is not None and not self.gone.is_set():
            return  # refused before this task's first step: nothing to take
        from .._prefork._adopt_fds import unix_files

        self.checks_failing = None  # in charge from here: no longer waiting on them
        if channel.pidfile is not None:
            try:
                write_pid_in_place(channel.pidfile)
            except StartupError as exc:
                # Nothing is ours yet: the old daemon rolls back and serves on.
                self.refuse(str(exc))
                if self.refusal is None:
                    raise  # alone (the old daemon is gone): our run fails
                return
            self.pid_written = True
        if self.logs is not None:
            # Signals reach us from now on; one sent to the old daemon before
            # may not have been passed on (we inherited a descriptor of the spawn).
            self.logs.follow_rename()
        served = unix_files(handoff, names=channel.listeners or ())
        if channel.listeners is not None:
            channel.listeners.own_unix_files(served)
        self.dropped_files = {
            path: identity for path, identity in unix_files(handoff).items() if path not in served
        }
        if channel.control is not None:
            identity = unix_files(handoff, "control").get(channel.control.path)
            if identity is not None:
                channel.control.own_file(identity)
        for step in channel.on_takeover:
            await step()
        if self.gone.is_set():
            self.remove_dropped()  # no hand-over to wait for: all is ours

    def remove_dropped(self) -> None:
        """Remove the files of the inherited sockets we do not serve: nobody listens there now.

        Only after the hand-over (the old daemon serves on them until then),
        and only while each is still the socket file it was (see ``unlink_if_ours``).
        """
        from .._prefork._unixbind import unlink_if_ours

        for path, identity in self.dropped_files.items():
            unlink_if_ours(path, identity)
        self.dropped_files = {}

    def take_stderr(self) -> None:
        """Put our real stderr back on fd 2, before the program's code runs.

        Until the run starts, fd 2 is a pipe to the old daemon, which reports
        a crash there (an import error of the new code) as the upgrade's
        error; past this point failures come over the channel. A child a
        startup hook starts inherits fd 2: left on the pipe, it lost its
        stderr, and died of SIGPIPE at its next write, once the old daemon
        that read the pipe had exited.
        """
        handoff = self.channel.handoff
        outputs = [] if self.logs is None else self.logs.outputs
        stderr = next((output for output in outputs if output.fd == 2), None)
        if stderr is None:
            os.dup2(handoff.real_stderr, 2)
        else:
            # The stderr file a rotation moved since we were spawned (the look
            # at start saw the pipe on fd 2) is followed as it is put back.
            stderr.put_back(handoff.real_stderr)
        os.close(handoff.real_stderr)
        if stderr is not None and self.logs is not None:
            # A new file put_back could not open is tried again, and the failure logged.
            self.logs.follow_rename()

    async def hand_over(self) -> None:
        """After ``R``: wait for ``G`` (or the old daemon's exit), claim, go live, answer ``W``."""
        channel = self.channel
        lines = self.open_lines()
        try:
            if channel.readiness is not None:
                await self._wait_checks(channel.readiness, lines)
                if self.answered:
                    return  # we refused meanwhile (see refuse): the old daemon kills us
                with contextlib.suppress(OSError):
                    lines.send(b"R\n")  # if it is gone, the channel's end says so next
            line = await lines.readline()
            while line and line != b"G\n":
                # A later old daemon's line: not ours to act on (see _handoff).
                _log.debug("upgrade channel line ignored", line=line[:64])
                line = await lines.readline()
            if line == b"G\n":
                # Before the claim: a refusal then has nothing to give back, and
                # no probe meets our control or health server while we stop.
                for _ in range(_MAIN_FIRST_STEP):
                    await asyncio.sleep(0)
            if self.answered:
                return  # we refused (see refuse): the old daemon kills us
            if line != b"G\n" and not await self._wait_gone():
                # The old daemon rolled back and is killing us: nothing here is ours.
                _log.warning("upgrade abandoned by the old daemon")
                lines.close()
                return
            await asyncio.shield(self.start_claim())
            if self.refusal is not None:
                return  # we refused during the claim, and said so (see refuse)
            if channel.notifier is not None:
                channel.notifier.release()
            _log.info("upgrade took over", predecessor=channel.handoff.parent)
            if line == b"G\n":
                self.answered = True
                with contextlib.suppress(OSError):
                    lines.send(b"W\n")
            self.remove_dropped()
        finally:
            # Nothing more to report on it; lines keeps the channel open while
            # the old daemon drains (log reopens), with a descriptor of its own.
            channel.close()

    async def _wait_checks(
        self, readiness: Callable[[], Awaitable[str | None]], lines: ChannelLines
    ) -> None:
        """Until the readiness checks pass, we refused, or the old daemon is gone."""
        told: str | None = None
        while not self.answered and not self.gone.is_set():
            failing = await readiness()
            self.checks_failing = failing
            if failing is None:
                return
            # An old daemon that does not list N (an earlier release) took
            # any line but R for a failure: it only hears R, then.
            if failing != told and "N" in self.channel.handoff.hears:
                told = failing
                line = f"N {' '.join(failing.split())}\n"
                with contextlib.suppress(OSError):
                    lines.send(line.encode("utf-8", "backslashreplace"))
            # The old daemon's upgrade timeout bounds this wait: past it, it stops us.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.gone.wait(), _CHECK_INTERVAL)

    def refuse(self, reason: str | None) -> None:
        """Our run began to stop (``reason``: its failure, if any): take nothing over.

        What the claim took is given back first. Nothing to do before ``R``
        (a start that fails is reported at our exit, as any daemon's), after
        ``W``, or once the old daemon is gone (all is ours, whatever follows).
        """
        if self.answered or self.refusal is not None or self.channel.pending:
            return
        if self.lines is None or self.gone.is_set():
            return
        why = f"successor (pid {os.getpid()}) stopped before it took over"
        self.refusal = f"{why}: {reason}" if reason else why
        _log.warning("upgrade refused: stopping before the take-over", reason=reason)
        if self.claim is not None:
            # Now, not when the hand-over resumes: our exit may come first,
            # and would remove the files and the pidfile naming us.
            self._give_back()
        self.answered = True
        line = f"E1 {' '.join(self.refusal.split())}\n"
        with contextlib.suppress(OSError):
            self.lines.send(line.encode("utf-8", "backslashreplace"))

    def _give_back(self) -> None:
        """Undo the claim: the pidfile names the old daemon again, its files are its own."""
        channel = self.channel
        handoff = channel.handoff
        from .._prefork._adopt_fds import unix_files

        if channel.pidfile is not None and self.pid_written:
            # Before our exit could see our pid in it and remove the file.
            write_pid_in_place(channel.pidfile, handoff.parent)
        if channel.listeners is not None:
            channel.listeners.disown_unix_files(unix_files(handoff))
        self.dropped_files = {}  # still the old daemon's, which serves on
        if channel.control is not None:
            channel.control.disown_file()

    async def _wait_gone(self) -> bool:
        """Whether the old daemon exited (its channel ends a moment before its pidfd says so)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.gone.wait(), _EXIT_WAIT)
        return self.gone.is_set()


_current: list[_TakeOver] = []


def _take_over_for(channel: SuccessorChannel, logs: LogWriter | None = None) -> _TakeOver:
    if not _current:
        _current.append(_TakeOver(channel, logs))
    return _current[0]


def watch_predecessor(channel: SuccessorChannel, logs: LogWriter | None) -> None:
    """From the start of the run: read the channel, take over alone if the old daemon exits first.

    Args:
        channel: the channel to the old daemon.
        logs: our log writer, whose reopens are passed on to the old daemon
            (and its reopens to us) while both run.
    """
    takeover = _take_over_for(channel, logs)
    takeover.take_stderr()
    takeover.open_lines()
    takeover.watch()


def not_in_charge() -> str | None:
    """Why this successor may not start an upgrade of its own yet; None once it took over.

    Until then the old daemon is the one in charge: a successor of ours would
    be handed the pidfile and sockets while the old daemon still serves, and
    left running beside it if the old one rolls back (a ``pkill -USR2`` that
    reached both, say).
    """
    if not _current:
        return None
    takeover = _current[0]
    if takeover.claim is not None and takeover.claim.done() and takeover.refusal is None:
        return None
    return f"still taking over from pid {takeover.channel.handoff.parent}"


def checks_failing() -> str | None:
    """Why our readiness checks fail, while the hand-over waits for them; else None.

    A successor stopped then was never ready: it ends as a daemon stopped
    before it was ready does.
    """
    return _current[0].checks_failing if _current else None


def refuse_takeover(reason: str | None) -> None:
    """Our run began to stop before the take-over (see :meth:`_TakeOver.refuse`)."""
    if _current:
        _current[0].refuse(reason)


def close_channel() -> None:
    """Stop reading the channel to the old daemon (our shutdown ends)."""
    if _current and _current[0].lines is not None:
        _current[0].lines.close()


async def readiness_verdict(server: HealthServer) -> str | None:
    """None once the program's readiness checks pass, else why not (as ``/readyz`` runs them)."""
    from ._health import CHECK_TIMEOUT

    evaluation = server.evaluate()
    # asyncio.wait, which never cancels what it waits for: probes share the
    # evaluation. Bounded: a check that swallows its cancellation must not
    # hold the hand-over past the checks' own bound.
    await asyncio.wait({evaluation}, timeout=2 * CHECK_TIMEOUT)
    done = evaluation.done() and not evaluation.cancelled()
    if done and evaluation.exception() is None and evaluation.result():
        return None
    return server.failing or f"readiness checks gave no verdict within {2 * CHECK_TIMEOUT}s"


def hand_over(channel: SuccessorChannel) -> None:
    """Once ready: start the hand-over (see the module docstring)."""
    takeover = _take_over_for(channel)
    task = own_task(takeover.hand_over(), "aiodaemon-handover")
    takeover.tasks.add(task)
    task.add_done_callback(takeover.tasks.discard)
