"""``run``, ``start`` and ``restart``: launch the program TARGET names, unless it already runs.

``run`` keeps it in the foreground; ``start`` detaches it and prints its pid
once it is ready; ``restart`` stops the daemon holding ``--pidfile`` first (as
``stop`` does). A live daemon holding the pidfile is "already running": exit 0
for ``start`` (LSB), 3 for ``run``. Only these commands load the daemon's side
(:mod:`aiodaemon._launch`, asyncio), and only when they launch.
"""

from __future__ import annotations

import argparse
import os
import sys

from .._prefork._messages import write_line
from .._prefork._pidfile_status import PidfileStatus, read_pidfile
from ..exceptions import AlreadyRunningError, ConfigError, DaemonError, ExitCode, StartupError
from ._args import UsageError, control_path, owner
from ._flags import daemon_options, flag_message, in_flags, keywords_as_flags
from ._parser import PROG, error

TYPE_CHECKING = False  # not typing's: see aiodaemon/__init__.py
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from .._daemon import Daemon
    from .._prefork._addresses import ListenAddress
    from .._prefork._config import Options
    from .._run._hooks import HookFunction
    from ._start_after_start import StartWait

__all__ = ["daemon_command"]

#: Launches tried in all when each loses the race for the pidfile to a holder
#: the check then does not see (found only by its lock): past them, it is said.
_LOST_RACES = 5


class _Running(Exception):
    """The daemon holding --pidfile runs, which was said: exit with ``code``."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class _Refused(Exception):
    """The start was refused before anything was acquired, which was said: exit with ``code``."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def daemon_command(args: argparse.Namespace) -> int:
    """Run ``args.command`` (run, start or restart) and return its exit status."""
    if args.syslog is not None:
        # Only the parsed command line knows which word is TARGET (`run shop` is
        # shop:main); a daemon with syslog loads this module anyway.
        from .._prefork._syslogsink import name_after_target

        name_after_target(args.target)
    try:
        return _COMMANDS[args.command](args)
    except (_Running, _Refused) as exc:
        return exc.code


def _load_target(spec: str) -> tuple[Daemon, HookFunction]:
    from ._importer import TargetError, load_target

    try:
        daemon, program = load_target(spec)
    except TargetError as exc:
        raise UsageError(str(exc)) from None
    from .._daemon import stray_hooks_warning

    stray = stray_hooks_warning(daemon, sys.modules.get(spec.partition(":")[0]))
    if stray is not None:
        error(f"{PROG}: {stray}")
    return daemon, program


def _cmd_run(args: argparse.Namespace) -> int:
    from .._launch import launch

    options = _daemon_options(args, detach=False)
    daemon, program = _load_target(args.target)
    # As `start` does: another user's daemon makes the pidfile unopenable for
    # us ("Permission denied"), when "already running" is the answer.
    return _launch_unless_running(
        args,
        options,
        lambda: launch(daemon.hooks, program, options, explain=in_flags, raise_lost_race=True),
        running=ExitCode.ALREADY_RUNNING,
    )


def _cmd_start(args: argparse.Namespace) -> int:
    options = _daemon_options(args, detach=True)
    daemon, program = _load_target(args.target)
    return _start(daemon, program, options, args)


def _cmd_restart(args: argparse.Namespace) -> int:
    if args.pidfile is None:
        raise UsageError("--pidfile is required: it tells which daemon to stop")
    options = _daemon_options(args, detach=True)
    daemon, program = _load_target(args.target)
    if _is_successor():
        # Started again by an upgrade of a daemon that `restart` launched: the
        # daemon to stop is the one handing over to us.
        return _start(daemon, program, options, args)
    from .._prefork._config import parse_options

    # Once, for the three looks before the stop (the start validates again).
    parsed = parse_options(options)
    _keep_what_cannot_be_replaced(args, parsed)
    served = _keep_served_sockets(args, parsed)
    _keep_for_unbindable(parsed, served)
    from ._stop import stop

    control = None if args.no_control else control_path(args, args.pidfile)
    code = stop(args.pidfile, args.timeout, control, owner=owner(args))
    if code != 0:
        return code
    return _start(daemon, program, options, args)


