"""The program's child processes at the daemon's end: bounded by the budget, never left behind.

The interpreter's exit waits for some of the program's children for as long as
they run: multiprocessing's exit function joins every child that is not
daemonic, and a process pool's manager thread, which the exit joins, waits for
the calls still running in its workers. Forked from the daemon, they hold its
``listen=`` sockets: cut short by the exit's backstop (``os._exit``), they ran
on for ever re-parented to init, keeping the port bound (the next start failed
with "Address already in use"), and the log, closed by then, named none of them.

So, before the ``exit`` record, :func:`wait_children` gives them what is left
of the budget, then logs what it kills, by name and pid, and the ``exit``
record has the status the process leaves with. A forced exit kills every
child the usual exit would have waited for or ended
(:func:`kill_children_at_forced_exit`). Each is signalled only once checked
to be the daemon's own (:mod:`._own_children`): the records name children
reaped by others, whose pids may be another user's processes by then.
"""

from __future__ import annotations

import contextlib
import reprlib
import sys
import time
from collections.abc import Callable
from typing import Any

import structlog

from ..exceptions import ExitCode
from ._own_children import claim_own, kill_own, own_pids

__all__ = [
    "kill_children_at_forced_exit",
    "leftover_children",
    "manager_servers",
    "pool_workers",
    "wait_children",
]

_log = structlog.get_logger("aiodaemon")

#: Seconds between two looks at the children while they are waited for.
_POLL = 0.02


def wait_children(
    deadline: float, timeout: float, release_claims: Callable[[], None]
) -> str | None:
    """Give the children the interpreter's exit would wait for what is left of the budget.

    Those are the program's multiprocessing children that are not daemonic
    (the daemonic ones, multiprocessing's exit terminates) and the calls still
    running in its process pools (an idle pool ends with the exit, at once).
    What still runs at the budget's end is logged and killed with SIGKILL.

    Args:
        deadline: the ``time.monotonic()`` end of the budget.
        timeout: the budget (``shutdown_timeout``), as the messages name it.
        release_claims: releases what the daemon claimed, before the wait
            (only if there is one).

    Returns:
        The forced exit's reason if something was killed, else None.
    """
    children, calls = _joined_children(), _busy_calls()
    if not children and not calls:
        return None
    # Only the program's children keep the process now: the pidfile and the
    # listeners go at once, as for its threads (see wait_program_threads).
    release_claims()
    while time.monotonic() < deadline:
        children = [c for c in children if _alive(c)]
        calls = [item for item in calls if not item[1].future.done()]
        if not children and not calls:
            return None
        time.sleep(min(_POLL, max(0.0, deadline - time.monotonic())))
    children = [c for c in children if _alive(c)]
    calls = [item for item in calls if not item[1].future.done()]
    if not children and not calls:
        return None
    killed: list[str] = []
    for _, item in calls:
        name = _call_name(item.fn)
        _log.error("process pool call killed at exit", call=name, args=reprlib.repr(item.args))
    candidates = {
        **{pid: proc for manager, _ in calls for pid, proc in _processes(manager)},
        **{c.pid: c for c in children if isinstance(c.pid, int)},
    }
    # Only what is still ours: a child that ended meanwhile may have been
    # reaped (by the forkserver, by its pool's manager thread) and its pid
    # given to another process.
    owned = claim_own(candidates)
    for child in owned:
        name = str(getattr(candidates[child.pid], "name", "?"))
        _log.error("child process killed at exit", process=name, child_pid=child.pid)
        killed.append(f"{name} (pid {child.pid})")
    kill_own(owned)
    parts = [f"shutdown took longer than {timeout}s"]
    if calls:
        # Each once: a pool fed one function a thousand times is one name.
        names = ", ".join(dict.fromkeys(_call_name(item.fn) for _, item in calls))
        parts.append(f"process pool calls still running: {names}")
    if killed:
        parts.append("child processes killed: " + ", ".join(killed))
    reason = "; ".join(parts)
    _log.critical("forced exit", reason=reason, status=ExitCode.SHUTDOWN_TIMEOUT)
    return reason


def _joined_children() -> list[Any]:
    """The multiprocessing children multiprocessing's exit function would join, not end.

    Not daemonic, not a pool's worker (its pool's calls say whether it is
    waited for), not a manager's server (the manager's finalizer, run first by
    the same exit function, shuts it down).
    """
    others = {*pool_workers(), *manager_servers()}
    return [c for c in _mp_children() if not c.daemon and c.pid not in others and _alive(c)]


