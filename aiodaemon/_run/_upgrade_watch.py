"""An upgrade's successor as the old daemon watches it start: its lines, its exit, its stderr.

While the successor runs its startup hooks, the old daemon waits on three
things at once (:meth:`SuccessorWatch.next_line`): the successor's next line on
the private channel (:mod:`._upgrade_channel`), its exit (read through its
pidfd) and the daemon's own stop. Meanwhile the successor's stderr is copied to
ours, and its end kept: a successor that dies before its log is open is
reported by its last error line, one that ends later by how it ended and where
its log records are (:meth:`SuccessorWatch.failure`).

What the lines mean, and what follows them (hand-over or roll back), is
:mod:`._upgrade`'s. Loaded only by a daemon that upgrades, at its first upgrade.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import structlog

from .._prefork._handoff import VERSION
from .._prefork._messages import seconds_shown
from ._exit_notice import write_nowait
from ._own_tasks import cancel_task
from ._upgrade_channel import ChannelLines

if TYPE_CHECKING:
    from .._logs._logwriter import LogWriter
    from .._prefork._handoff import Spawned

__all__ = ["SuccessorWatch"]

_log = structlog.get_logger("aiodaemon")

#: Bytes of the successor's stderr kept for the error message.
_STDERR_TAIL = 8192
#: Seconds a successor that said why it fails is given to end on its own before
#: the kill: its last records (its ``exit``, its shutdown hooks') are written then.
_END_GRACE = 5.0
#: Seconds an exited successor's channel is read for its last lines, up to its end
#: (a descriptor it passed on to a process of its own may hold it open).
_DRAIN_WAIT = 1.0
#: The first bytes of the successor's lines that end a wait (see _handoff): R, W, E, V.
_KNOWN = frozenset((b"R", b"W", b"E", b"V"))
#: ``PF_EXITING`` in the flags of ``/proc/PID/stat``: set as a process begins
#: to exit, before its descriptors are closed.
_PF_EXITING = 0x4


class SuccessorWatch:
    """One successor from its spawn until it took over or was killed.

    Args:
        spawned: the successor just started; its stderr is ours to copy from now on.
        stop: set when the daemon begins to stop (an upgrade under way is abandoned).
        spawn: starts the copy of its stderr as a task the shutdown leaves
            running (a successor stopping with us may still be importing its
            code, and writing there): ``UpgradeTarget.spawn``.
        records: where its log records go ("in PATH"), None if nowhere.
    """

    def __init__(
        self,
        spawned: Spawned,
        stop: asyncio.Event,
        spawn: Callable[[Coroutine[Any, Any, None], str], asyncio.Task[None]],
        *,
        records: str | None = None,
    ) -> None:
        self.spawned = spawned
        self._records = records
        loop = asyncio.get_running_loop()
        self._exited: asyncio.Future[None] = loop.create_future()
        loop.add_reader(spawned.pidfd, _set_once, self._exited)
        self._stopped = asyncio.ensure_future(stop.wait())
        self._tail = bytearray()
        #: set by the pump once the successor put its own stderr back (its run began).
        self._began = False
        self._pump = spawn(self._pump_stderr(spawned.stderr, spawned.pid), "aiodaemon-upgrade")
        spawned.stderr = -1  # the pump's to close
        self._lines: ChannelLines | None = None
        #: why its readiness checks fail (its last ``N`` line), None if they did not.
        self.not_ready: str | None = None
        #: its last ``E`` line, kept even when read by a wait that a stop ended.
        self._said: bytes | None = None

    def open_channel(self, logs: LogWriter | None) -> ChannelLines:
        """Read and write the channel from now on (log reopens passed on both ways)."""
        self._lines = ChannelLines(self.spawned.channel, logs)
        self.spawned.channel.close()  # lines has its own descriptor
        return self._lines

    async def next_line(self, within: float) -> bytes | None:
        """A line from the successor, b"" if it exited first, None after ``within`` seconds.

        ``N`` lines are noted (:attr:`not_ready`), lines we do not know skipped.

        None too as soon as ``stop`` is set: the caller looks at ``stop`` first.
        """
        assert self._lines is not None
        deadline = asyncio.get_running_loop().time() + within
        while True:
            line = await self._next_line(max(0.0, deadline - asyncio.get_running_loop().time()))
            if not line or line[:1] in _KNOWN:
                return line
            if line.startswith(b"N"):
                # Ready but for its readiness checks: why, should the time run out.
                self.not_ready = line[1:].decode("utf-8", "replace").strip() or None
            else:
                # A later successor's line: not ours to act on (see _handoff).
                _log.debug(
                    "upgrade channel line ignored", successor=self.spawned.pid, line=line[:64]
                )

    async def _next_line(self, within: float) -> bytes | None:
        assert self._lines is not None
        line_task = asyncio.ensure_future(self._readline())
        waiting: set[asyncio.Future[Any]] = {line_task, self._exited, self._stopped}
        done, _ = await asyncio.wait(waiting, timeout=within, return_when=asyncio.FIRST_COMPLETED)
        if self._stopped in done:
            line_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await line_task
            return None
        if line_task in done:
            line = line_task.result()
            if not line:
                # The channel closes as the process exits, a moment before its
                # exit status exists: wait for that, for the error message.
                await asyncio.wait([self._exited], timeout=2.0)
            return line
        line_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await line_task
        return b"" if self._exited in done else None

    async def failure(self, line: bytes | None, waited: float, *, ready: bool = False) -> str:
        """Why the successor is not ready, given what :meth:`next_line` returned instead.

        Args:
            line: what :meth:`next_line` returned.
            waited: the ``within`` it was given.
            ready: it had reported ready (it failed before it took over).
        """
        if line is not None and line.startswith(b"E"):
            # It said why and is on its way out, as a failed start's daemon
            # whose launcher has its verdict: killed at once, it lost the end
            # of its log (its "exit" record, records still queued to write).
            ending: set[asyncio.Future[Any]] = {self._exited, self._stopped}
            await asyncio.wait(ending, timeout=_END_GRACE, return_when=asyncio.FIRST_COMPLETED)
        # Let the stderr pump catch up a moment after the successor exited.
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError, OSError):
            await asyncio.wait_for(asyncio.shield(self._pump), 0.5)
        pid = self.spawned.pid
        before = "before it took over" if ready else "before it was ready"
        if line is None:
            if ready:
                return f"successor (pid {pid}) did not take over within {seconds_shown(waited)} s"
            why = f"successor (pid {pid}) not ready after {seconds_shown(waited)} s"
            if self.not_ready is not None:
                why += f": readiness check failing: {self.not_ready}"
            return why
        if line.startswith(b"V"):
            takes = line[1:].decode("ascii", "replace").strip()
            return (
                f"successor (pid {pid}) takes version {takes} of the hand-off, not {VERSION}: "
                "its aiodaemon cannot take over from this one; use 'aiodaemon restart'"
            )
        if line.startswith(b"E"):
            text = line[1:].decode("utf-8", "replace").strip()
            why = text.partition(" ")[2] or f"successor (pid {pid}) failed"
            if not ready:
                return why  # its failed start, said as `aiodaemon start` says it
            # It refused the take-over as it began to stop, for a reason that may
            # be no failure ("main returned"): how it ended, where its records are.
            status = self.spawned.exit_status()
            ended = "" if status is None else f"; it {_ended(status)}"
            return why + ended + self._see_records()
        # Ready, its run had begun for sure: the pump may read the pipe's end only
        # after the exit, and take what was written before the run for its last words.
        began = ready or self._run_began()
        last = "" if began else _last_error_line(self._tail)
        why = last or f"successor (pid {pid}) {_ended(self.spawned.exit_status())} {before}"
        if began:
            # It ended once its log was open, which says why.
            why += self._see_records()
        assert self._lines is not None
        self._lines.poll()
        if self._lines.never_read:
            # Its error alone misleads: 0.1.0 says "already running", of us. Its
            # pid is said once: "successor (pid N) exited ..." named it already.
            who = "it" if f"(pid {pid})" in why else f"the new process (pid {pid})"
            why += (
                f"; {who} ended without taking the hand-over: "
                "a program that failed before calling aiodaemon, or one whose "
                "aiodaemon predates upgrades (0.1.0: use 'aiodaemon restart')"
            )
        return why

    async def last_error(self) -> str | None:
        """The error a successor that ended unasked to take over said last (its ``E`` line).

        A successor sent SIGTERM before it was ready still tells the channel
        why it ends, as a failed start tells its launcher; the old daemon's
        record of its end says it then, not its status alone. Called once it
        has exited: its exit can be seen before its lines are read, so the
        channel is read to its end first.
        """
        if self._lines is None:
            return None
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._drain(), _DRAIN_WAIT)
        if self._said is None:
            return None
        text = self._said[1:].decode("utf-8", "replace").strip()
        return text.partition(" ")[2] or None

    async def _readline(self) -> bytes:
        """The channel's next line, an ``E`` line noted (see :meth:`last_error`)."""
        assert self._lines is not None
        line = await self._lines.readline()
        if line.startswith(b"E"):
            # A stop that comes with it ends the wait that read it, which then
            # drops it: the record of the successor's end still says why.
            self._said = line
        return line

    async def _drain(self) -> None:
        while await self._readline():
            pass

    @property
    def held(self) -> bool:
        """Whether the successor is still ours to stop: neither killed nor in charge."""
        return self.spawned.pidfd >= 0

    async def _pump_stderr(self, fd: int, pid: int) -> None:
        self._began = await _pump_stderr(fd, self._tail, pid)

    def _run_began(self) -> bool:
        """Whether the successor's run began (its log open): it put its own stderr back."""
        return self._began

    def _see_records(self) -> str:
        """Where to read the successor's log records, for its failure's message."""
        return "" if self._records is None else f"; see its log records {self._records}"

    def terminate(self) -> None:
        """SIGTERM the successor alone (through its pidfd): it stops as a daemon does.

        One suspended (SIGSTOP, job control: perhaps why it was not ready in
        time) is continued too, as ``aiodaemon stop`` continues a daemon: a
        stopped process keeps the SIGTERM pending, and stayed stopped until
        its SIGKILL, holding our sockets and the pidfile's descriptor, our
        own stop waiting for it, and the next upgrade refused meanwhile.
        """
        import signal

        if not self.held:
            return
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(self.spawned.pidfd, signal.SIGTERM)
            if _stopped(self.spawned.pid) is not False:
                # After the SIGTERM: continued first, it might run on before it.
                signal.pidfd_send_signal(self.spawned.pidfd, signal.SIGCONT)

    async def ended_within(
        self, seconds: float | None, *, unless: asyncio.Future[Any] | None = None
    ) -> bool:
        """Whether the successor exited within ``seconds`` (None: however long it takes).

        Args:
            seconds: how long to wait at most.
            unless: a future whose result ends the wait early (False then, if still running).
        """
        waiting: set[asyncio.Future[Any]] = {self._exited}
        if unless is not None:
            waiting.add(unless)
        await asyncio.wait(waiting, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        return self._exited.done()

    def kill(self) -> None:
        """Stop watching, close the channel, and kill the successor with its process group."""
        self._stopped.cancel()
        asyncio.get_running_loop().remove_reader(self.spawned.pidfd)
        if self._lines is not None:
            self._lines.close()
        self.spawned.kill()

    async def stop_copying(self) -> None:
        """After :meth:`kill`: stop copying its stderr, and wait until the copy has stopped."""
        cancel_task(self._pump)
        with contextlib.suppress(asyncio.CancelledError):
            await self._pump

    def took_over(self) -> ChannelLines:
        """The successor is in charge: reap it if it exits first; return the channel, still open.

        It is our child: when it hands over to an upgrade of its own while we
        still drain (a long request in flight), it would stay a zombie until we
        exit. Its pidfd, readable once it has exited, says when to reap it.
        """
        self._stopped.cancel()
        loop = asyncio.get_running_loop()
        pidfd, pid = self.spawned.pidfd, self.spawned.pid
        loop.remove_reader(pidfd)
        self.spawned.pidfd = -1
        self.spawned.release()

        def reap() -> None:
            loop.remove_reader(pidfd)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            os.close(pidfd)

        loop.add_reader(pidfd, reap)
        assert self._lines is not None
        return self._lines


def _ended(code: int | None) -> str:
    """How a process ended, from :meth:`Spawned.exit_status`: "was killed by SIGKILL"..."""
    if code is None:
        return "exited"
    if code < 0:
        import signal

        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


def _set_once(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def _pump_stderr(fd: int, tail: bytearray, pid: int) -> bool:
    """Copy the successor's startup stderr to ours, keeping the end; close ``fd`` at the end.

    The end kept is dropped when the successor (``pid``) closed its end alive:
    it put its own stderr back as its run began, and what it wrote before (a
    warning of the new code at import, say) cannot be why it dies later.
    What our stderr cannot take without blocking (a pipe nobody reads) is
    not copied, and the log says how much: a wait there would hold the loop.

    Returns:
        Whether the successor closed its end alive (its run began, its log open).
    """
    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)
    readable = asyncio.Event()
    loop.add_reader(fd, readable.set)
    lost = 0
    try:
        while True:
            await readable.wait()
            readable.clear()
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                continue
            if not data:
                if _closed_alive(pid):
                    tail.clear()
                    return True
                return False
            lost += write_nowait(data)
            tail.extend(data)
            del tail[:-_STDERR_TAIL]
    finally:
        loop.remove_reader(fd)
        os.close(fd)
        if lost:
            _log.warning("successor stderr not copied", successor=pid, bytes=lost)


def _stopped(pid: int) -> bool | None:
    """Whether ``pid`` is stopped by a signal (state ``T``); None when ``/proc`` will not tell.

    Read here, not with :mod:`aiodaemon._prefork._procfs`, for the reason
    :func:`_closed_alive` gives; unknown counts as stopped for the caller: a
    running process takes no notice of SIGCONT.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            # The command name may hold spaces and parentheses: split at the last ")".
            return f.read().rsplit(b")", 1)[1].split()[0] == b"T"
    except (OSError, IndexError):
        return None


def _closed_alive(pid: int) -> bool:
    """Whether ``pid``, not reaped yet, is neither exiting nor dead.

    Deterministic at the pipe's end of file: a process that exits is flagged
    as exiting before its descriptors close. Read here, not with
    :mod:`aiodaemon._prefork._procfs`: a running daemon loads no more of aiodaemon's files.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            # The command name may hold spaces and parentheses: split at the last ")".
            flags = int(f.read().rsplit(b")", 1)[1].split()[6])
    except (OSError, ValueError, IndexError):
        return False  # unknown: the end kept may be its last words
    return not flags & _PF_EXITING


#: The first line of the traceback Python prints for an exception that ends it
#: (an exception group's is framed: its lines then begin with ``  | ``).
_TRACEBACK = "Traceback (most recent call last):"
_GROUP_TRACEBACK = "  + Exception Group Traceback (most recent call last):"


def _last_error_line(tail: bytearray) -> str:
    """The exception the successor's stderr ends with, on one line: ``Type: message``.

    The exception's lines follow its traceback's frames: a message may take
    several, and notes (``add_note``) come after it, so the last line alone
    may be none of ``Type: message`` (an exception group's is its frame,
    ``+-----``). Without a traceback, the last line that is not blank.
    """
    lines = [raw.decode("utf-8", "replace").rstrip() for raw in bytes(tail).splitlines()]
    for index in range(len(lines) - 1, -1, -1):
        if lines[index] not in (_TRACEBACK, _GROUP_TRACEBACK):
            continue
        said: list[str] = []
        for line in lines[index + 1 :]:
            if lines[index] == _GROUP_TRACEBACK:
                if not line.startswith("  | "):
                    break  # its sub-exceptions follow
                line = line[4:]
            if said or not line[:1].isspace():
                said.append(line)
        if said:
            return " ".join(" ".join(said).split())
    return next((line.strip() for line in reversed(lines) if line.strip()), "")