def _keep_what_cannot_be_replaced(args: argparse.Namespace, parsed: Options) -> None:
    """Leave a running daemon alone when its successor could not have what it has.

    Not root, a restart of a daemon root started would stop it and then fail
    to bind its port below 1024 (see :mod:`._restart_ports`), or start it
    without its control socket: one root bound in a directory only root may
    write (``/run``), which the daemon, dropped to this account, could not
    remove at its exit, nor could the new daemon replace.

    Raises:
        _Running: such a daemon runs, which was said: exit 4 (LSB's
            "insufficient privilege"), nothing stopped.
    """
    if os.geteuid() == 0:
        return
    from .._prefork._config import HEALTH_SOCKET
    from ._restart_ports import unbindable_port

    found = unbindable_port(_bound_by(parsed))
    why: str | None
    if found is not None:
        name, address = found
        # "health" is refused as a listen= name beside --health only.
        health = name == HEALTH_SOCKET and parsed.health is not None
        flag = "--health" if health else f"--listen {name}"
        why = (
            f"{flag}: port {address.port} is privileged"
            " (only root or CAP_NET_BIND_SERVICE may bind it)"
        )
    else:
        why = _unreplaceable_control(parsed.control)
    held = None if why is None else _running_holder(args)
    if why is None or held is None:
        return  # with nothing running, the start says why it cannot bind
    import signal

    from .._prefork._procfs import signal_ends
    from ._control import ControlCode

    pid = read_pidfile(args.pidfile).running_pid
    if pid is not None and signal_ends(pid, signal.SIGUSR2):
        # Its upgrade would be refused, saying to restart: never send the user in a circle.
        instead = "it predates upgrades (aiodaemon 0.1.0): only root can restart it"
    else:
        instead = "'aiodaemon upgrade' replaces the daemon and keeps its sockets"
    error(f"{PROG}: {held}; not restarted: {why}; {instead}")
    raise _Running(ControlCode.NO_PERMISSION)


def _keep_served_sockets(args: argparse.Namespace, parsed: Options) -> list[str] | None:
    """Leave a daemon alone whose sockets its successor would not serve (see ._restart_sockets).

    Returns:
        The addresses the running daemon serves; None when it did not say.

    Raises:
        _Running: such a daemon runs, which was said: exit 1, nothing stopped.
    """
    control = None if args.no_control else control_path(args, args.pidfile)
    pid = read_pidfile(args.pidfile).running_pid
    if control is None or pid is None:
        # Nothing runs (its addresses are free, as far as it goes) or it cannot say.
        return [] if pid is None else None
    from ._control import ControlCode
    from ._restart_sockets import why_not_restarted

    new_sockets = parsed.socket_addresses()
    served: list[dict[str, str]] = []
    why = why_not_restarted(control, args.pidfile, pid, new_sockets, args.timeout, served)
    if why is not None:
        error(f"{PROG}: {why}")
        raise _Running(ControlCode.FAILURE)
    return [address for answer in served for address in answer.values()] if served else None


def _keep_for_unbindable(parsed: Options, served: list[str] | None) -> None:
    """Leave the running daemon alone when its successor could not bind (see ._restart_binds).

    Raises:
        _Running: the start's bind error, said: exit 1, nothing stopped.
    """
    from ._restart_binds import unbindable_address

    uid = None if parsed.identity is None else parsed.identity.uid
    why = unbindable_address(_bound_by(parsed), served, health=parsed.health is not None, owner=uid)
    if why is not None:
        # The start's line and status: the restart stops nothing, so nothing more to say.
        error(f"{PROG}: {in_flags(why)}")
        raise _Running(_lsb_status(why))


def _bound_by(parsed: Options) -> dict[str, ListenAddress]:
    """What the new daemon would bind, by name: its ``listen=`` sockets and ``health``."""
    from .._prefork._config import HEALTH_SOCKET

    listen = dict(parsed.listen)
    if parsed.health is not None:
        listen[HEALTH_SOCKET] = parsed.health
    return listen


def _unreplaceable_control(control: str | None) -> str | None:
    """Why a control socket file at ``control`` could not be bound again by us, if it could not.

    A socket file is replaced by unlinking it, which its directory's write
    permission decides; a daemon that has none there loses nothing.
    """
    if control is None or not os.path.lexists(control):
        return None
    directory = os.path.dirname(os.path.abspath(control))
    if os.access(directory, os.W_OK | os.X_OK):
        return None
    return (
        f"control socket {control}: directory {directory} is not writable, so the new"
        " daemon would have no control socket (only root may replace it there)"
    )


def _start(
    daemon: Daemon, program: HookFunction, options: dict[str, Any], args: argparse.Namespace
) -> int:
    from .._launch import launch, start_warnings

    def on_ready(pid: int) -> None:
        write_line(str(pid))
        for warning in start_warnings(pid, options):
            error(f"{PROG}: {keywords_as_flags(warning)}")

    # "Already running" (said), which LSB counts as a successful start.
    return _launch_unless_running(
        args, options, lambda: launch(
            daemon.hooks, program, options, on_ready=on_ready, explain=in_flags,
            status=_lsb_status, raise_lost_race=True,
        ), running=ExitCode.OK,
    )  # fmt: skip


def _lsb_status(exc: DaemonError) -> int:
    """The exit status of a ``start`` refused with ``exc``: LSB's 4 for a privilege it lacks."""
    from ._control import ControlCode

    return ControlCode.NO_PERMISSION if exc.needs_privilege else exc.exit_code


