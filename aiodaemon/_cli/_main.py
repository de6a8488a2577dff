"""The ``aiodaemon`` command: run, start, stop, restart, reload and status.

Every usage error is one line on stderr and exit status 2, before anything is
acquired or forked; the daemon's own errors come back through :func:`launch`.

The control commands (status, stop, reload) import neither asyncio, structlog
nor the runtime: only run, start and restart load the daemon's side, so an
operator's ``aiodaemon status`` costs little more than starting Python.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from .._prefork._messages import silence, write_line
from .._prefork._pidfile_status import PidfileStatus, read_pidfile
from ..exceptions import ConfigError, DaemonError, ExitCode
from ._parser import PROG, build_parser, error

TYPE_CHECKING = False  # not typing's: see aiodaemon/__init__.py
if TYPE_CHECKING:
    from typing import Any

    from .._daemon import Daemon
    from .._run._hooks import HookFunction

__all__ = ["main"]


class _UsageError(Exception):
    """A bad command line found after parsing: printed as one line, exit 2."""


class _Running(Exception):
    """The daemon holding --pidfile runs, which was said: exit with ``code``."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``aiodaemon`` console script and ``python -m aiodaemon``.

    Returns:
        The exit status (see the help of each command).
    """
    if "AIODAEMON_HANDOFF" in os.environ:
        from .._prefork._adopt import take_handoff

        try:
            # First thing: the program's own imports must not see (or pass on)
            # an upgrade's hand-off variables.
            take_handoff()
        except DaemonError as exc:
            error(f"{PROG}: {exc}")
            return exc.exit_code
    argv = list(sys.argv[1:] if argv is None else argv)
    args, extra = build_parser(_HANDLERS, argv).parse_known_args(argv)
    if extra:
        # Reported by the command's own parser, so the line names the command.
        args.parser.error(f"unrecognized arguments: {' '.join(extra)}")
    command: Callable[[argparse.Namespace], int] = args.handler
    try:
        _check_pidfile_arg(args)
        return command(args)
    except _UsageError as exc:
        error(f"{PROG}: {exc}")
        return ExitCode.USAGE
    except _Running as exc:
        return exc.code
    except KeyboardInterrupt:
        # Ctrl-C while the CLI itself waits (stop, start before the fork).
        return 128 + 2
    except BrokenPipeError:
        # Output nobody reads any more (`| head -1`) where write_line was not
        # used: no traceback; the command's own writes go through write_line.
        silence(sys.stdout)
        silence(sys.stderr)
        return ExitCode.FAILURE


def _check_pidfile_arg(args: argparse.Namespace) -> None:
    """``--pidfile ""`` names no file: refused by every command, as ``start`` refuses it."""
    if getattr(args, "pidfile", None) == "":
        raise _UsageError("--pidfile: must not be empty")


# --- commands -----------------------------------------------------------------------


def _load_target(spec: str) -> tuple[Daemon, HookFunction]:
    from ._importer import TargetError, load_target

    try:
        return load_target(spec)
    except TargetError as exc:
        raise _UsageError(str(exc)) from None


def _cmd_run(args: argparse.Namespace) -> int:
    from .._launch import launch

    options = _daemon_options(args, detach=False)
    daemon, program = _load_target(args.target)
    # As `start` does: another user's daemon makes the pidfile unopenable for
    # us ("Permission denied"), when "already running" is the answer.
    if args.pidfile is not None and not _is_successor() and _report_running(args):
        return ExitCode.ALREADY_RUNNING
    return launch(daemon.hooks, program, options, explain=_explain_in_flags(args))


def _cmd_start(args: argparse.Namespace) -> int:
    options = _daemon_options(args, detach=True)
    daemon, program = _load_target(args.target)
    return _start(daemon, program, options, args)


def _cmd_restart(args: argparse.Namespace) -> int:
    if args.pidfile is None:
        raise _UsageError("--pidfile is required: it tells which daemon to stop")
    options = _daemon_options(args, detach=True)
    daemon, program = _load_target(args.target)
    if _is_successor():
        # Started again by an upgrade of a daemon that `restart` launched: the
        # daemon to stop is the one handing over to us.
        return _start(daemon, program, options, args)
    from ._stop import stop

    control = None if args.no_control else _control_path(args, args.pidfile)
    code = stop(args.pidfile, args.timeout, control, owner=_owner(args))
    if code != 0:
        return code
    return _start(daemon, program, options, args)


def _cmd_stop(args: argparse.Namespace) -> int:
    from ._stop import stop  # only `stop` and `restart` load it

    pidfile: str = args.pidfile
    return stop(pidfile, args.timeout, _control_path(args, pidfile), owner=_owner(args))


def _cmd_reload(args: argparse.Namespace) -> int:
    from ._reload_command import reload

    pidfile: str = args.pidfile
    return reload(
        pidfile,
        _control_path(args, pidfile),
        timeout=args.timeout,
        wait=not args.no_wait,
        owner=_owner(args),
    )


def _cmd_upgrade(args: argparse.Namespace) -> int:
    from ._upgrade_command import upgrade

    pidfile: str = args.pidfile
    return upgrade(pidfile, _control_path(args, pidfile), args.timeout, owner=_owner(args))


def _cmd_status(args: argparse.Namespace) -> int:
    from ._status_command import status

    pidfile: str = args.pidfile
    return status(
        pidfile,
        _control_path(args, pidfile),
        as_json=args.json,
        timeout=args.timeout,
        owner=_owner(args),
    )


def _owner(args: argparse.Namespace) -> int | None:
    """The uid ``--user`` names (the daemon's user), None without it."""
    from ._pidfile_trust import user_id

    try:
        return None if args.user is None else user_id(args.user)
    except ValueError as exc:
        raise _UsageError(f"--user: {exc}") from None


def _control_path(args: argparse.Namespace, pidfile: str) -> str:
    """``--control``, or where a daemon with this pidfile binds its control socket."""
    # Strings, not pathlib: importing it costs a control command ~2 ms.
    return str(args.control) if args.control is not None else pidfile + ".ctl"


def _start(
    daemon: Daemon, program: HookFunction, options: dict[str, Any], args: argparse.Namespace
) -> int:
    from .._launch import launch

    pidfile: str | None = args.pidfile
    explain = _explain_in_flags(args)

    # A successor is started while its predecessor holds the pidfile, on purpose.
    if pidfile is not None and not _is_successor() and _report_running(args):
        return ExitCode.OK

    def on_ready(pid: int) -> None:
        write_line(str(pid))
        if pidfile is None:
            # Nothing records this daemon: `stop`, `status` and `reload` need a
            # pidfile, so say how to stop it while its pid is on the screen.
            error(
                f"{PROG}: warning: started without --pidfile, so '{PROG} stop' cannot "
                f"find it; stop it with: kill {pid}"
            )
        if not any(options.get(name) for name in ("log_file", "syslog", "stderr")):
            # Detached, the records would go to /dev/null: a daemon that dies
            # after this line would leave no word of why (see logging.md).
            error(
                f"{PROG}: warning: started without --log-file, --syslog or --stderr, "
                "so the daemon's log (even the error that may end it) goes nowhere"
            )

    code = launch(daemon.hooks, program, options, on_ready=on_ready, explain=explain)
    # Only errors before the fork come back here; a lost race for the lock is
    # still "already running", which LSB counts as a successful start.
    return ExitCode.OK if code == ExitCode.ALREADY_RUNNING else code


def _is_successor() -> bool:
    """Whether an upgrade started this process (see :mod:`aiodaemon._prefork._adopt`)."""
    handoff = sys.modules.get("aiodaemon._prefork._adopt")
    return handoff is not None and bool(handoff.is_successor())


def _report_running(args: argparse.Namespace) -> bool:
    held = _running_holder(args)
    if held is not None:
        error(f"{PROG}: {held}")
    return held is not None


def _running_holder(args: argparse.Namespace) -> str | None:
    """``already running (pid N, pidfile P)`` when a live daemon holds ``pidfile``, else None.

    Also for a daemon still serving its control socket after its pidfile was
    removed by hand: binding that socket would fail with a bare "Address already in use".
    """
    pidfile: str = args.pidfile
    state = read_pidfile(pidfile)
    if state.status is PidfileStatus.ABSENT and not args.no_control:
        from ._lost_pidfile import serving_without_pidfile

        return serving_without_pidfile(pidfile, _control_path(args, pidfile), _owner(args))
    if state.status is not PidfileStatus.RUNNING:
        return None
    from .._prefork._sharedfile import is_planted

    if is_planted(pidfile):
        # Another user's file in a shared sticky directory, locked by a process
        # of its choosing, proves nothing: the start refuses it with the reason.
        return None
    held = f"pid {state.pid}" if state.pid is not None else "pid not yet written"
    return f"already running ({held}, pidfile {pidfile})"


# --- options ------------------------------------------------------------------------


def _daemon_options(args: argparse.Namespace, *, detach: bool) -> dict[str, Any]:
    """Keyword options for ``run()`` from the command line, validated here.

    Raises:
        _UsageError: naming the command-line option at fault.
    """
    raw: dict[str, Any] = {"detach": detach, "listen": _listen(args.listen)}
    for name in (
        "pidfile", "log_file", "syslog", "log_level", "log_format", "user", "group",
        "workdir", "umask", "stdout", "stderr", "shutdown_timeout", "chroot", "uvloop",
        "ready", "drain_delay", "health", "start_timeout", "control",
    ):  # fmt: skip
        value = getattr(args, name)
        if value is not None:
            raw[name] = value
    if args.no_prevent_core:
        raw["prevent_core"] = False
    if args.no_control:
        raw["control"] = False
    if args.allow_new_privileges:
        raw["no_new_privileges"] = False
    from .._prefork._config import parse_options

    try:
        parse_options(raw)
    except ConfigError as exc:
        _report_running_elsewhere(args, exc)
        raise _UsageError(_flag_message(exc)) from None
    return raw


#: Options whose check depends on who runs the command (may this user create
#: the file there?), not only on what was typed.
_CHECKED_AS_THE_CALLER = frozenset({"pidfile", "log_file", "stdout", "stderr"})


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
    held = _running_holder(args)
    if held is None:
        return
    if args.command == "restart":
        from ._control import ControlCode

        error(f"{PROG}: {held}; not restarted: {_flag_message(exc)}")
        raise _Running(ControlCode.NO_PERMISSION)
    error(f"{PROG}: {held}")
    raise _Running(ExitCode.OK if args.command == "start" else ExitCode.ALREADY_RUNNING)


def _flag_message(exc: ConfigError) -> str:
    """Name the command-line flag rather than the keyword: ``--log-file`` for ``log_file``."""
    message = str(exc).removeprefix(f"{exc.option}: ")
    return _keywords_as_flags(f"{_flag(exc.option)}: {message}")


def _flag(option: str) -> str:
    """``--listen http`` for ``listen[http]``, ``--log-file`` for ``log_file``."""
    name, _, key = option.partition("[")
    flag = "--" + name.replace("_", "-")
    return f"{flag} {key.rstrip(']')}" if key else flag


def _keywords_as_flags(text: str) -> str:
    """``--group`` for a ``group=`` a message suggests (``give group= too``)."""
    if "=" not in text:
        return text
    import re

    from .._prefork._config import OPTION_NAMES

    return re.sub(
        r"(?<![\w-])([a-z_]+)=(?=[\s;,.)]|$)",
        lambda m: _flag(m[1]) if m[1] in OPTION_NAMES else m[0],
        text,
    )


def _explain_in_flags(args: argparse.Namespace) -> Callable[[DaemonError], str]:
    """How ``launch`` words its errors for this command line (see :func:`_in_flags`)."""
    health = getattr(args, "health", None) is not None
    return lambda exc: _in_flags(exc, health=health)


def _in_flags(exc: DaemonError, *, health: bool = False) -> str:
    """An error of the configure or acquire phase, worded with the flag the user typed.

    ``run()`` names its keyword options (``cannot open log_file PATH: ...``,
    ``listen[http]: ...``); the CLI says ``--log-file: cannot open PATH: ...``
    and ``--listen http: ...``, as it does for the options it validates itself.

    Args:
        exc: the error ``launch`` reports.
        health: whether ``--health`` was given: its socket is ``listen[health]``.
    """
    from .._prefork._config import HEALTH_SOCKET, OPTION_NAMES

    if isinstance(exc, ConfigError):
        return _flag_message(exc)
    text = str(exc)
    option = getattr(exc, "option", None)
    if option is not None:
        # The message names the option before its path: "cannot open log_file PATH: ...".
        before, sep, after = text.partition(f"{option} ")
        if sep:
            return _keywords_as_flags(f"{_flag(option)}: {before}{after}")
    option, sep, message = text.partition(": ")
    if sep and option.partition("[")[0] in OPTION_NAMES:
        flag = "--health" if health and option == f"listen[{HEALTH_SOCKET}]" else _flag(option)
        return _keywords_as_flags(f"{flag}: {message}")
    return _keywords_as_flags(text)


def _listen(values: list[str] | None) -> dict[str, str]:
    result: dict[str, str] = {}
    for value in values or ():
        name, sep, address = value.partition("=")
        if not sep or not name or not address:
            raise _UsageError(
                f"--listen: expected NAME=ADDRESS (e.g. http=127.0.0.1:8080), not {value!r}"
            )
        if name in result:
            raise _UsageError(f"--listen: name {name!r} given twice")
        result[name] = address
    return result


_HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": _cmd_run,
    "start": _cmd_start,
    "stop": _cmd_stop,
    "restart": _cmd_restart,
    "reload": _cmd_reload,
    "status": _cmd_status,
    "upgrade": _cmd_upgrade,
}
