"""The ``aiodaemon`` command line's parser: its commands, their options and usage errors.

The texts it shows (one-line helps, examples) are in :mod:`._help`. Built for
one command at a time (see :func:`build_parser`): an operator's
``aiodaemon status`` should cost little more than starting Python.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence

from .._prefork._messages import printable, write_line
from ..exceptions import ExitCode
from ._help import COMMANDS, COMMON_EPILOG, EXAMPLES

TYPE_CHECKING = False  # not typing's: see aiodaemon/__init__.py
if TYPE_CHECKING:
    from typing import Any, NoReturn

__all__ = ["PROG", "build_parser", "error"]

PROG = "aiodaemon"


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


class _NegativeNumber:
    """argparse's negative-number matcher: what ``float()`` or ``int(text, 0)`` reads after a minus.

    ``--umask -0o22`` too; no option here looks like one. Not a regular
    expression: compiling one cost every command ~0.35 ms.
    """

    @staticmethod
    def match(text: str) -> bool:
        number = text[1:]
        # "--5", "-+5", "- 5": no number float() or int() reads after one minus.
        if not text.startswith("-") or number[:1] in ("", "-", "+") or number != number.strip():
            return False
        try:
            float(number)
        except ValueError:
            try:
                int(number, 0)
            except ValueError:
                return False
        return True


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and exit 2, as every usage error here.

    Every line reads ``aiodaemon: <what>: <message>``, as ``run()``'s errors do;
    the command appears where it helps, in the pointer to its ``--help``.
    """

    def __init__(self, *args: Any, argv: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # argparse takes only "-1" and "-.5" for negative numbers: "-inf", "-nan"
        # or "-1e3" after a flag looked like an unknown option, and the flag
        # was said to lack its value instead of its value being refused.
        # (Typed as a Pattern; argparse only tests the truth of its .match().)
        self._negative_number_matcher = _NegativeNumber  # type: ignore[assignment]
        #: the command line, to explain an error argparse reports without context.
        self.argv = list(argv)

    def error(self, message: str) -> NoReturn:
        if "TARGET" in message:
            message = _explain_missing_target(self.prog, self.argv) or message
        elif "COMMAND" in message and self.argv and self.argv[0].startswith("-"):
            message = _explain_leading_option(self.argv)
        # argparse says "argument --drain-delay: ..." where every other line,
        # and run(), say "--umask: ...": one shape for all.
        message = message.removeprefix("argument ")
        error(f"{PROG}: {message} (see '{self.prog} --help')")
        raise SystemExit(ExitCode.USAGE)


def _explain_missing_target(prog: str, argv: Sequence[str]) -> str | None:
    """Why TARGET is missing when ``--syslog`` (whose value is optional) swallowed it.

    A syslog target is a socket path or ``udp://``/``tcp://``, all with a
    slash; a word without one after ``--syslog`` was meant as TARGET
    (``MODULE:ATTR``, or ``MODULE``).
    """
    for flag, value in itertools.pairwise(argv):
        if flag == "--syslog" and "/" not in value and not value.startswith(("-", "udp:", "tcp:")):
            return (
                f"TARGET required: --syslog took {value!r} as its value; "
                f"write '{prog} {value} --syslog' or give --syslog a value (--syslog /dev/log)"
            )
    return None


def _explain_leading_option(argv: Sequence[str]) -> str:
    """Why COMMAND is missing when the line starts with an option (``aiodaemon -v``)."""
    option = argv[0]
    command = next((arg for arg in argv if arg in COMMANDS), None)
    if command is not None:
        return f"{option} goes after the command: {PROG} {command} {option} ..."
    return f"unknown option {option!r}: give a COMMAND ({', '.join(COMMANDS)}) or --version"


def error(line: str) -> None:
    """Print one line on stderr (control characters made visible)."""
    write_line(printable(line), sys.stderr)


#: The longest wait a number of seconds stands for: past ~9e9 s the kernel's
#: timeouts (select, socket timeouts) overflow, and 1e9 s is 31 years.
LONGEST_WAIT = 1e9


def _number_of_seconds(text: str) -> float:
    """``text`` as a float, at most :data:`LONGEST_WAIT` (``1e12`` or ``inf``: no end)."""
    # isascii: float() also reads fullwidth or Arabic-Indic "10" as 10; ports refuse them.
    try:
        value = float(text) if text.isascii() else math.nan
    except ValueError:
        value = math.nan
    if math.isnan(value):
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}")
    return min(value, LONGEST_WAIT)


