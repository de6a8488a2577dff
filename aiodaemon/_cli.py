"""The ``aiodaemon`` command: run, start, stop, restart, reload and status.

Every usage error is one line on stderr and exit status 2, before anything is
acquired or forked; the daemon's own errors come back through :func:`launch`.

The control commands (status, stop, reload) import neither asyncio, structlog
nor the runtime: only run, start and restart load the daemon's side, so an
operator's ``aiodaemon status`` costs little more than starting Python.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import sys
from collections.abc import Callable, Sequence

from . import _control
from ._messages import printable
from ._pidfile import PidfileStatus, read_pidfile
from .exceptions import ConfigError, DaemonError, ExitCode

TYPE_CHECKING = False  # not typing's: see aiodaemon/__init__.py
if TYPE_CHECKING:
    from typing import Any, NoReturn

    from ._daemon import Daemon
    from ._hooks import HookFunction

__all__ = ["main"]

_PROG = "aiodaemon"

_COMMON_EPILOG = """\
TARGET is MODULE:ATTR (or MODULE, meaning MODULE:main), imported with the
current directory on sys.path. ATTR is an async main function (hooks come from
aiodaemon.on_startup etc.) or an aiodaemon.Daemon (its hooks are used, and its
program is the Daemon's own `main` attribute if it has one, else MODULE's
`main`). ATTR may be dotted: MODULE:obj.attr.

where the log records go:
  no --log-file/--syslog  stderr: console lines on a terminal in the foreground,
                          else JSON lines; detached, the --stderr file or nowhere
  --log-file F            F, as JSON lines (console lines with --log-format
                          console); in the foreground, warnings and errors also
                          show on stderr when it is a terminal
  --syslog [WHERE]        syslog (with --log-file: both), JSON message bodies
  --log-format FORMAT     json or console for every destination above
"""

_EXAMPLES = {
    "run": """\
examples:
  aiodaemon run echo:main --listen tcp=127.0.0.1:8080
  aiodaemon run app:daemon --log-level debug --log-format console
  ExecStart=/usr/bin/aiodaemon run app:main      (systemd Type=notify)
""",
    "start": """\
examples:
  aiodaemon start echo:main --pidfile /run/echo.pid --log-file /var/log/echo.jsonl
  aiodaemon start app:main --pidfile /run/app.pid --user app --listen http=:80

Prints the daemon's pid once it is ready (exit 0). If the pidfile is held by a
running daemon, says so and exits 0 starting nothing (LSB).
""",
    "restart": """\
examples:
  aiodaemon restart echo:main --pidfile /run/echo.pid --log-file /var/log/echo.jsonl

Stops the daemon holding --pidfile (as `stop` does), then starts a new one.
""",
    "stop": """\
examples:
  aiodaemon stop --pidfile /run/echo.pid
  aiodaemon stop --pidfile /run/echo.pid --timeout 5

SIGTERM, then SIGKILL after --timeout seconds. Only the process holding the
pidfile's lock is signalled, never a stale pid. A pidfile left by a dead daemon
(nobody holds its lock) is removed, and the command says so. Exit 0 once it is
gone or when it was not running; 1 when the pidfile's holder cannot be verified.
""",
    "reload": """\
examples:
  aiodaemon reload --pidfile /run/echo.pid
  ExecReload=/usr/bin/aiodaemon reload --pidfile /run/echo.pid   (systemd)

Log files are reopened and reload hooks run; waits for the result over the
control socket. Exit 0 when every reload hook succeeded; 1 with the failing
hook's "Type: message" on stderr (the daemon keeps running), or "still
reloading after S s" on --timeout; 7 when the daemon is not running; 4 when
the control socket is the daemon user's and you are someone else. --no-wait,
or a daemon without a control socket: only SIGHUP is sent (exit 0).
""",
    "upgrade": """\
examples:
  aiodaemon upgrade --pidfile /run/echo.pid
  aiodaemon upgrade --pidfile /run/echo.pid --timeout 120

Starts a fresh process of the same program (same command line and environment,
new code read from disk) that inherits the listening sockets and the locked
pidfile, waits until it is ready, then lets the old one drain and exit: no
request is refused. Prints the new pid (exit 0); if the new process fails or is
not ready within --timeout seconds it is killed, the old one keeps serving and
the error is printed (exit 1). Exit 7 when the daemon is not running.
""",
    "status": """\
examples:
  aiodaemon status --pidfile /run/echo.pid
  aiodaemon status --pidfile /run/echo.pid --json

