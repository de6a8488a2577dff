"""The ``aiodaemon`` command once loaded: parse, dispatch to the command, exit status.

Every usage error is one line on stderr and exit status 2, before anything is
acquired or forked; the daemon's own errors come back through
:func:`aiodaemon._launch.launch`. The entry point is :mod:`._main`, which holds
Ctrl-C off while this module loads.

Each command's module is imported only when it runs: the control commands
(status, stop, reload, upgrade) import neither asyncio, structlog nor the
runtime; only run, start and restart (:mod:`._daemon_commands`) load the
daemon's side, so an operator's ``aiodaemon status`` costs little more than
starting Python.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from collections.abc import Callable, Sequence

from .._prefork._messages import silence
from .._prefork._stdfds import fill_std_fds
from ..exceptions import DaemonError, ExitCode
from ._args import UsageError, control_path, owner
from ._parser import PROG, build_parser, error

TYPE_CHECKING = False  # not typing's: see aiodaemon/__init__.py
if TYPE_CHECKING:
    from typing import NoReturn

__all__ = ["dispatch"]


def _did_you_mean(parser: argparse.ArgumentParser, extra: Sequence[str]) -> str:
    """``; did you mean --pidfile?`` for a misspelt flag in ``extra`` (none from 3.11 argparse)."""
    import difflib  # only on this error path

    known = sorted({flag for action in parser._actions for flag in action.option_strings})
    for arg in extra:
        if arg.startswith("-") and arg != "-":
            # The closest one only, as Python 3.14's argparse (suggest_on_error).
            matches = difflib.get_close_matches(arg.partition("=")[0], known, n=1)
            if matches:
                return f"; did you mean {matches[0]}?"
    return ""


def dispatch(argv: Sequence[str] | None) -> int:
    """Run the command ``argv`` (None: the process's own arguments) says; its exit status.

    Ctrl-C once the command is known ends it with 130 (saying what goes on in
    the daemon, if anything), and SIGTERM, SIGHUP or SIGQUIT with 128 + n, said
    alike (see :mod:`.._prefork._interrupts`); a Ctrl-C before (its arguments being
    parsed) reaches the caller as :exc:`KeyboardInterrupt`.
    """
    # A standard stream closed by the caller (`2>&-`, cron) is /dev/null to us:
    # Python's print() would send a message meant for a closed stderr to stdout.
    unfilled: DaemonError | None = None
    try:
        fill_std_fds()
    except DaemonError as exc:
        unfilled = exc  # said once the command is known: its exit status depends on it
    if os.getpid() == 1:
        from .._prefork._init import end_on_early_signals

        # A container's entrypoint: a SIGTERM while TARGET imports (seconds,
        # for some programs) must end the start, not be dropped by the kernel.
        end_on_early_signals()
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
        args.parser.error(
            f"unrecognized arguments: {' '.join(extra)}{_did_you_mean(args.parser, extra)}"
        )
    command: Callable[[argparse.Namespace], int] = args.handler
    from .._prefork._interrupts import end_interrupts, interrupt_on_signals, interrupting_signal

    try:
        interrupt_on_signals()
        if unfilled is not None:
            return _failed(args, unfilled)
        _check_path_args(args)
        return command(args)
    except DaemonError as exc:
        # What the system refuses every command alike (no pidfd_open on an old
        # kernel or under a strict seccomp profile): one line, not a traceback.
        return _failed(args, exc)
    except UsageError as exc:
        error(f"{PROG}: {exc}")
        _abandon_handoff(ExitCode.USAGE, str(exc))
        return ExitCode.USAGE
    except KeyboardInterrupt:
        # Ctrl-C (or a kill, a closed terminal, Ctrl-\) while the CLI itself
        # waits (stop, reload, upgrade, start before the fork).
        signum = interrupting_signal()
        _say_interrupted(args, signum)
        return 128 + signum
    except ImportError as exc:
        # One of aiodaemon's own dependencies (TARGET's failures are usage
        # errors, said by the importer): installed with pip --no-deps, vendored
        # without its compiled parts. As run() says it (_launch), not a traceback.
        from .._prefork._messages import broken_install

        error(f"{PROG}: {broken_install(exc)}")
        _abandon_handoff(ExitCode.FAILURE, broken_install(exc))
        return ExitCode.FAILURE
    except MemoryError as exc:
        # Loading the program or the runtime under a low RLIMIT_AS: a traceback
        # through importlib says less than the line that asked for the memory.
        _out_of_memory(exc)
    except OSError as exc:
        # The same, met by importlib reading a module (ENOMEM from mmap or read).
        if exc.errno != errno.ENOMEM:
            raise
        _out_of_memory(exc)
    except BrokenPipeError:
        # Output nobody reads any more (`| head -1`) where write_line was not
        # used: no traceback; the command's own writes go through write_line.
        silence(sys.stdout)
        silence(sys.stderr)
        return ExitCode.FAILURE
    finally:
        # Ended: a signal from here on must not raise inside the interpreter's teardown.
        end_interrupts()
        # An upgrade's successor that ends here, whatever the reason, closes the
        # channel its start did not use (the old daemon then sees it end).
        _abandon_handoff()


#: What goes on in the daemon when the command waiting for it is interrupted:
#: a reload it has not read yet runs once read; an upgrade is not started once
#: nobody waits for it (see the control protocol's ``NOT_BEGUN_WHEN_HUNG_UP``).
_GOES_ON = {
    "reload": "a reload the daemon took in goes on",
    "upgrade": "an upgrade the daemon took in goes on (one it had not read yet is not started)",
}


def _say_interrupted(args: argparse.Namespace, signum: int) -> None:
    """Tell what ``signum`` (Ctrl-C) on a waiting ``reload``, ``upgrade`` or ``stop`` left going on.

    The daemon carries on with a request it took in: exiting without a word
    left the user to guess whether it was cancelled.
    """
    interrupted = _interrupted(signum)
    if args.command in ("stop", "restart"):
        _say_stop_interrupted(args.command, interrupted)
        return
    what = _GOES_ON.get(args.command)
    pidfile = getattr(args, "pidfile", None)
    if what is None or pidfile is None:
        return
    import shlex  # only on this rare path

    error(
        f"{PROG}: {interrupted}; {what}:"
        f" `{PROG} status --pidfile {shlex.quote(pidfile)}` tells how it ends"
    )


def _interrupted(signum: int) -> str:
    """``interrupted``, naming the signal when it was not Ctrl-C: ``interrupted by SIGTERM``."""
    import signal  # loaded already, by _prefork._interrupts

    if signum == signal.SIGINT:
        return "interrupted"
    return f"interrupted by {signal.Signals(signum).name}"


def _say_stop_interrupted(command: str, interrupted: str) -> None:
    """Tell that the daemon a ``stop`` (or ``restart``) asked or signalled goes on stopping."""
    stopping = sys.modules.get(f"{__package__}._stop")
    pid = None if stopping is None else stopping.stopping_unwaited()
    if pid is None:
        return  # nothing asked nor signalled yet (or it has exited): nothing to tell
    nothing = "; nothing started" if command == "restart" else ""
    error(f"{PROG}: {interrupted}; the daemon (pid {pid}) goes on stopping{nothing}")


def _abandon_handoff(code: int | None = None, message: str = "") -> None:
    """Tell an upgrading old daemon why we, its successor, end before our start (if we are)."""
    adopt = sys.modules.get("aiodaemon._prefork._adopt")
    if adopt is not None:
        adopt.abandon_handoff(code, message)


def _out_of_memory(exc: BaseException) -> NoReturn:
    """Say that the start ran out of memory, where, and under which limit, in one line; exit 1.

    Through ``os._exit``: an interpreter out of memory cannot tear itself down
    quietly (a screenful of "Exception ignored ... MemoryError" would follow),
    and what the start acquired is released already (the launch's stack).
    """
    try:
        _abandon_handoff(ExitCode.FAILURE, "out of memory")
        error(f"{PROG}: out of memory while starting{_where(exc)}{_address_space_limit()}")
        sys.stdout.flush()
    except (MemoryError, OSError, SystemError):
        # So close to the limit that even the line could not be built: a
        # constant needs no allocation (nor an import, as contextlib would).
        try:  # noqa: SIM105
            os.write(2, b"aiodaemon: out of memory while starting\n")
        except OSError:
            pass
    os._exit(ExitCode.FAILURE)


def _where(exc: BaseException) -> str:
    """`` (at FILE, line N)``: the innermost frame of ``exc`` outside the import machinery."""
    where = ""
    tb = exc.__traceback__
    # Walked by hand: the traceback module may not load without memory.
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if not filename.startswith("<frozen "):
            where = f" (at {filename}, line {tb.tb_lineno})"
        tb = tb.tb_next
    return where


def _address_space_limit() -> str:
    """``; RLIMIT_AS is N MiB (...)`` when the process has a finite one, else nothing."""
    try:
        from .._prefork._inherited import address_space_limit

        limit = address_space_limit()
    # No room left to load it: say what we know. SystemError too: CPython's
    # import machinery out of memory may fail without an exception set.
    except (ImportError, MemoryError, OSError, SystemError):
        return ""
    return f"; {limit}" if limit else ""


def _failed(args: argparse.Namespace, exc: DaemonError) -> int:
    """Say ``exc`` in one line; the exit status it means for this command."""
    error(f"{PROG}: {exc}")
    if args.command == "status":
        from ._status_command import StatusCode

        return StatusCode.UNKNOWN  # its 1 would say "dead, pidfile left"
    return exc.exit_code


def _check_path_args(args: argparse.Namespace) -> None:
    """``--pidfile ""`` or ``--control ""`` names no file: every command refuses it, as ``start``.

    An unset variable (``--control "$CTL"``) would otherwise be a socket nobody
    serves: ``reload`` and ``upgrade`` fell back to their bare signals.
    """
    for flag in ("pidfile", "control"):
        if getattr(args, flag, None) == "":
            raise UsageError(f"--{flag}: must not be empty")


# --- commands -----------------------------------------------------------------------


def _cmd_daemon(args: argparse.Namespace) -> int:
    from ._daemon_commands import daemon_command  # only run, start and restart load it

    return daemon_command(args)


def _cmd_stop(args: argparse.Namespace) -> int:
    from ._stop import stop  # only `stop` and `restart` load it

    pidfile: str = args.pidfile
    return stop(pidfile, args.timeout, control_path(args, pidfile), owner=owner(args))


def _cmd_reload(args: argparse.Namespace) -> int:
    from ._reload_command import reload

    pidfile: str = args.pidfile
    return reload(
        pidfile,
        control_path(args, pidfile),
        timeout=args.timeout,
        wait=not args.no_wait,
        owner=owner(args),
    )


def _cmd_upgrade(args: argparse.Namespace) -> int:
    from ._upgrade_command import upgrade

    pidfile: str = args.pidfile
    return upgrade(pidfile, control_path(args, pidfile), args.timeout, owner=owner(args))


def _cmd_status(args: argparse.Namespace) -> int:
    from ._status_command import status

    pidfile: str = args.pidfile
    return status(
        pidfile,
        control_path(args, pidfile),
        as_json=args.json,
        timeout=args.timeout,
        owner=owner(args),
    )


_HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": _cmd_daemon,
    "start": _cmd_daemon,
    "stop": _cmd_stop,
    "restart": _cmd_daemon,
    "reload": _cmd_reload,
    "status": _cmd_status,
    "upgrade": _cmd_upgrade,
}