def seconds(text: str) -> float:
    """A non-negative number of seconds, for ``type=`` of an option."""
    value = _number_of_seconds(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative number of seconds: {text!r}")
    return value


def positive_seconds(text: str) -> float:
    """A number of seconds above 0: a timeout that must leave some time.

    ``stop --timeout 0`` means SIGKILL at once; ``status``, ``reload`` or
    ``upgrade`` with no time to answer could only fail (the daemon refused it),
    and the daemon's options refuse a ``--shutdown-timeout`` or
    ``--start-timeout`` of 0: said here, in the words ``-1`` gets.
    """
    value = _number_of_seconds(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds: {text!r}")
    return value


def build_parser(
    handlers: Mapping[str, Callable[[argparse.Namespace], int]], argv: Sequence[str] = ()
) -> argparse.ArgumentParser:
    """The parser of ``argv``'s command (of every command without a known one first).

    Each command's namespace carries ``handler`` (from ``handlers``, by name)
    and ``parser`` (its own, to report an error found after parsing).
    """
    parser = Parser(
        argv=argv,
        prog=PROG,
        formatter_class=_Formatter,
        description="Run an asyncio program as a Unix service, and control it.",
        epilog="Run 'aiodaemon COMMAND --help' for each command's options and examples.",
    )
    parser.add_argument("--version", action=_VersionAction, nargs=0, help="print the version")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # Only the command being run gets its parser: building every one would be
    # a good part of what a control command such as `status` costs. Without a
    # known command first (`aiodaemon --help`, a typo), all of them are built.
    chosen = argv[0] if argv and argv[0] in COMMANDS else None
    for name, help_text in COMMANDS.items():
        if chosen is not None and name != chosen:
            continue
        daemon_command = name in ("run", "start", "restart")
        epilog = EXAMPLES[name]
        if daemon_command:
            epilog = COMMON_EPILOG + "\n" + epilog
        usage = "TARGET [options]" if daemon_command else "--pidfile PATH"
        usage += {
            "stop": " [--timeout S] [--control PATH] [--user USER]",
            "restart": " [--timeout S]",
            "reload": " [--timeout S] [--no-wait] [--control PATH] [--user USER]",
            "status": " [--json] [--timeout S] [--control PATH] [--user USER]",
            "upgrade": " [--timeout S] [--control PATH] [--user USER]",
        }.get(name, "")
        sub = commands.add_parser(
            name,
            argv=argv,
            usage=f"{PROG} {name} {usage}",
            help=help_text,
            description=help_text[0].upper() + help_text[1:] + ".",
            epilog=epilog,
            formatter_class=_Formatter,
        )
        sub.set_defaults(handler=handlers[name], parser=sub)
        if daemon_command:
            _add_daemon_options(sub)
        else:
            sub.add_argument(
                "--pidfile", required=True, metavar="PATH", help="the daemon's pidfile"
            )
        if name in ("stop", "restart"):
            sub.add_argument(
                "--timeout",
                type=seconds,
                default=None,
                metavar="S",
                help=(
                    "seconds to wait after the stop request before SIGKILL (default: 30, or"
                    " the daemon's drain delay + shutdown timeout + 2 when longer)"
                ),
            )
        if name == "stop":
            sub.add_argument(
                "--control",
                metavar="PATH",
                help="the daemon's control socket (default: the pidfile's path + .ctl)",
            )
        if not daemon_command:
            sub.add_argument(
                "--user",
                metavar="USER",
                help="the user the daemon runs as: its pidfile and control socket are "
                "trusted in a shared sticky directory",
            )
        if name in ("reload", "status", "upgrade"):
            _add_client_options(sub, name)
    return parser


#: ``--log-level``'s values, as run()'s ``log_level`` takes them (in any case).
_LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
#: How help and errors name them: ``warn``, which run() takes too, included.
LOG_LEVELS_TEXT = "debug, info, warning (or warn), error, critical"


def _log_level(text: str) -> str:
    """``--log-level``'s value as run() names it: lower case, ``warn`` as ``warning``.

    Raises:
        argparse.ArgumentTypeError: not a level (argparse's "invalid choice"
            listed the choices without ``warn``, which is taken).
    """
    level = text.lower()
    level = "warning" if level == "warn" else level
    if level not in _LOG_LEVELS:
        raise argparse.ArgumentTypeError(
            f"must be one of {LOG_LEVELS_TEXT} (any case), not {text!r}"
        )
    return level


class _VersionAction(argparse.Action):
    """``--version``: the package's version, and exit."""

    def __call__(self, parser: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        from .._version import __version__

        write_line(f"{PROG} {__version__}")
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
            type=positive_seconds,
            default=60.0,
            metavar="S",
            help="seconds to wait for the reload to finish (default: 60)",
        )
        add("--no-wait", action="store_true", help="only send SIGHUP; do not wait for the result")
    elif name == "upgrade":
        add(
            "--timeout",
            type=positive_seconds,
            default=60.0,
            metavar="S",
            help="seconds the new process has to become ready (default: 60)",
        )
    elif name == "status":
        add("--json", action="store_true", help="print one JSON object")
        add(
            "--timeout",
            type=positive_seconds,
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
        # Any case, and "warn" for "warning", as run()'s log_level: `--log-level
        # DEBUG` is what many type.
        type=_log_level,
        metavar="LEVEL",
        help=f"{LOG_LEVELS_TEXT}; any case (default: info)",
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
        help="bind a socket: NAME=HOST:PORT, NAME=:PORT (all addresses), NAME=[V6]:PORT "
        "or NAME=unix:/PATH[?mode=0660] (repeatable)",
    )
    add("--user", help="user name or uid to drop to")
    add("--group", help="group name or gid to drop to")
    add(
        "--workdir",
        metavar="DIR",
        help="working directory (default: / once detached; `run` stays in the current one)",
    )
    add("--umask", metavar="OCTAL", help="file mode creation mask (default: 022)")
    add("--stdout", metavar="PATH", help="append the daemon's stdout to PATH")
    add("--stderr", metavar="PATH", help="append the daemon's stderr to PATH")
    add(
        "--shutdown-timeout",
        type=positive_seconds,
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
        type=seconds,
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
        type=positive_seconds,
        metavar="S",
        help="seconds to become ready before the start fails and the daemon is stopped "
        "(default: 90)",
    )
    # One or the other: with both, the last one would silently win.
    control = sub.add_mutually_exclusive_group()
    control.add_argument(
        "--control",
        metavar="PATH",
        help=(
            "control socket for status, reload, stop and upgrade"
            " (default: the pidfile's path + .ctl)"
        ),
    )
    control.add_argument("--no-control", action="store_true", help="no control socket")