Prints the state (starting, running, reloading, stopping), the pid, the uptime,
the listening addresses, the last reload's result and aiodaemon's version.
--json prints one object with the keys state, pid, uptime, sockets,
last_reload and version. Exit status (LSB): 0 running (any of those states),
1 dead but the pidfile exists, 3 not running, 4 unknown (unreadable pidfile,
unverifiable holder, an untrusted or silent control socket).
""",
}


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """argparse's formatter, sized without importing shutil.

    argparse builds a formatter at every ``add_argument``, and its default one
    imports shutil (with zlib, bz2, lzma) for the terminal width: a good part
    of what ``aiodaemon status`` would cost.
    """

    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
    ) -> None:
        if width is None:
            width = _terminal_columns() - 2
        super().__init__(prog, indent_increment, max_help_position, width)


def _terminal_columns() -> int:
    """``$COLUMNS``, else the terminal's width, else 80 (what shutil would say)."""
    try:
        return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        pass
    try:
        return os.get_terminal_size(1).columns or 80
    except (ValueError, OSError):
        return 80


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and exit 2, as every usage error here.

    Every line reads ``aiodaemon: <what>: <message>``, as ``run()``'s errors do;
    the command appears where it helps, in the pointer to its ``--help``.
    """

    def __init__(self, *args: Any, argv: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: the command line, to explain an error argparse reports without context.
        self.argv = list(argv)

    def error(self, message: str) -> NoReturn:
        if "TARGET" in message:
            message = _explain_missing_target(self.prog, self.argv) or message
        _error(f"{_PROG}: {message} (see '{self.prog} --help')")
        raise SystemExit(ExitCode.USAGE)


def _explain_missing_target(prog: str, argv: Sequence[str]) -> str | None:
    """Why TARGET is missing when ``--syslog`` (whose value is optional) swallowed it."""
    for flag, value in itertools.pairwise(argv):
        if flag == "--syslog" and ":" in value and not value.startswith(("/", "udp:", "tcp:")):
            return (
                f"TARGET required: --syslog took {value!r} as its value; "
                f"write '{prog} {value} --syslog' or give --syslog a value (--syslog /dev/log)"
            )
    return None


def _error(line: str) -> None:
    print(printable(line), file=sys.stderr, flush=True)


class _UsageError(Exception):
    """A bad command line found after parsing: printed as one line, exit 2."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``aiodaemon`` console script and ``python -m aiodaemon``.

    Returns:
        The exit status (see the help of each command).
    """
    if "AIODAEMON_HANDOFF" in os.environ:
        from ._adopt import take_handoff

        try:
            # First thing: the program's own imports must not see (or pass on)
            # an upgrade's hand-off variables.
            take_handoff()
        except DaemonError as exc:
            _error(f"{_PROG}: {exc}")
            return exc.exit_code
    argv = list(sys.argv[1:] if argv is None else argv)
    args, extra = _build_parser(argv).parse_known_args(argv)
    if extra:
        # Reported by the command's own parser, so the line names the command.
        args.parser.error(f"unrecognized arguments: {' '.join(extra)}")
    command: Callable[[argparse.Namespace], int] = args.handler
    try:
        return command(args)
    except _UsageError as exc:
        _error(f"{_PROG}: {exc}")
        return ExitCode.USAGE
    except KeyboardInterrupt:
        # Ctrl-C while the CLI itself waits (stop, start before the fork).
        return 128 + 2


# --- commands -----------------------------------------------------------------------


def _cmd_run(args: argparse.Namespace) -> int:
    from ._launch import launch

    options = _daemon_options(args, detach=False)
    daemon, program = _load_target(args.target)
    return launch(daemon.hooks, program, options, explain=_in_flags)


def _cmd_start(args: argparse.Namespace) -> int:
    options = _daemon_options(args, detach=True)
    daemon, program = _load_target(args.target)
    return _start(daemon, program, options, args.pidfile)


def _cmd_restart(args: argparse.Namespace) -> int:
    if args.pidfile is None:
        raise _UsageError("--pidfile is required: it tells which daemon to stop")
    options = _daemon_options(args, detach=True)
    daemon, program = _load_target(args.target)
    if _is_successor():
        # Started again by an upgrade of a daemon that `restart` launched: the
        # daemon to stop is the one handing over to us.
        return _start(daemon, program, options, args.pidfile)
    code = _control.stop(args.pidfile, args.timeout)
    if code != 0:
        return code
    return _start(daemon, program, options, args.pidfile)


def _cmd_stop(args: argparse.Namespace) -> int:
    return _control.stop(args.pidfile, args.timeout)


def _cmd_reload(args: argparse.Namespace) -> int:
    pidfile: str = args.pidfile
    return _control.reload(
        pidfile, _control_path(args, pidfile), timeout=args.timeout, wait=not args.no_wait
    )


def _cmd_upgrade(args: argparse.Namespace) -> int:
    from ._upgrade_command import upgrade

    pidfile: str = args.pidfile
    return upgrade(pidfile, _control_path(args, pidfile), args.timeout)


def _cmd_status(args: argparse.Namespace) -> int:
    pidfile: str = args.pidfile
    return _control.status(
        pidfile, _control_path(args, pidfile), as_json=args.json, timeout=args.timeout
    )


def _control_path(args: argparse.Namespace, pidfile: str) -> str:
    """``--control``, or where a daemon with this pidfile binds its control socket."""
    # Strings, not pathlib: importing it costs a control command ~2 ms.
    return str(args.control) if args.control is not None else pidfile + ".ctl"


def _start(
    daemon: Daemon, program: HookFunction, options: dict[str, Any], pidfile: str | None
) -> int:
    from ._launch import launch

    # A successor is started while its predecessor holds the pidfile, on purpose.
    if pidfile is not None and not _is_successor() and _report_running(pidfile):
        return ExitCode.OK

    def on_ready(pid: int) -> None:
        print(pid, flush=True)
        if pidfile is None:
            # Nothing records this daemon: `stop`, `status` and `reload` need a
            # pidfile, so say how to stop it while its pid is on the screen.
            _error(
                f"{_PROG}: warning: started without --pidfile, so '{_PROG} stop' cannot "
                f"find it; stop it with: kill {pid}"
            )

    code = launch(daemon.hooks, program, options, on_ready=on_ready, explain=_in_flags)
    # Only errors before the fork come back here; a lost race for the lock is
    # still "already running", which LSB counts as a successful start.
    return ExitCode.OK if code == ExitCode.ALREADY_RUNNING else code


def _is_successor() -> bool:
    """Whether an upgrade started this process (see :mod:`._adopt`)."""
    handoff = sys.modules.get("aiodaemon._adopt")
    return handoff is not None and bool(handoff.is_successor())


def _report_running(pidfile: str) -> bool:
    state = read_pidfile(pidfile)
    if state.status is not PidfileStatus.RUNNING:
        return False
    held = f"pid {state.pid}" if state.pid is not None else "pid not yet written"
    _error(f"{_PROG}: already running ({held}, pidfile {pidfile})")
    return True


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
    from ._config import parse_options

    try:
        parse_options(raw)
    except ConfigError as exc:
        raise _UsageError(_flag_message(exc)) from None
    return raw


def _flag_message(exc: ConfigError) -> str:
    """Name the command-line flag rather than the keyword: ``--log-file`` for ``log_file``."""
    message = str(exc).removeprefix(f"{exc.option}: ")
    return f"{_flag(exc.option)}: {message}"


def _flag(option: str) -> str:
    """``--listen http`` for ``listen[http]``, ``--log-file`` for ``log_file``."""
    name, _, key = option.partition("[")
    flag = "--" + name.replace("_", "-")
    return f"{flag} {key.rstrip(']')}" if key else flag


def _in_flags(exc: DaemonError) -> str:
    """An error of the acquire phase, worded with the flag the user typed."""
    from ._config import OPTION_NAMES

    if isinstance(exc, ConfigError):
        return _flag_message(exc)
    text = str(exc)
    option, sep, message = text.partition(": ")
    if sep and option.partition("[")[0] in OPTION_NAMES:
        return f"{_flag(option)}: {message}"
    return text


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


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative number of seconds: {text!r}")
    return value


# --- target -------------------------------------------------------------------------


def _load_target(spec: str) -> tuple[Daemon, HookFunction]:
    """Import ``MODULE:ATTR`` and return the daemon whose hooks apply and the program.

    Raises:
        _UsageError: the module, the attribute or its type is wrong.
    """
    import functools

    from ._daemon import Daemon, default_daemon

    module_name, _, attr_path = spec.partition(":")
    attr_path = attr_path or "main"
    if not module_name or not all(part.isidentifier() for part in module_name.split(".")):
        raise _UsageError(f"TARGET must be MODULE:ATTR, not {spec!r}")
    if not all(part.isidentifier() for part in attr_path.split(".")):
        raise _UsageError(f"TARGET must be MODULE:ATTR, not {spec!r}")
    module = _import(module_name)
    try:
        obj = functools.reduce(getattr, attr_path.split("."), module)
    except AttributeError:
        raise _UsageError(f"module {module_name!r} has no attribute {attr_path!r}") from None
    if isinstance(obj, Daemon):
        program = getattr(obj, "main", None) or getattr(module, "main", None)
        if program is None:
            raise _UsageError(
                f"{spec} is a Daemon, but neither it nor module {module_name!r} has a `main`"
            )
        return obj, _check_program(f"{module_name}:main", program)
    return default_daemon, _check_program(spec, obj)


def _import(module_name: str) -> Any:
    import importlib

    # The absolute current directory, not "": the daemon chdirs to its workdir,
    # and imports made later must still find the program's own modules.
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module_name + ".").startswith(exc.name + "."):
            raise _UsageError(f"no module named {module_name!r} (in {cwd} or sys.path)") from None
        raise _UsageError(f"importing {module_name!r} failed: {_describe(exc)}") from None
    except Exception as exc:
        raise _UsageError(f"importing {module_name!r} failed: {_describe(exc)}") from None


def _describe(exc: BaseException) -> str:
    """``Type: message (file:line)`` of the innermost frame, a traceback in one line."""
    import traceback

    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, SyntaxError):
        return text
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        text += f" ({frames[-1].filename}:{frames[-1].lineno})"
    return text


def _check_program(name: str, obj: object) -> HookFunction:
    import inspect

    from ._hooks import check_hook

    if inspect.isfunction(obj) and not inspect.iscoroutinefunction(obj):
        raise _UsageError(f"{name} is a plain function; it must be an async function (async def)")
    try:
        check_hook(obj, name)
    except TypeError:
        kind = type(obj).__name__
        if inspect.iscoroutinefunction(obj):
            raise _UsageError(f"{name} must take no argument or one Context") from None
        raise _UsageError(
            f"{name} is not an async function or an aiodaemon.Daemon (it is a {kind})"
        ) from None
    return obj  # type: ignore[return-value]


# --- parser -------------------------------------------------------------------------


def _build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    parser = _Parser(
        argv=argv,
        prog=_PROG,
        formatter_class=_Formatter,
        description="Run an asyncio program as a Unix service, and control it.",
        epilog="Run 'aiodaemon COMMAND --help' for each command's options and examples.",
    )
    parser.add_argument("--version", action=_VersionAction, nargs=0, help="print the version")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands_table: dict[str, tuple[Callable[[argparse.Namespace], int], str]] = {
        "run": (_cmd_run, "run TARGET in the foreground (Ctrl-C stops it)"),
        "start": (_cmd_start, "start TARGET detached; print its pid when it is ready"),
        "stop": (_cmd_stop, "stop the daemon holding --pidfile (TERM, wait, KILL)"),
        "restart": (_cmd_restart, "stop the daemon holding --pidfile, then start TARGET"),
        "reload": (_cmd_reload, "reload the daemon holding --pidfile and report the result"),
        "status": (_cmd_status, "tell what the daemon holding --pidfile is doing (LSB codes)"),
        "upgrade": (_cmd_upgrade, "replace the daemon holding --pidfile by new code, no downtime"),
    }
    # Only the command being run gets its parser: building every one would be
    # a good part of what a control command such as `status` costs. Without a
    # known command first (`aiodaemon --help`, a typo), all of them are built.
    chosen = argv[0] if argv and argv[0] in commands_table else None
    for name, (handler, help_text) in commands_table.items():
        if chosen is not None and name != chosen:
            continue
        daemon_command = name in ("run", "start", "restart")
        epilog = _EXAMPLES[name]
        if daemon_command:
            epilog = _COMMON_EPILOG + "\n" + epilog
        usage = "TARGET [options]" if daemon_command else "--pidfile PATH"
        usage += {
            "stop": " [--timeout S]",
            "restart": " [--timeout S]",
            "reload": " [--timeout S] [--no-wait] [--control PATH]",
            "status": " [--json] [--timeout S] [--control PATH]",
            "upgrade": " [--timeout S] [--control PATH]",
        }.get(name, "")
        sub = commands.add_parser(
            name,
            argv=argv,
            usage=f"{_PROG} {name} {usage}",
            help=help_text,
            description=help_text[0].upper() + help_text[1:] + ".",
            epilog=epilog,
            formatter_class=_Formatter,
        )
        sub.set_defaults(handler=handler, parser=sub)
        if daemon_command:
            _add_daemon_options(sub)
        else:
            sub.add_argument(
                "--pidfile", required=True, metavar="PATH", help="the daemon's pidfile"
            )
        if name in ("stop", "restart"):
            sub.add_argument(
                "--timeout",
                type=_seconds,
                default=30.0,
                metavar="S",
                help="seconds to wait after SIGTERM before SIGKILL (default: 30)",
            )
        if name in ("reload", "status", "upgrade"):
            _add_client_options(sub, name)
    return parser


class _VersionAction(argparse.Action):
    """``--version``, reading the package metadata only when asked (it is slow to import)."""

    def __call__(self, parser: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        from . import __version__

        print(f"{_PROG} {__version__}")
        parser.exit()


def _add_client_options(sub: argparse.ArgumentParser, name: str) -> None:
    add = sub.add_argument
    add(
        "--control",
        metavar="PATH",
        help="the daemon's control socket (default: the pidfile's path + .ctl)",
    )
    if name == "reload":
        add(
            "--timeout",
            type=_seconds,
            default=60.0,
            metavar="S",
            help="seconds to wait for the reload to finish (default: 60)",
        )
        add("--no-wait", action="store_true", help="only send SIGHUP; do not wait for the result")
    elif name == "upgrade":
        add(
            "--timeout",
            type=_seconds,
            default=60.0,
            metavar="S",
            help="seconds the new process has to become ready (default: 60)",
        )
    elif name == "status":
        add("--json", action="store_true", help="print one JSON object")
        add(
            "--timeout",
            type=_seconds,
            default=10.0,
            metavar="S",
            help="seconds to wait for the daemon's answer (default: 10)",
        )


def _add_daemon_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("target", metavar="TARGET", help="MODULE:ATTR, an async main or a Daemon")
    add = sub.add_argument
    add("--pidfile", metavar="PATH", help="pidfile to lock and write")
    add(
        "--log-file",
        metavar="PATH",
        help="log file, reopened on SIGUSR1/SIGHUP: JSON lines (console lines with "
        "--log-format console); see 'where the log records go' below",
    )
    add(
        "--syslog",
        nargs="?",
        const=True,
        metavar="WHERE",
        help="log to syslog: /dev/log (no value), a socket path, udp://H:P or tcp://H:P "
        "(the value is optional: write TARGET before --syslog)",
    )
    add(
        "--log-level",
        choices=["debug", "info", "warning", "error", "critical"],
        help="(default: info)",
    )
    add(
        "--log-format",
        choices=["json", "console"],
        help="for stderr, --log-file and --syslog alike (default: console on a terminal "
        "in the foreground, else json)",
    )
    add(
        "--listen",
        action="append",
        metavar="NAME=ADDR",
        help="bind a socket: NAME=HOST:PORT, NAME=[V6]:PORT or NAME=unix:/PATH (repeatable)",
    )
    add("--user", help="user name or uid to drop to")
    add("--group", help="group name or gid to drop to")
    add("--workdir", metavar="DIR", help="working directory (default: /)")
    add("--umask", metavar="OCTAL", help="file mode creation mask (default: 022)")
    add("--stdout", metavar="PATH", help="append the daemon's stdout to PATH")
    add("--stderr", metavar="PATH", help="append the daemon's stderr to PATH")
    add(
        "--shutdown-timeout",
        type=_seconds,
        metavar="S",
        help="seconds for the whole shutdown before a forced exit (default: 30)",
    )
    add("--chroot", metavar="DIR", help="chroot to DIR after acquiring")
    add("--no-prevent-core", action="store_true", help="allow core dumps (default: RLIMIT_CORE=0)")
    add(
        "--allow-new-privileges",
        action="store_true",
        help="after dropping root, let setuid programs regain privileges (default: no_new_privs)",
    )
    add(
        "--uvloop",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="require or refuse uvloop (default: use it when installed)",
    )
    add(
        "--drain-delay",
        type=_seconds,
        metavar="S",
        help="seconds to keep accepting after a stop request while /readyz says 503 (default: 0)",
    )
    add(
        "--health",
        metavar="ADDR",
        help="serve GET /livez and /readyz on HOST:PORT or unix:/PATH (socket name 'health')",
    )
    add(
        "--ready",
        choices=["startup", "manual"],
        help="ready after startup hooks (default), or when the program calls ctx.notify_ready()",
    )
    add(
        "--start-timeout",
        type=_seconds,
        metavar="S",
        help="seconds to become ready before the start fails and the daemon is stopped "
        "(default: 90)",
    )
    add(
        "--control",
        metavar="PATH",
        help="control socket for status and reload (default: the pidfile's path + .ctl)",
    )
    add("--no-control", action="store_true", help="no control socket")
