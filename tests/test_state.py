"""The lifecycle state machine, event by event, and its table."""

from __future__ import annotations

import signal

import pytest

from aiodaemon._run._state import (
    TRANSITIONS,
    Action,
    Event,
    InvalidTransition,
    Lifecycle,
    State,
    event_for_signal,
)


def state(machine: Lifecycle) -> State:
    """The machine's state, read afresh (so type checkers do not narrow it)."""
    return machine.state


def running() -> Lifecycle:
    machine = Lifecycle()
    assert machine.handle(Event.STARTED) is Action.BEGIN_RUNNING
    return machine


def test_signals_map_to_events() -> None:
    """TERM/INT terminate, HUP reloads, USR1 reopens logs; others are not ours."""
    assert event_for_signal(signal.SIGTERM) is Event.TERMINATE
    assert event_for_signal(signal.SIGINT) is Event.TERMINATE
    assert event_for_signal(signal.SIGHUP) is Event.RELOAD
    assert event_for_signal(signal.SIGUSR1) is Event.REOPEN_LOGS
    with pytest.raises(KeyError):
        event_for_signal(signal.SIGUSR2)


def test_start_then_terminate_then_force() -> None:
    """A first TERM begins shutdown, a second one while stopping forces the exit."""
    machine = running()
    assert state(machine) is State.RUNNING
    assert machine.handle(Event.TERMINATE) is Action.BEGIN_SHUTDOWN
    assert state(machine) is State.STOPPING
    assert machine.handle(Event.TERMINATE) is Action.FORCE_EXIT
    assert machine.handle(Event.STOPPED) is Action.NOTHING
    assert state(machine) is State.STOPPED
    assert machine.handle(Event.TERMINATE) is Action.FORCE_EXIT


def test_first_signal_joins_a_shutdown_begun_otherwise() -> None:
    """After main returned (or a stop request), the first TERM joins; only a second forces."""
    for end in (None, Event.STOPPED):
        machine = running()
        assert machine.handle(Event.SHUTDOWN) is Action.BEGIN_SHUTDOWN
        if end is not None:
            machine.handle(end)
        assert machine.handle(Event.TERMINATE) is Action.JOIN_SHUTDOWN
        assert machine.handle(Event.TERMINATE) is Action.FORCE_EXIT


def test_main_returning_during_shutdown_is_not_a_second_signal() -> None:
    """A programmatic shutdown request while stopping changes nothing."""
    machine = running()
    assert machine.handle(Event.SHUTDOWN) is Action.BEGIN_SHUTDOWN
    assert machine.handle(Event.SHUTDOWN) is Action.NOTHING
    assert state(machine) is State.STOPPING


def test_failed_startup_begins_shutdown() -> None:
    """A failing startup hook begins the shutdown (whose hooks then run)."""
    machine = Lifecycle()
    assert machine.handle(Event.STARTUP_FAILED) is Action.BEGIN_SHUTDOWN
    assert state(machine) is State.STOPPING


def test_startup_ending_after_a_stop_changes_nothing() -> None:
    """Startup hooks finishing (or failing) after a stop request start no main."""
    for ending in (Event.STARTED, Event.STARTUP_FAILED):
        machine = Lifecycle()
        assert machine.handle(Event.TERMINATE) is Action.BEGIN_SHUTDOWN
        assert machine.handle(ending) is Action.NOTHING
        assert state(machine) is State.STOPPING


def test_reloads_coalesce_into_one_more() -> None:
    """Any number of HUPs during a reload produce exactly one more reload."""
    machine = running()
    assert machine.handle(Event.RELOAD) is Action.BEGIN_RELOAD
    assert state(machine) is State.RELOADING
    for _ in range(20):
        assert machine.handle(Event.RELOAD) is Action.QUEUE_RELOAD
    assert machine.handle(Event.RELOADED) is Action.BEGIN_RELOAD
    assert state(machine) is State.RELOADING
    assert machine.handle(Event.RELOADED) is Action.END_RELOAD
    assert state(machine) is State.RUNNING


def test_hup_during_startup_reloads_once_after_ready() -> None:
    """A HUP before the daemon is running is kept for one reload right after ready."""
    machine = Lifecycle()
    assert machine.handle(Event.RELOAD) is Action.QUEUE_RELOAD
    assert machine.handle(Event.RELOAD) is Action.QUEUE_RELOAD
    assert machine.handle(Event.STARTED) is Action.BEGIN_RUNNING_THEN_RELOAD
    assert state(machine) is State.RELOADING


def test_hup_during_shutdown_is_refused() -> None:
    """Reload requests while stopping are refused, and a queued one is forgotten."""
    machine = running()
    machine.handle(Event.RELOAD)
    machine.handle(Event.RELOAD)
    assert machine.handle(Event.TERMINATE) is Action.BEGIN_SHUTDOWN
    assert machine.reload_pending is False
    assert machine.handle(Event.RELOAD) is Action.REFUSE_RELOAD
    assert machine.handle(Event.RELOADED) is Action.NOTHING
    assert state(machine) is State.STOPPING


def test_reopen_logs_in_every_state_but_stopped() -> None:
    """USR1 reopens logs while the daemon lives, and is moot once stopped."""
    machine = Lifecycle()
    assert machine.handle(Event.REOPEN_LOGS) is Action.REOPEN_LOGS
    machine.handle(Event.STARTED)
    assert machine.handle(Event.REOPEN_LOGS) is Action.REOPEN_LOGS
    machine.handle(Event.TERMINATE)
    assert machine.handle(Event.REOPEN_LOGS) is Action.REOPEN_LOGS
    machine.handle(Event.STOPPED)
    assert machine.handle(Event.REOPEN_LOGS) is Action.NOTHING


@pytest.mark.parametrize(
    ("at", "event"),
    [
        (State.STARTING, Event.RELOADED),
        (State.STARTING, Event.STOPPED),
        (State.RUNNING, Event.STARTED),
        (State.RUNNING, Event.RELOADED),
        (State.RUNNING, Event.STOPPED),
        (State.RELOADING, Event.STARTUP_FAILED),
        (State.STOPPED, Event.STARTED),
        (State.STOPPED, Event.STOPPED),
    ],
)
def test_an_event_that_makes_no_sense_raises(at: State, event: Event) -> None:
    """A pair missing from the table raises instead of silently doing nothing."""
    machine = Lifecycle()
    machine.state = at
    with pytest.raises(InvalidTransition, match=f"{event.name} in state {at.name}"):
        machine.handle(event)
    assert state(machine) is at


def test_every_state_answers_every_signal() -> None:
    """Signals can arrive at any time: every state has a row for each signal's event."""
    for at in State:
        for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1):
            assert (at, event_for_signal(signum)) in TRANSITIONS
