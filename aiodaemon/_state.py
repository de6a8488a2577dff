"""The lifecycle state machine: the only place that decides what an event means.

Pure and synchronous, in the spirit of h11's ``_state.py``: the runtime feeds
events in and carries out the action that comes back, so every transition can
be read (and tested) here without a process or a loop.
"""

from __future__ import annotations

import enum
import signal

__all__ = ["Action", "Event", "Lifecycle", "State", "event_for_signal"]


class State(enum.Enum):
    """Where the daemon is in its life."""

    STARTING = "starting"
    RUNNING = "running"
    RELOADING = "reloading"
    STOPPING = "stopping"
    STOPPED = "stopped"


class Event(enum.Enum):
    """Something that happened to the daemon."""

    STARTED = "started"  # every startup hook returned
    TERMINATE = "terminate"  # SIGTERM or SIGINT: a second one while stopping forces the exit
    SHUTDOWN = "shutdown"  # main returned or ctx.request_shutdown(): repeating it changes nothing
    RELOAD = "reload"  # SIGHUP or ctx.request_reload()
    RELOADED = "reloaded"  # the reload hooks finished, successfully or not
    REOPEN_LOGS = "reopen-logs"  # SIGUSR1
    STOPPED = "stopped"  # the shutdown sequence finished


class Action(enum.Enum):
    """What the runtime must do in answer to an event."""

    NOTHING = "nothing"
    BEGIN_RUNNING = "begin-running"
    #: a reload was requested during startup: report ready, then reload once.
    BEGIN_RUNNING_THEN_RELOAD = "begin-running-then-reload"
    BEGIN_RELOAD = "begin-reload"
    QUEUE_RELOAD = "queue-reload"  # a reload is running: coalesce into one more
    BEGIN_SHUTDOWN = "begin-shutdown"
    FORCE_EXIT = "force-exit"  # a second shutdown request while stopping
    REOPEN_LOGS = "reopen-logs"


_SIGNAL_EVENTS = {
    signal.SIGTERM: Event.TERMINATE,
    signal.SIGINT: Event.TERMINATE,
    signal.SIGHUP: Event.RELOAD,
    signal.SIGUSR1: Event.REOPEN_LOGS,
}

#: The signals the runtime hands to the state machine.
HANDLED_SIGNALS = tuple(_SIGNAL_EVENTS)


def event_for_signal(signum: int) -> Event:
    """The event a signal stands for.

    Raises:
        KeyError: the signal is not one the daemon handles.
    """
    return _SIGNAL_EVENTS[signal.Signals(signum)]


class Lifecycle:
    """The daemon's state and its one pending-reload flag."""

    def __init__(self) -> None:
        self.state = State.STARTING
        self.reload_pending = False

    def handle(self, event: Event) -> Action:
        """Apply ``event`` and return the action the runtime must take."""
        state = self.state
        if event is Event.REOPEN_LOGS:
            return Action.NOTHING if state is State.STOPPED else Action.REOPEN_LOGS
        if event in (Event.TERMINATE, Event.SHUTDOWN):
            if state in (State.STOPPING, State.STOPPED):
                forced = event is Event.TERMINATE and state is State.STOPPING
                return Action.FORCE_EXIT if forced else Action.NOTHING
            self.state = State.STOPPING
            self.reload_pending = False
            return Action.BEGIN_SHUTDOWN
        if event is Event.STOPPED:
            self.state = State.STOPPED
            return Action.NOTHING
        if event is Event.STARTED:
            if state is not State.STARTING:
                return Action.NOTHING
            self.state = State.RUNNING
            if self._maybe_reload(Action.NOTHING) is Action.BEGIN_RELOAD:
                return Action.BEGIN_RUNNING_THEN_RELOAD
            return Action.BEGIN_RUNNING
        if event is Event.RELOAD:
            if state is State.RUNNING:
                self.state = State.RELOADING
                return Action.BEGIN_RELOAD
            if state in (State.STARTING, State.RELOADING):
                # Whatever arrives during a reload (or before the first one can
                # run) needs exactly one more reload after it, never one each.
                self.reload_pending = True
                return Action.QUEUE_RELOAD
            return Action.NOTHING
        if event is Event.RELOADED:
            if state is not State.RELOADING:
                return Action.NOTHING
            self.state = State.RUNNING
            return self._maybe_reload(Action.NOTHING)
        raise AssertionError(f"unhandled event {event}")  # pragma: no cover

    def _maybe_reload(self, otherwise: Action) -> Action:
        if self.reload_pending:
            self.reload_pending = False
            self.state = State.RELOADING
            return Action.BEGIN_RELOAD
        return otherwise