def _busy_calls() -> list[tuple[Any, Any]]:
    """The calls not yet done in the program's process pools, each with its pool's manager."""
    calls = []
    for manager in _pool_managers():
        with contextlib.suppress(Exception):
            for item in list(manager.pending_work_items.values()):
                if not item.future.done():
                    calls.append((manager, item))
    return calls


def _alive(child: Any) -> bool:
    with contextlib.suppress(Exception):
        return bool(child.is_alive())
    return False


def _call_name(fn: object) -> str:
    module = getattr(fn, "__module__", None)
    name = getattr(fn, "__qualname__", None) or repr(fn)
    return f"{module}.{name}" if module else str(name)


def leftover_children() -> list[tuple[str, int]]:
    """Name and pid of each child a forced exit kills (see :func:`kill_children_at_forced_exit`)."""
    named = {child.pid: str(getattr(child, "name", "?")) for child in _unreaped_mp_children()}
    for pid in [*pool_workers(), *manager_servers()]:
        named.setdefault(pid, "?")
    return [(named[pid], pid) for pid in sorted(own_pids(named))]


def mp_children() -> list[int]:
    """The pids of the program's multiprocessing children not yet reaped, daemonic or not.

    Not known to be reaped; but that is no proof that the pid is still the
    child's (a forkserver child is reaped by the forkserver): signal them only
    through claim_own.
    """
    return [child.pid for child in _unreaped_mp_children()]


def _unreaped_mp_children() -> list[Any]:
    """The program's multiprocessing children multiprocessing has not seen end, with a pid."""
    children = []
    for child in _mp_children():
        with contextlib.suppress(Exception):
            if child.pid is not None and _unreaped(child):
                children.append(child)
    return children


def _unreaped(process: Any) -> bool:
    """Whether multiprocessing has not seen ``process`` end (no system call: its record only)."""
    return getattr(getattr(process, "_popen", None), "returncode", None) is None


def _mp_children() -> list[Any]:
    module = sys.modules.get("multiprocessing.process")
    return list(getattr(module, "_children", ()))


def kill_children_at_forced_exit() -> None:
    """A forced exit: kill the program's children the usual exit waited for or ended.

    Runs inside a signal handler. multiprocessing's exit function terminates
    its daemonic children and joins the others, and the interpreter's exit
    ends the process pools' workers; ``os._exit`` does neither; nor does it
    shut down the server process of a ``multiprocessing.Manager()``, as the
    manager's finalizer would. Left, they ran on for ever, keeping the
    ``listen=`` sockets they inherited by fork: the next start failed with
    "Address already in use".
    """
    kill_own(claim_own([*mp_children(), *pool_workers(), *manager_servers()]))


def manager_servers() -> list[int]:
    """The pids of the server processes of multiprocessing managers not yet shut down.

    Each manager registers a finalizer (``_finalize_manager``, its server
    process the first argument) that multiprocessing's exit function runs.
    """
    registry = getattr(sys.modules.get("multiprocessing.util"), "_finalizer_registry", None)
    pids: list[int] = []
    for finalizer in list(registry.values()) if registry is not None else []:
        with contextlib.suppress(Exception):
            callback = getattr(finalizer, "_callback", None)
            if getattr(callback, "__name__", None) == "_finalize_manager":
                pid = finalizer._args[0].pid
                if isinstance(pid, int) and finalizer._args[0].exitcode is None:
                    pids.append(pid)
    return pids


def _pool_managers() -> list[Any]:
    """The manager threads of the program's ``concurrent.futures`` process pools."""
    registry = getattr(sys.modules.get("concurrent.futures.process"), "_threads_wakeups", None)
    return list(registry.keys()) if registry is not None else []


def _processes(manager: Any) -> list[tuple[int, Any]]:
    """A pool's workers its manager thread has not reaped (a broken pool keeps the reaped ones)."""
    with contextlib.suppress(Exception):
        return [
            (pid, p)
            for pid, p in list(manager.processes.items())
            if isinstance(pid, int) and _unreaped(p)
        ]
    return []


def pool_workers() -> list[int]:
    """The pids of the unreaped worker processes of ``concurrent.futures`` process pools."""
    return [pid for manager in _pool_managers() for pid, _ in _processes(manager)]
