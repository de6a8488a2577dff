"""The lifecycle state machine, event by event."""

from __future__ import annotations

import signal

import pytest

from aiodaemon._state import Action, Event, Lifecycle, State, event_for_signal


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
    assert machine.handle(Event.TERMINATE) is Action.NOTHING


def test_main_returning_during_shutdown_is_not_a_second_signal() -> None:
    """A programmatic shutdown request while stopping changes nothing."""
    machine = running()
    assert machine.handle(Event.SHUTDOWN) is Action.BEGIN_SHUTDOWN
    assert machine.handle(Event.SHUTDOWN) is Action.NOTHING
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
    assert machine.handle(Event.RELOADED) is Action.NOTHING
    assert state(machine) is State.RUNNING


def test_hup_during_startup_reloads_once_after_ready() -> None:
    """A HUP before the daemon is running is kept for one reload right after ready."""
    machine = Lifecycle()
    assert machine.handle(Event.RELOAD) is Action.QUEUE_RELOAD
    assert machine.handle(Event.RELOAD) is Action.QUEUE_RELOAD
    assert machine.handle(Event.STARTED) is Action.BEGIN_RUNNING_THEN_RELOAD
    assert state(machine) is State.RELOADING


def test_hup_during_shutdown_is_ignored() -> None:
    """Reload requests while stopping are dropped, and a queued one is forgotten."""
    machine = running()
    machine.handle(Event.RELOAD)
    machine.handle(Event.RELOAD)
    assert machine.handle(Event.TERMINATE) is Action.BEGIN_SHUTDOWN
    assert machine.handle(Event.RELOAD) is Action.NOTHING
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
