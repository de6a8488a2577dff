"""The lifecycle state machine: the only place that decides what an event means.

Pure and synchronous, in the spirit of h11's ``_state.py``: every transition is
one row of ``TRANSITIONS``, ``{(state, event): (next state, action)}``.
The runtime feeds every event through ``Lifecycle.handle`` and carries
out the action that comes back; a pair missing from the table is a bug and
raises ``InvalidTransition`` instead of silently doing nothing.

Two rules live beside the table. Reload requests that arrive while a reload
runs (or before the daemon runs) are remembered as a single pending reload,
which begins as soon as the daemon is RUNNING again, so bursts coalesce. And
stop signals are counted, not shutdowns: once stopping, the first SIGTERM or
SIGINT the daemon receives joins the shutdown (one begun by ``main``
returning, ``ctx.request_shutdown()``, ``aiodaemon stop`` or an upgrade's
hand-over must not be cut short by, say, systemd signalling the unit's whole
control group), and only a second stop signal forces the exit.
"""

from __future__ import annotations

import enum
import signal

__all__ = [
    "HANDLED_SIGNALS",
    "TRANSITIONS",
    "Action",
    "Event",
    "InvalidTransition",
    "Lifecycle",
    "State",
    "event_for_signal",
]


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
    STARTUP_FAILED = "startup-failed"  # a startup hook (or lifespan setup) raised
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
    #: a reload is running (or cannot yet): one more after it; the log files reopen now.
    QUEUE_RELOAD = "queue-reload"
    END_RELOAD = "end-reload"  # a reload finished and none is pending
    #: stopping: the request is answered, no hook runs; the log files reopen.
    REFUSE_RELOAD = "refuse-reload"
    BEGIN_SHUTDOWN = "begin-shutdown"
    #: the first stop signal while stopping (the shutdown was begun otherwise).
    JOIN_SHUTDOWN = "join-shutdown"
    FORCE_EXIT = "force-exit"  # a second stop signal while stopping
    REOPEN_LOGS = "reopen-logs"


class InvalidTransition(RuntimeError):
    """An event that makes no sense in the current state: a bug in the runtime."""


S, E, A = State, Event, Action

#: Every legal ``(state, event)`` pair and what it leads to.
TRANSITIONS: dict[tuple[State, Event], tuple[State, Action]] = {
    (S.STARTING, E.STARTED): (S.RUNNING, A.BEGIN_RUNNING),
    (S.STARTING, E.STARTUP_FAILED): (S.STOPPING, A.BEGIN_SHUTDOWN),
    (S.STARTING, E.TERMINATE): (S.STOPPING, A.BEGIN_SHUTDOWN),
    (S.STARTING, E.SHUTDOWN): (S.STOPPING, A.BEGIN_SHUTDOWN),
    (S.STARTING, E.RELOAD): (S.STARTING, A.QUEUE_RELOAD),
    (S.STARTING, E.REOPEN_LOGS): (S.STARTING, A.REOPEN_LOGS),
    (S.RUNNING, E.TERMINATE): (S.STOPPING, A.BEGIN_SHUTDOWN),
    (S.RUNNING, E.SHUTDOWN): (S.STOPPING, A.BEGIN_SHUTDOWN),
    (S.RUNNING, E.RELOAD): (S.RELOADING, A.BEGIN_RELOAD),
    (S.RUNNING, E.REOPEN_LOGS): (S.RUNNING, A.REOPEN_LOGS),
    (S.RELOADING, E.TERMINATE): (S.STOPPING, A.BEGIN_SHUTDOWN),
    (S.RELOADING, E.SHUTDOWN): (S.STOPPING, A.BEGIN_SHUTDOWN),
    (S.RELOADING, E.RELOAD): (S.RELOADING, A.QUEUE_RELOAD),
    (S.RELOADING, E.RELOADED): (S.RUNNING, A.END_RELOAD),
    (S.RELOADING, E.REOPEN_LOGS): (S.RELOADING, A.REOPEN_LOGS),
    # Startup ending (either way) after a stop request: the stop wins.
    (S.STOPPING, E.STARTED): (S.STOPPING, A.NOTHING),
    (S.STOPPING, E.STARTUP_FAILED): (S.STOPPING, A.NOTHING),
    # Joins, if it is the first stop signal; forces the exit otherwise (see Lifecycle).
    (S.STOPPING, E.TERMINATE): (S.STOPPING, A.JOIN_SHUTDOWN),
    (S.STOPPING, E.SHUTDOWN): (S.STOPPING, A.NOTHING),
    (S.STOPPING, E.RELOAD): (S.STOPPING, A.REFUSE_RELOAD),
    # A reload that was running when the stop came may still finish.
    (S.STOPPING, E.RELOADED): (S.STOPPING, A.NOTHING),
    (S.STOPPING, E.REOPEN_LOGS): (S.STOPPING, A.REOPEN_LOGS),
    (S.STOPPING, E.STOPPED): (S.STOPPED, A.NOTHING),
    # Once stopped the loop is closing: late requests are moot, but the final
    # log drain may still be cut short by a second stop signal.
    (S.STOPPED, E.TERMINATE): (S.STOPPED, A.JOIN_SHUTDOWN),
    (S.STOPPED, E.SHUTDOWN): (S.STOPPED, A.NOTHING),
    (S.STOPPED, E.RELOAD): (S.STOPPED, A.REFUSE_RELOAD),
    (S.STOPPED, E.RELOADED): (S.STOPPED, A.NOTHING),
    (S.STOPPED, E.REOPEN_LOGS): (S.STOPPED, A.NOTHING),
}
del S, E, A

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
    """The daemon's state, its one pending-reload flag and its count of stop signals."""

    def __init__(self) -> None:
        self.state = State.STARTING
        #: a reload was requested that no running reload covers yet.
        self.reload_pending = False
        #: SIGTERMs and SIGINTs received: the second one while stopping forces the exit.
        self.stop_signals = 0

    def handle(self, event: Event) -> Action:
        """Apply ``event`` and return the action the runtime must take.

        Raises:
            InvalidTransition: ``event`` makes no sense in the current state.
        """
        try:
            self.state, action = TRANSITIONS[self.state, event]
        except KeyError:
            raise InvalidTransition(f"{event.name} in state {self.state.name}") from None
        if event is Event.TERMINATE:
            self.stop_signals += 1
            if action is Action.JOIN_SHUTDOWN and self.stop_signals > 1:
                return Action.FORCE_EXIT
        if action is Action.QUEUE_RELOAD:
            self.reload_pending = True
        elif action is Action.BEGIN_SHUTDOWN:
            self.reload_pending = False
        elif self.reload_pending and action in (Action.BEGIN_RUNNING, Action.END_RELOAD):
            # Whatever arrived during a reload (or before the first one could
            # run) needs exactly one more reload after it, never one each.
            self.reload_pending = False
            self.state = State.RELOADING
            if action is Action.BEGIN_RUNNING:
                return Action.BEGIN_RUNNING_THEN_RELOAD
            return Action.BEGIN_RELOAD
        return action