def _launch_unless_running(
    args: argparse.Namespace, options: dict[str, Any], launch: Callable[[], int], *, running: int
) -> int:
    """``launch()``'s status unless a daemon holds --pidfile: then ``running``, said.

    A start that loses the race for the lock to another start, after the check
    found nothing, waits for the winner's verdict as the check does: the winner
    may still be starting, and fail. Ready, it is "already running"; gone,
    nothing runs and the launch is tried again: past a bounded number of
    lost races to a holder the check cannot see, the launch says who holds it.

    Only the launching process tries again, on the lost race ``launch()``
    raises: what it returns is the program's own status (in its daemon, or in
    the foreground after it ran), 3 included (``sys.exit(3)``), never a
    reason to start it again nor "already running".
    """
    # A successor is started while its predecessor holds the pidfile, on purpose.
    if args.pidfile is None or _is_successor():
        try:
            return _launched(launch)
        except AlreadyRunningError as exc:
            error(f"{PROG}: {in_flags(exc)}")
            return running
    from ._start_after_start import StartWait

    starts = StartWait(options)  # one budget for the check and every lost race
    unseen = 0  # lost races to a holder the check then did not see
    while True:
        if _report_running(args, options, starts):
            return running
        try:
            return _launched(launch)
        except AlreadyRunningError as exc:
            if unseen >= _LOST_RACES - 1:
                # The last try says itself who holds the lock, as a lost race
                # always did: a holder the check cannot see (another user's
                # pidfile in a sticky directory, found only by its lock) lost
                # every try.
                error(f"{PROG}: {in_flags(exc)}")
                return running
        # A holder the check sees is waited for, however many there were (a
        # crowd of failing starts: each ends, and a wait for one still starting
        # ends with our start budget); counting those said "already running",
        # exit 0, with nothing running once the crowd's last start failed.
        if _running_holder(args) is None:
            unseen += 1


def _launched(launch: Callable[[], int]) -> int:
    """``launch()``, SIGTERM, SIGHUP and SIGQUIT at their default actions.

    The launch handles those itself (:mod:`.._prefork._launcher`), which would
    take a handler of ours (:mod:`.._prefork._interrupts`) for the program's own.
    """
    from .._prefork._interrupts import interrupt_on_signals, restore_signals

    restore_signals()
    try:
        return launch()
    finally:
        interrupt_on_signals()


def _is_successor() -> bool:
    """Whether an upgrade started this process (see :mod:`aiodaemon._prefork._adopt`)."""
    handoff = sys.modules.get("aiodaemon._prefork._adopt")
    return handoff is not None and bool(handoff.is_successor())


def _report_running(args: argparse.Namespace, options: dict[str, Any], starts: StartWait) -> bool:
    """Say "already running" when a daemon holds --pidfile; one stopping or starting is waited for.

    A stopping daemon is waited for until it has exited; a starting one until
    it is ready (then "already running", also when it stopped since) or gone
    before it was ready (then nothing runs: start).

    Raises:
        _Running: a stopping daemon did not exit in time, or a starting one
            was not ready within our own start_timeout (said): exit 1.
    """
    held = _running_holder(args)
    if held is None:
        return False
    from ._start_after_start import StillStarting, Verdict, wait_for_starting_daemon
    from ._start_after_stop import StillStopping, wait_for_stopping_daemon
    from ._start_suspended import judge_suspended

    control = None if args.no_control else control_path(args, args.pidfile)
    while held is not None:
        pid = read_pidfile(args.pidfile).running_pid
        try:
            # Suspended, it answers no question: /proc tells, at once.
            if pid is not None and judge_suspended(args.pidfile, pid):
                return True
            if wait_for_stopping_daemon(args.pidfile, control, options, owner=owner(args)):
                held = _running_holder(args)  # gone: unless another start raced us
                continue
            verdict = wait_for_starting_daemon(args.pidfile, control, starts)
        except (StillStopping, StillStarting):
            raise _Running(ExitCode.FAILURE) from None
        if verdict is Verdict.WAS_READY:
            return True  # "already running", said with what came after
        judged, held = held, _running_holder(args)
        if verdict is Verdict.RUNNING and held == judged:
            break
        # Gone (its start failed, or it stopped): as for any such holder. Or
        # running, but the pidfile names another holder now (its pid written
        # since, or another start's once it was gone): that one is asked in
        # turn, not named "already running" unasked (it may still fail).
    if held is not None:
        error(f"{PROG}: {held}")
    return held is not None


