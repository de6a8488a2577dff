"""``restart``: the sockets the running daemon serves, which its successor would not.

``restart`` starts the new daemon with the options given, not the old one's:
``restart app:main --pidfile P`` of a daemon started with ``--listen`` would
stop a serving daemon and start one that binds nothing (and whose ``main``
fails on the socket it expects). Nor can it get back sockets the service
manager passed (socket activation). One ``status`` question to the running
daemon's control socket tells both, before anything is stopped; a daemon
without a control socket tells nothing, and is restarted as before.
"""

from __future__ import annotations

import os
import shlex

from .._prefork._config import HEALTH_SOCKET
from .._prefork._control_protocol import VERSION
from .._prefork._procfs import suspension
from .._prefork._resume import continue_stopped
from ._control_client import ControlError
from ._control_trust import ask_holder

TYPE_CHECKING = False  # not typing's: see aiodaemon/__init__.py
if TYPE_CHECKING:
    from collections.abc import Collection
    from typing import Any

__all__ = ["served_addresses", "why_not_restarted"]


#: Longest wait for the daemon's answer; it answers at once unless its loop is stuck.
_ANSWER_TIMEOUT = 5.0


def why_not_restarted(
    control: str,
    pidfile: str,
    pid: int,
    new_sockets: Collection[str],
    timeout: float | None,
    served: list[dict[str, str]] | None = None,
) -> str | None:
    """Why the daemon ``pid`` holding ``pidfile`` must not be stopped by a restart; None if it may.

    A daemon suspended with SIGSTOP is continued first, as ``stop`` continues
    it before its stop request: it answers then, at once, and is stopped next.

    Args:
        control: its control socket.
        pidfile: its pidfile (to ask its new holder after an upgrade's hand-over).
        pid: the pidfile's holder, verified.
        new_sockets: the names of the sockets (``listen=`` and ``health``) the
            new daemon would serve.
        timeout: the restart's ``--timeout`` (None: not given), which bounds the wait.
        served: given the addresses the daemon says it serves (name -> address),
            once it answered.
    """
    continued = _continue_suspended(pid)
    if continued is None:
        return None  # frozen: it cannot answer; the stop that follows says what it is
    request = {"v": VERSION, "cmd": "status"}
    within = _ANSWER_TIMEOUT if timeout is None else min(_ANSWER_TIMEOUT, timeout)
    try:
        answer, pid = ask_holder(control, request, holder=pid, timeout=within, follow=pidfile)
    except ControlError:
        return None  # the stop that follows says what is wrong with the daemon
    if served is not None:
        served.append(served_addresses(answer))
    why = _why_not(answer, pid, new_sockets)
    if why is not None and continued:
        why += f" (pid {pid} was suspended (SIGSTOP), and was continued to be asked)"
    return why


def _continue_suspended(pid: int) -> bool | None:
    """SIGCONT ``pid`` when it is stopped by a signal: whether it was; None when frozen."""
    held = suspension(pid)
    if held is None:
        return False
    if held.frozen:
        return None
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return False  # gone meanwhile: the stop says so
    try:
        continue_stopped(pid, pidfd)
    finally:
        os.close(pidfd)
    return True


def served_addresses(answer: dict[str, Any]) -> dict[str, str]:
    """The addresses a status ``answer`` says the daemon serves, by name."""
    sockets = answer.get("sockets")
    if not isinstance(sockets, dict):
        return {}
    return {name: address for name, address in sockets.items() if isinstance(address, str)}


def _why_not(answer: dict[str, Any], pid: int, new_sockets: Collection[str]) -> str | None:
    """Why not, from the daemon's status ``answer``; None if the restart may go on."""
    if answer.get("socket_activated") is True:
        return (
            f"not restarted: pid {pid} serves sockets passed by the service manager"
            " (socket activation), which a restart cannot get back; use 'systemctl restart"
            " UNIT', or 'aiodaemon upgrade' to replace it on the same sockets"
        )
    dropped = _dropped(answer, new_sockets)
    if not dropped:
        return None
    flags = " ".join(dropped)
    them = "them" if len(dropped) > 1 else "it"
    return (
        f"not restarted: pid {pid} serves {flags}, which the new daemon would not"
        f" (restart starts it with the options given, not the running daemon's);"
        f" add {flags} to keep {them}, or stop, then start, to drop {them} on purpose"
    )


def _dropped(answer: dict[str, Any], new_sockets: Collection[str]) -> list[str]:
    """The running daemon's sockets missing from ``new_sockets``, as the flags that keep them."""
    # An answer that does not tell ({}): the restart goes on as before.
    sockets = served_addresses(answer)
    # A daemon before 0.2 does not say whether "health" is its health endpoint
    # (or a listen= socket of that name, which --health would not serve): it
    # almost always is.
    health = answer.get("health_endpoint", True) is not False
    flags = []
    for name, address in sockets.items():
        if name in new_sockets:
            continue
        if name == HEALTH_SOCKET and health:
            flags.append(f"--health {shlex.quote(address)}")
        else:
            flags.append(f"--listen {shlex.quote(f'{name}={address}')}")
    return flags
