"""Reloads asked for during an upgrade: refused on the control socket, held when by SIGHUP.

During an upgrade the old daemon is about to hand over and exit. A reload run
there would be cancelled by the shutdown that follows the hand-over, and the
successor, which serves from then on, would never run it. (An upgrade is
refused while a reload runs, for the same reason.) So, while an upgrade is
under way:

- the control socket's ``reload`` is refused with a transient answer
  (``"transient": true``, "an upgrade to successor pid N is in progress");
  ``aiodaemon reload`` asks again within its ``--timeout`` and reaches the
  successor once it has taken over the socket (or this daemon again if the
  upgrade failed);
- SIGHUP, which nobody answers, reopens the log files at once as always, and
  its reload is held (:class:`HeldReloads`): a failed upgrade runs it here; a
  hand-over forwards SIGHUP to the successor through a pidfd, and so do the
  SIGHUPs that reach this daemon while it drains. The SIGHUP of a foreground
  daemon's terminal hanging up is no reload: it stops the daemon, as always,
  and is never forwarded.

Loaded only by a daemon with a control socket, or when an upgrade begins.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog

from .._prefork._control_protocol import failure
from ._kept_signals import keep_signal_handler

if TYPE_CHECKING:
    from ._control_server import Command

__all__ = ["HeldReloads", "refuse_during_upgrade"]

_log = structlog.get_logger("aiodaemon")


def refuse_during_upgrade(successor: Callable[[], int | None], reload: Command) -> Command:
    """The control socket's ``reload``, refused (for now) while ``successor()`` names one.

    Args:
        successor: the pid of the upgrade's new process while an upgrade runs
            (and after its hand-over), None otherwise.
        reload: the command that runs a reload.
    """
    logged: set[int] = set()

    async def guarded(request: dict[str, Any]) -> dict[str, Any]:
        pid = successor()
        if pid is None:
            return await reload(request)
        if pid not in logged:
            # Once per upgrade: a waiting CLI asks again every half second.
            logged.add(pid)
            _log.info("reload refused", reason="an upgrade is in progress", successor=pid)
        return failure(f"an upgrade to successor pid {pid} is in progress", transient=True)

    return guarded


class HeldReloads:
    """SIGHUP during one upgrade: logs reopened at once, the reload held for whoever serves next.

    Args:
        reload: begin a reload here, as SIGHUP does.
        reopen: reopen the log files, as SIGUSR1 does.
        sighup: the daemon's own SIGHUP handler, given back when the upgrade fails.
        hung_up: whether the terminal of a foreground daemon hung up: its SIGHUP
            is the kernel's, a stop for ``sighup`` to begin, not a reload to hold.
    """

    def __init__(
        self,
        *,
        reload: Callable[[], object],
        reopen: Callable[[], object],
        sighup: Callable[[], object],
        hung_up: Callable[[], bool],
    ) -> None:
        self._reload = reload
        self._reopen = reopen
        self._sighup = sighup
        self._hung_up = hung_up
        self._held = 0
        self._successor: tuple[int, int] | None = None

    def begin(self) -> None:
        """An upgrade started: hold SIGHUP's reload from now on."""
        keep_signal_handler(asyncio.get_running_loop(), signal.SIGHUP, self._hold)

    def rolled_back(self) -> None:
        """The upgrade failed: this daemon serves on and runs the reload it held."""
        # Its own handler, not a plain reload: a terminal's hang-up stops it again.
        keep_signal_handler(asyncio.get_running_loop(), signal.SIGHUP, self._sighup)
        if self._held:
            _log.info("held reload released", held=self._held)
            self._held = 0
            self._reload()

    def handed_over(self, successor: int) -> None:
        """The successor took over: it gets the held reload, and every later SIGHUP."""
        try:
            # Opened while the successor, our unreaped child, has just answered:
            # its pid cannot name another process, now or through this pidfd.
            pidfd = os.pidfd_open(successor)
        except OSError as exc:
            _log.error(
                "cannot forward SIGHUP to the successor", successor=successor, error=str(exc)
            )
            return
        self._successor = successor, pidfd
        keep_signal_handler(asyncio.get_running_loop(), signal.SIGHUP, self._forward)
        if self._held:
            self._held = 0
            self._send_on("reload held during the upgrade forwarded")

    def _hold(self) -> None:
        if self._hung_up():
            # The kernel's, at the terminal's hang-up: the daemon stops (which
            # abandons the upgrade), as it would outside one.
            self._sighup()
            return
        _log.info("signal received", signal="SIGHUP")
        self._held += 1
        self._reopen()
        _log.info("reload held until the upgrade ends", reason="an upgrade is in progress")

    def _forward(self) -> None:
        if self._hung_up():
            # The terminal this process leaves behind hung up: no reload for the
            # successor, which has no terminal; this one is stopping already.
            self._sighup()
            return
        _log.info("signal received", signal="SIGHUP")
        # Our last records go to the new file too (logrotate's postrotate HUP).
        self._reopen()
        self._send_on("reload forwarded")

    def _send_on(self, event: str) -> None:
        assert self._successor is not None
        pid, pidfd = self._successor
        try:
            signal.pidfd_send_signal(pidfd, signal.SIGHUP)
        except OSError as exc:
            _log.error("cannot forward SIGHUP", successor=pid, error=str(exc))
            return
        _log.info(event, successor=pid)
