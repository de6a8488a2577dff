"""Reload results: which run of the reload hooks answered which request.

Reloads never overlap and requests that arrive during one coalesce into one
more run (:mod:`._state`). A request is answered by the first run that
*started* after it was made: a run already under way may have read the old
configuration before the request came. When the daemon begins to stop, the
requests no run covers are abandoned; those of the run under way wait for
it to end, or to be cancelled (then its error says so).
"""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

__all__ = ["ReloadAbandoned", "ReloadResult", "ReloadTracker"]


class ReloadResult:
    """How one run of the reload hooks ended."""

    # A plain class, not a NamedTuple: every daemon loads this module before
    # ready, and a NamedTuple compiles a ForwardRef per field (~0.1 ms).
    __slots__ = ("at", "error", "exiting", "hook", "ok")

    def __init__(
        self,
        ok: bool,
        error: str | None,
        at: str,
        exiting: int | None = None,
        hook: str | None = None,
    ) -> None:
        self.ok = ok
        #: ``Type: message`` of the hook that failed, None on success.
        self.error = error
        #: when the run finished, ISO 8601 UTC.
        self.at = at
        #: the exit status a hook's ``sys.exit()`` asked for (the daemon is
        #: shutting down with it), None when the daemon keeps running.
        self.exiting = exiting
        #: the hook that failed (``module.qualname``), None on success.
        self.hook = hook

    def __repr__(self) -> str:
        return (
            f"ReloadResult(ok={self.ok!r}, error={self.error!r}, at={self.at!r}, "
            f"exiting={self.exiting!r}, hook={self.hook!r})"
        )

    def as_json(self) -> dict[str, Any]:
        """The ``last_reload`` object of ``status``."""
        return {"ok": self.ok, "error": self.error, "at": self.at}


class ReloadAbandoned(Exception):
    """The daemon began to stop before a run covered the request."""


class ReloadTracker:
    """Numbers reload requests and hands each one the result of the run that covered it."""

    def __init__(self) -> None:
        self._requested = 0
        self._waiting: list[tuple[int, asyncio.Future[ReloadResult]]] = []
        #: the token of the run under way (what it covers), None between runs.
        self._running: int | None = None
        #: the tasks that asked for a run, by future, to let them answer (see answered).
        self._askers: dict[asyncio.Future[ReloadResult], asyncio.Task[Any]] = {}
        #: tasks whose request the last finished run answered, until taken.
        self._answered: list[asyncio.Task[Any]] = []
        #: the result of the last run that finished, None before the first.
        self.last: ReloadResult | None = None

    def request(self) -> asyncio.Future[ReloadResult]:
        """Register a request; the future gets the result of the run that covers it."""
        self._requested += 1
        future: asyncio.Future[ReloadResult] = asyncio.get_running_loop().create_future()
        self._waiting.append((self._requested, future))
        asker = asyncio.current_task()
        if asker is not None:
            self._askers[future] = asker
        return future

    def begin(self) -> int:
        """Call when a run starts: it covers every request made so far (the token)."""
        self._running = self._requested
        return self._requested

    def finish(
        self,
        covers: int,
        error: str | None,
        exiting: int | None = None,
        hook: str | None = None,
    ) -> ReloadResult:
        """Record the end of the run that began with ``covers`` and answer its requests.

        Args:
            covers: the token :meth:`begin` returned for this run.
            error: ``Type: message`` of the hook that failed, None on success.
            exiting: the exit status a hook asked for with ``sys.exit()``
                (the daemon shuts down with it), None when it keeps running.
            hook: the name of the hook that failed.
        """
        at = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")
        if error is not None:
            # One line: it ends up on an operator's terminal and in status.
            error = " ".join(error.split())
        result = ReloadResult(error is None, error, at.replace("+00:00", "Z"), exiting, hook)
        self.last = result
        self._running = None
        # Only the askers still writing are kept: a long life of reloads leaves none.
        self._answered = [task for task in self._answered if not task.done()]
        still = []
        for number, future in self._waiting:
            if number > covers:
                still.append((number, future))
                continue
            asker = self._askers.pop(future, None)
            if not future.done():
                future.set_result(result)
                if asker is not None:
                    self._answered.append(asker)
        self._waiting = still
        return result

    def abandon(self, reason: str) -> None:
        """Fail every request no run under way covers: the daemon is stopping.

        The requests the run under way covers get its result when it ends.
        """
        still = []
        for number, future in self._waiting:
            if self._running is not None and number <= self._running:
                still.append((number, future))
                continue
            self._askers.pop(future, None)
            if not future.done():
                future.set_exception(ReloadAbandoned(reason))
                # Retrieved here so a waiter that already left never warns.
                future.exception()
        self._waiting = still

    def take_answered(self) -> list[asyncio.Task[Any]]:
        """The tasks a finished run answered since the last call, still to write their answer."""
        answered, self._answered = self._answered, []
        return [task for task in answered if not task.done()]