def _running_holder(args: argparse.Namespace) -> str | None:
    """``already running (pid N, pidfile P)`` when a live daemon holds ``pidfile``, else None.

    Also for a daemon still serving its control socket after its pidfile was
    removed or replaced by hand: binding that socket would fail with a bare
    "Address already in use".
    """
    pidfile: str = args.pidfile
    state = read_pidfile(pidfile)
    from ._lost_pidfile import overwritten

    lost_pidfile = (
        state.status is PidfileStatus.ABSENT
        or (state.status is PidfileStatus.DEAD and not state.unparsable)
        # Locked, its pid overwritten: the start waited for the lock, then said
        # "already running (pid not yet written)".
        or overwritten(state)
    )
    if lost_pidfile and not args.no_control:
        from ._lost_pidfile import serving_without_pidfile

        lost = serving_without_pidfile(pidfile, control_path(args, pidfile), owner(args), state)
        if lost is None:
            return None
        # Or a daemon whose start raced ours: it created the pidfile meanwhile.
        state = read_pidfile(pidfile)
        if state.status is not PidfileStatus.RUNNING:
            return lost
    if state.status is not PidfileStatus.RUNNING:
        return None
    from .._prefork._sharedfile import is_planted

    if is_planted(pidfile):
        # Another user's file in a shared sticky directory, locked by a process
        # of its choosing, proves nothing: the start refuses it with the reason.
        return None
    held = f"pid {state.pid}" if state.pid is not None else "pid not yet written"
    return f"already running ({held}, pidfile {pidfile})"


def _daemon_options(args: argparse.Namespace, *, detach: bool) -> dict[str, Any]:
    """:func:`._flags.daemon_options`, or "already running" when that explains its error.

    Raises:
        UsageError: naming the command-line option at fault.
        _Running: the daemon holding --pidfile runs, which was said.
        _Refused: start or restart without a privilege they need (exit 4),
            or a file's directory on a read-only file system (exit 1), said.
    """
    try:
        return daemon_options(args, detach=detach, successor=_is_successor())
    except ConfigError as exc:
        _report_running_elsewhere(args, exc)
        if not exc.needs_privilege or args.command == "run" or _is_successor():
            raise UsageError(flag_message(exc)) from None
        # start and restart follow LSB; run's status is its daemon's (docs/options.md).
        error(f"{PROG}: {flag_message(exc)}")
        raise _Refused(_lsb_status(exc)) from None
    except StartupError as exc:
        # The system in the way (a read-only file system), not the option: exit 1.
        error(f"{PROG}: {in_flags(exc)}")
        raise _Refused(exc.exit_code) from None


#: Options whose check depends on who runs the command (may this user create
#: the file there?), not only on what was typed.
_CHECKED_AS_THE_CALLER = frozenset({"pidfile", "log_file", "stdout", "stderr"})


def _denied_to_the_caller(path: object) -> bool:
    """Whether ``path``'s directory exists but this user may not create files in it."""
    if not isinstance(path, str):
        return False
    try:
        parent = os.path.dirname(os.path.abspath(path))
    except OSError:
        return False  # relative in a removed current directory, which the error says
    return os.path.isdir(parent) and not os.access(parent, os.W_OK | os.X_OK)


def _report_running_elsewhere(args: argparse.Namespace, exc: ConfigError) -> None:
    """Say "already running" when the daemon holding --pidfile explains a failed check.

    Another user's daemon (root's, say) holds the pidfile: this user may write
    neither the file nor its directory, so the check fails, but "already
    running" is the answer that matters. ``start`` then exits 0 (LSB), ``run``
    3 as whenever it finds its daemon running; ``restart`` cannot stop another
    user's daemon: 4, LSB's "insufficient privilege", as ``stop`` says.

    Raises:
        _Running: the daemon runs, and that was said.
    """
    pidfile: str | None = args.pidfile
    if exc.option not in _CHECKED_AS_THE_CALLER or pidfile is None or _is_successor():
        return
    if not _denied_to_the_caller(getattr(args, exc.option, None)):
        # A typo (a directory that does not exist) is the error to report,
        # not a privilege the caller lacks (restart: 4).
        return
    held = _running_holder(args)
    if held is None:
        state = read_pidfile(pidfile)
        if args.command == "restart" and state.denied:
            from ._control import ControlCode

            # A pidfile private to another user: `stop` exits 4 on it too.
            error(f"{PROG}: not allowed: {state.detail}; not restarted: {flag_message(exc)}")
            raise _Running(ControlCode.NO_PERMISSION)
        return
    if args.command == "restart":
        from ._control import ControlCode

        error(f"{PROG}: {held}; not restarted: {flag_message(exc)}")
        raise _Running(ControlCode.NO_PERMISSION)
    error(f"{PROG}: {held}")
    raise _Running(ExitCode.OK if args.command == "start" else ExitCode.ALREADY_RUNNING)


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": _cmd_run,
    "start": _cmd_start,
    "restart": _cmd_restart,
}
