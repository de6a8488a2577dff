"""Zero-downtime upgrade, as a run-phase service: SIGUSR2 and the ``upgrade`` command.

The mechanism (start a successor, hand over or roll back) is :mod:`._upgrade`;
the successor's side of the hand-over is :mod:`._takeover`. This module plugs
them into a run: the signal, the control command, and what a stop does to an
upgrade under way.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import signal
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import structlog

from ._kept_signals import keep_signal_handler
from ._own_tasks import own_task
from ._services import Service
from ._state import State
from ._upgrade import DEFAULT_TIMEOUT, REPORT_WAIT, STOPPING, UpgradeError, Upgrader, UpgradeRefused

if TYPE_CHECKING:
    from .._prefork._adopt import SuccessorChannel
    from ._control_server import Command

__all__ = ["UpgradeService", "await_handover", "upgrade_command", "with_successor"]

_log = structlog.get_logger("aiodaemon")


def upgrade_command(
    upgrader: Upgrader, run: Callable[[float], Awaitable[int]] | None = None
) -> Command:
    """The control socket's ``upgrade`` command: ``{"cmd": "upgrade", "timeout": S}``.

    Answers ``{"ok": true, "pid": <new pid>}`` once the successor took over, or
    ``{"ok": false, "error": ...}`` (``"refused": true`` when nothing was started;
    ``"state"``, the daemon's, when that refused it for now: "starting", "reloading").
    ``run(timeout)`` performs the upgrade (``upgrader.upgrade`` by default).
    """
    perform = upgrader.upgrade if run is None else run
    from .._prefork._control_protocol import MAX_WAIT, VERSION, failure

    async def upgrade(request: dict[str, Any]) -> dict[str, Any]:
        within = request.get("timeout", DEFAULT_TIMEOUT)
        if isinstance(within, bool) or not isinstance(within, int | float) or within <= 0:
            return failure(f"timeout must be a positive number of seconds, not {within!r}")
        task = asyncio.current_task()
        if task is not None:
            # A stop abandons the upgrade; the shutdown lets this answer go out first.
            upgrader.reporters.add(task)
            task.add_done_callback(upgrader.reporters.discard)
        try:
            # min() first: float() of a 400-digit integer overflows.
            pid = await perform(float(min(within, MAX_WAIT)))
        except UpgradeRefused as exc:
            if exc.transient:
                # The command asks again until its timeout: a record per try
                # would flood the log (the command tells its user it waits).
                _log.debug("upgrade deferred", reason=str(exc))
                if exc.state is not None:
                    return failure(str(exc), refused=True, transient=True, state=exc.state)
                return failure(str(exc), refused=True, transient=True)
            _log.warning("upgrade refused", reason=str(exc))
            return failure(str(exc), refused=True)
        except UpgradeError as exc:
            return failure(str(exc))
        return {"v": VERSION, "ok": True, "pid": pid}

    return upgrade


def await_handover(channel: SuccessorChannel) -> None:
    """After reporting ready: wait for ``G`` (or the old daemon's exit) and take over."""
    from ._takeover import hand_over  # only a successor gets here

    hand_over(channel)


def with_successor(successor: Callable[[], int | None], status: Command) -> Command:
    """The control socket's ``status``, naming the upgrade's new process while one runs.

    ``reload`` and ``upgrade`` name it when they are refused meanwhile: ``status``
    said a plain "running" then.
    """

    async def answer(request: dict[str, Any]) -> dict[str, Any]:
        reply = await status(request)
        if reply.get("ok"):
            reply["successor"] = successor()
        return reply

    return answer


class UpgradeService(Service):
    """SIGUSR2 and the control socket's ``upgrade`` command, for the run they belong to.

    Args:
        upgrader: the old daemon's side, for this run.
        commands: the control server's commands (None without a control socket).
        successor: this run's channel to the old daemon, when an upgrade started it.
        reload: begin a reload, as SIGHUP does (see :mod:`._upgrade_reloads`).
        reopen: reopen the log files, as SIGUSR1 does.
        sighup: the daemon's own SIGHUP handler, given back after a failed upgrade.
        hung_up: whether a foreground daemon's terminal hung up (its SIGHUP is a stop).
        failure: why the run is stopping: its failure, or what began the stop
            (a successor says it when its run ends before the take-over).
        budget_end: the ``time.monotonic()`` end of the shutdown budget, once
            known: a successor sent SIGTERM at our stop is killed before it.
        not_ready: records the run as a start that failed, with why (a
            successor stopping while its readiness checks fail never was ready).
    """

    name = "upgrade"

    def __init__(
        self,
        upgrader: Upgrader,
        commands: dict[str, Any] | None,
        successor: SuccessorChannel | None = None,
        *,
        reload: Callable[[], object] | None = None,
        reopen: Callable[[], object] | None = None,
        sighup: Callable[[], object] | None = None,
        hung_up: Callable[[], bool] | None = None,
        failure: Callable[[], str | None] | None = None,
        budget_end: Callable[[], float | None] | None = None,
        not_ready: Callable[[str], object] | None = None,
    ) -> None:
        self.upgrader = upgrader
        self._commands = commands
        self._successor = successor
        self._reload = reload
        self._reopen = reopen
        self._sighup = sighup
        self._hung_up = hung_up
        self._failure = failure
        self._budget_end = budget_end
        self._not_ready = not_ready
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Answer SIGUSR2 and ``{"cmd": "upgrade"}`` from now on."""
        if self._successor is not None:
            from ._takeover import watch_predecessor

            watch_predecessor(self._successor, self.upgrader.target.logs)
        keep_signal_handler(asyncio.get_running_loop(), signal.SIGUSR2, self._on_signal)
        if self._commands is not None:
            from ._upgrade_reloads import refuse_during_upgrade

            self._commands["upgrade"] = upgrade_command(self.upgrader, self._upgrade)
            status = self._commands.get("status")
            if status is not None:
                self._commands["status"] = with_successor(lambda: self.upgrader.successor, status)
            reload = self._commands.get("reload")
            if reload is not None:
                self._commands["reload"] = refuse_during_upgrade(
                    lambda: self.upgrader.successor, reload
                )

    async def _upgrade(self, within: float = DEFAULT_TIMEOUT) -> int:
        """Upgrade, holding SIGHUP's reload meanwhile (see :mod:`._upgrade_reloads`)."""
        if self._successor is not None:
            from ._takeover import not_in_charge

            if (why := not_in_charge()) is not None:
                raise UpgradeRefused(f"cannot upgrade while {why}", transient=True)
        reload, reopen, sighup, hung_up = self._reload, self._reopen, self._sighup, self._hung_up
        if (
            reload is None
            or reopen is None
            or sighup is None
            or hung_up is None
            or self.upgrader.successor is not None
        ):
            # No one to run a held reload, or refused: one upgrade already holds them.
            return await self.upgrader.upgrade(within)
        from ._upgrade_reloads import HeldReloads

        held = HeldReloads(reload=reload, reopen=reopen, sighup=sighup, hung_up=hung_up)
        held.begin()
        try:
            pid = await self.upgrader.upgrade(within)
        except BaseException:
            held.rolled_back()
            raise
        held.handed_over(pid)
        return pid

    def _on_signal(self) -> None:
        _log.info("signal received", signal="SIGUSR2")
        task = own_task(self._from_signal(), "aiodaemon-usr2")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _from_signal(self) -> None:
        try:
            await self._upgrade()
        except UpgradeRefused as exc:
            _log.warning("upgrade refused", reason=str(exc))
        except UpgradeError:
            pass  # logged by the upgrader; we keep serving

    def not_ready(self) -> None:
        """A stop began: abandon an upgrade under way (its successor is sent SIGTERM);
        SIGUSR2 is refused from now on.

        The handler stays: removing it would restore SIGUSR2's default action,
        which kills the process in the middle of its shutdown.
        """
        self.upgrader.abort()
        with contextlib.suppress(RuntimeError, ValueError):
            keep_signal_handler(asyncio.get_running_loop(), signal.SIGUSR2, _refuse_while_stopping)

    def state_changed(self, old: State, new: State) -> None:
        """A state listener: a successor that begins to stop before its take-over takes nothing.

        At the state change itself, not at the shutdown's first step: the old
        daemon's "go" may be read in between (see :mod:`._takeover`).
        """
        if new is State.STOPPING and self._successor is not None:
            from ._takeover import checks_failing, refuse_takeover

            failing = checks_failing()
            if failing is not None and self._not_ready is not None:
                # As a daemon stopped before it was ready (a startup hook that
                # hangs): status 1, and the check that held it back as the reason.
                self._not_ready(f"readiness check failing: {failing}")
            refuse_takeover(None if self._failure is None else self._failure())

    async def stop_accepting(self) -> None:
        """The budget counts from now: a successor still stopping at its end is killed first."""
        end = None if self._budget_end is None else self._budget_end()
        if end is not None:
            self.upgrader.stop_by(end)

    async def wait_finished(self) -> None:
        """Let an abandoned upgrade end, and its answer go out, before tasks are cancelled."""
        pending = [t for t in (*self.upgrader.reporters, *self._tasks) if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=REPORT_WAIT)

    async def close(self) -> None:
        """Wait for a successor sent SIGTERM to be gone, then close the channels still open.

        Awaited here, the last step, and not earlier: its stop runs beside
        ours (our drain, our connections, our shutdown hooks), not before
        them. We exit after it, so that the ``aiodaemon stop`` that waits for
        our exit finds nothing of the program left running.
        """
        await self.upgrader.wait_retired()
        if self.upgrader.handed_to is not None:
            self.upgrader.handed_to.close()
        if self._successor is not None:
            from ._takeover import close_channel

            close_channel()


def _refuse_while_stopping() -> None:
    _log.warning("upgrade refused", reason=STOPPING, signal="SIGUSR2")


_PACKAGE = __name__.split(".")[0]
#: aiodaemon's modules an upgrade imports that nothing on the way to ready loads:
#: pinned at the start (``_launch``), run once ``main`` runs (:func:`load_upgrade_path`).
UPGRADE_PATH = tuple(
    f"{_PACKAGE}.{name}"
    for name in (
        "_prefork._init",  # PID 1 refuses upgrades
        "_prefork._relaunch",  # the successor's command line
        "_prefork._fdshare",  # imported by _control_protocol
        "_prefork._control_protocol",
        "_run._upgrade_channel",
        "_run._upgrade_reloads",
        "_run._upgrade_watch",
    )
)


def load_upgrade_path() -> None:
    """Import what an upgrade imports, so that the old daemon runs its own version of it.

    An upgrade follows a deploy: a module first read then would be the new
    version's, run by the old daemon's older modules. Their code was read at
    the start (:func:`._pinned.pin`, before any chroot or privilege drop);
    running it waits until the daemon runs (off the way to ready:
    :func:`preload_when_running`).
    """
    for name in UPGRADE_PATH:
        importlib.import_module(name)


def preload_when_running(old: State, new: State) -> None:
    """A state listener: once ``main`` runs, load the upgrade path on a later loop turn."""
    if old is State.STARTING and new is State.RUNNING:
        loop = asyncio.get_running_loop()
        # Twice deferred: main's first step (queued just before) goes first.
        loop.call_soon(loop.call_soon, _load_or_warn)


def _load_or_warn() -> None:
    try:
        load_upgrade_path()
    except Exception as exc:  # a broken deploy already on disk: the upgrade will say so
        _log.warning("upgrade code not loaded", error=f"{type(exc).__name__}: {exc}")
