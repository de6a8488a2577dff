"""The phases in order, in the launching process: configure, acquire, detach, drop, run.

``launch`` carries a program from its options to its exit status; the public
``Daemon.run`` (``_daemon``) and the CLI call it. A process started by an
upgrade takes the successor's way instead (``_successor``).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ._prefork._config import Options, parse_options
from ._prefork._messages import broken_install, say
from ._prefork._readiness import LaunchResult, ReadinessPipe, hold_gc, release_gc
from ._run._hooks import Hooks, MainTarget, check_hook
from .exceptions import AlreadyRunningError, ConfigError, DaemonError, ExitCode, StartupError

if TYPE_CHECKING:
    from ._prefork._acquire import Acquired
    from ._prefork._adopt import Handoff

__all__ = [
    "LAUNCHING",
    "TARGET_IMPORT",
    "TargetCallsRun",
    "close_main",
    "launch",
    "start_warnings",
]

# --- the CLI's TARGET import (set by _importer) -------------------------------------


class TargetCallsRun(SystemExit):
    """``run()`` called while the CLI imports TARGET: refused, nothing acquired or forked."""


class _TargetImport:
    """Whether the CLI is importing TARGET, and where a ``run()`` during it was called.

    A module that calls ``aiodaemon.run()`` at import (no ``__main__`` guard)
    would otherwise start its own daemon, with its own options, from inside
    ``aiodaemon start``: the command line's options silently ignored.
    """

    __slots__ = ("active", "called_at")

    def __init__(self) -> None:
        self.active = False
        #: ``file:line`` of the refused ``run()`` call, None if there was none.
        self.called_at: str | None = None


TARGET_IMPORT = _TargetImport()


def _refuse_during_target_import(main: MainTarget) -> None:
    """Refuse a launch while the CLI imports TARGET (see :class:`_TargetImport`).

    Raises:
        TargetCallsRun: exit status 2; the CLI says what to fix.
    """
    if not TARGET_IMPORT.active:
        return
    close_main(main)
    here = os.path.dirname(__file__) + os.sep
    frame = sys._getframe(1)
    while frame.f_back is not None and frame.f_code.co_filename.startswith(here):
        frame = frame.f_back
    TARGET_IMPORT.called_at = f"{frame.f_code.co_filename}:{frame.f_lineno}"
    raise TargetCallsRun(ExitCode.USAGE)


# --- the phases -----------------------------------------------------------------------


class _Launching:
    """Whether a launch is under way in this process: in its launcher or its daemon."""

    __slots__ = ("under_way",)

    def __init__(self) -> None:
        self.under_way = False


#: Read by ``Daemon.run()`` called from a thread: while a launch is under way,
#: the CLI's as well as ``run()``'s own, ending the process there would kill
#: the daemon it runs.
LAUNCHING = _Launching()


def launch(
    hooks: Hooks,
    main: MainTarget,
    raw: Mapping[str, Any],
    *,
    on_ready: Callable[[int], None] | None = None,
    explain: Callable[[DaemonError], str] = str,
    status: Callable[[DaemonError], int] = lambda exc: exc.exit_code,
    raise_lost_race: bool = False,
) -> int:
    """Carry out every phase; return the exit status of this process.

    Errors before the fork are printed as one line on stderr, worded by
    ``explain`` (the CLI names its flags). ``on_ready(pid)`` runs in the
    launching process once a detached daemon is ready. ``status(exc)``: the
    exit status such an error means (the CLI's ``start`` follows LSB).
    ``raise_lost_race``: a pidfile locked by another daemon is raised, not said: the CLI waits
    for that daemon's verdict first. Returned, ``ALREADY_RUNNING`` (3) would
    be the program's own status too (``sys.exit(3)``), in its daemon.

    Raises:
        TargetCallsRun: called while the CLI imports TARGET (nothing done yet).
        AlreadyRunningError: with ``raise_lost_race``, in the launching process
            only, before anything was started (all of it given back).
    """
    LAUNCHING.under_way = True
    try:
        return _launch(hooks, main, raw, on_ready, explain, status, raise_lost_race)
    finally:
        LAUNCHING.under_way = False


def _launch(
    hooks: Hooks,
    main: MainTarget,
    raw: Mapping[str, Any],
    on_ready: Callable[[int], None] | None,
    explain: Callable[[DaemonError], str],
    status: Callable[[DaemonError], int],
    raise_lost_race: bool,
) -> int:
    """:func:`launch`, its launch marked as under way."""
    _refuse_during_target_import(main)
    # A run() before this one in this process parked the thread that bounds the
    # interpreter's exit: ended, or this run could not detach ("other threads run").
    earlier = sys.modules.get(f"{__package__}._run._process_end")
    if earlier is not None:
        earlier.disarm_at_exit()
    exit_mark = sys.modules.get(f"{__package__}._prefork._exit_mark")
    if exit_mark is not None:
        # The last run's daemon is over: this one marks its own exit.
        exit_mark.let_go()
    from ._prefork._inherited import LIFECYCLE_SIGNALS, reset_inherited_signals
    from ._prefork._stdfds import fill_std_fds

    # Before anything is opened: nothing acquired may land on fds 0-2.
    try:
        fill_std_fds()
    except DaemonError as exc:
        return _give_up(main, explain(exc), exc.exit_code)
    if os.getpid() == 1:
        from ._prefork._init import end_on_early_signals

        # Before the unblock: a stop held by the starter's mask ends us too.
        end_on_early_signals()
    # Only a process started by an upgrade loads the hand-off code this early
    # (the CLI may have taken the variable already).
    successor = "AIODAEMON_HANDOFF" in os.environ or "aiodaemon._prefork._adopt" in sys.modules
    reset_inherited_signals(successor=successor, handled=hooks.signals)

    # Everything the program and the start-up build lives as long as the
    # process: no collection until ready (see hold_gc).
    hold_gc()

    # Where an upgrade starts this program again (``python app.py`` is relative).
    from ._prefork._cwd import shell_directory

    launch_directory = shell_directory()
    if successor:
        from ._prefork._adopt import take_handoff

        try:
            handoff = take_handoff()
        except DaemonError as exc:
            return _give_up(main, str(exc), exc.exit_code)
        if handoff is not None:
            from ._successor import succeed

            return succeed(hooks, main, raw, handoff, launch_directory)
        reset_inherited_signals()  # not one after all: nothing stays held
    #: The signal mask from before the acquire phase held the daemon's signals.
    unheld: Iterable[int] | None = None
    try:
        options = parse_options(raw)
        check_main(main)
        detach = _should_detach(options)
        if detach and os.getpid() == 1:
            from ._prefork._init import detach_refusal

            raise StartupError(detach_refusal("aiodaemon run"))
        if detach:
            from ._prefork._detach import python_threads, warn_unseen_threads

            names = python_threads()
            if names:
                raise StartupError(f"cannot detach while other threads run ({', '.join(names)})")
            warn_unseen_threads("in a startup hook, after the detach")
        if os.environ.get("NOTIFY_SOCKET"):
            from ._run._systemd import notify_address

            # Refused before anything is acquired: found by the daemon, it left
            # the log and stdio files it had created.
            notify_address(os.environ)
        # The run phase's modules, loaded before the fork rather than in the
        # daemon: an import after the fork writes to pages it shares with the
        # waiting launcher (module dicts, interned strings, pymalloc pools), each
        # write a copy-on-write fault; loading them here saves the whole start
        # ~1.5 ms of CPU (benchmarks/detach.py --startup), and ~1 ms more with a
        # control socket. Before acquire: a broken install acquires nothing.
        loaded = _preload(options, detach=detach)
        from ._prefork import _privileges
        from ._prefork._acquire import acquire
        from ._prefork._detach import close_inherited_fds, enter_workdir, redirect_outputs
        from ._prefork._detach import detach as detach_process

        # From the pidfile's creation on, a stop, reload or reopen signal (or
        # one of on_signal's) waits until the daemon's loop handles it, as
        # from the pid's writing on (see _signal_mask): its default action
        # left an empty pidfile and a dead control socket behind. Not sooner:
        # a Ctrl-C while TARGET imports still ends the start at once. A
        # detaching start holds Ctrl-\ as well: it ends the launcher's wait
        # as Ctrl-C does (the daemon's own keeps its default action, below).
        quit_held = (signal.SIGQUIT,) if detach else ()
        unheld = signal.pthread_sigmask(
            signal.SIG_BLOCK, (*LIFECYCLE_SIGNALS, *hooks.signals, *quit_held)
        )
        # Imported before acquire: what it binds may leave no descriptor to open a module with.
        acquired = acquire(options)
    except AlreadyRunningError as exc:
        if raise_lost_race:
            _give_up(main, None, exc.exit_code, unheld)
            raise
        return _give_up(main, explain(exc), status(exc), unheld)
    except DaemonError as exc:
        return _give_up(main, explain(exc), status(exc), unheld)
    except ImportError as exc:  # a broken install (orjson, structlog): as the daemon would say it
        return _give_up(main, broken_install(exc), ExitCode.FAILURE, unheld)
    except BaseException:
        if unheld is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, unheld)
        raise
    for said in loaded:
        say(f"warning: {said}")
    for warning in acquired.warnings:  # the start goes on: a full disk may free up
        say(f"warning: {explain(warning)}")

    as_init = False
    # The one place the daemon gives back what it acquired, however it ends.
    # (A launcher never leaves detach_process: it exits with the daemon's verdict.)
    with acquired:
        if detach:

            def on_failure(result: LaunchResult) -> None:
                if result.timed_out and result.pid is None:
                    # Never heard of, the daemon may still start and write to its files.
                    acquired.release()
                else:
                    # Gone (waited for, or killed): it may have died before its first
                    # record (no thread to start), leaving the files it never wrote.
                    acquired.refuse(daemon_pid=result.pid)
                say(result.message)

            try:
                pipe = detach_process(
                    keep=acquired.keep_fds(),
                    stdout=acquired.stdout,
                    stderr=acquired.stderr,
                    on_ready=on_ready or (lambda pid: None),
                    on_failure=on_failure,
                    start_timeout=options.start_timeout,
                    shutdown_timeout=options.shutdown_timeout,
                    pidfile=None if options.pidfile is None else str(options.pidfile),
                    foreground="aiodaemon run",
                    # The wait's signals end it as before; a reopen, an upgrade
                    # or an on_signal signal sent to the launcher is dropped:
                    # it has neither logs nor handlers nor a daemon of its own
                    # (their default action ended it without a word).
                    launcher_mask=(
                        *(unheld or ()),
                        signal.SIGUSR1,
                        signal.SIGUSR2,
                        *(signum for signum in hooks.signals if signum != signal.SIGQUIT),
                    ),
                    leave_to_daemon=acquired.leave_to_daemon,
                )
            except StartupError as exc:  # no daemon was forked: only what we acquired to undo
                acquired.refuse()
                return _give_up(main, explain(exc), status(exc), unheld)
            if signal.SIGQUIT not in hooks.signals:
                # Held for the launcher (above): the daemon's ends it at once
                # (docs/lifecycle.md). A fork's pending set is empty.
                signal.pthread_sigmask(signal.SIG_UNBLOCK, (signal.SIGQUIT,))
            # The stdio files are on fds 1 and 2 now; the detach closed the originals.
            acquired.stdout = acquired.stderr = None
        else:
            pipe = ReadinessPipe(None, thaw=True)
            redirect_outputs(acquired.stdout, acquired.stderr)
            acquired.close_outputs()
            if _privileges.leaves_root(options):
                from ._run._systemd import default_notifier_fds

                # What root's launcher had open (an fd on /etc/shadow) must not
                # pass to the service account: the detach closes it the same way.
                close_inherited_fds([*acquired.keep_fds(), *default_notifier_fds()])
            if os.getpid() == 1:
                from ._prefork._init import split_init
                from ._run._signal_mask import LIFECYCLE_SIGNALS  # loaded by _preload

                as_init = True
                split_init(LIFECYCLE_SIGNALS, forward=hooks.signals)
        acquired.stack.enter_context(pipe)
        enter_workdir(
            options.workdir if options.chroot is None else "/", options.umask, detached=detach
        )
        code = become_daemon(
            hooks,
            main,
            options,
            acquired,
            pipe,
            foreground=not detach,
            container=as_init,
            launch_directory=launch_directory,
            explain=explain,
        )
    return end_daemon(code)


def start_warnings(pid: int, raw: Mapping[str, Any]) -> list[str]:
    """What a detached start tells its terminal once ready (in ``run()``'s keywords).

    Nothing records a daemon started without a pidfile (``stop``, ``status`` and
    ``reload`` need one), so its pid is the only way to it; and detached, records
    with nowhere to go end in ``/dev/null``, the error that may end it among them.
    """
    warnings = []
    if raw.get("pidfile") is None:
        warnings.append(
            "warning: started without pidfile=, so 'aiodaemon stop' cannot find it;"
            f" stop it with: kill {pid}"
        )
    if not any(raw.get(name) for name in ("log_file", "syslog", "stderr")):
        warnings.append(
            "warning: started without log_file=, syslog= or stderr=, so the daemon's log"
            " (even the error that may end it) goes nowhere"
        )
    return warnings


def _give_up(
    main: MainTarget, line: str | None, code: int, mask: Iterable[int] | None = None
) -> int:
    """Nothing was started: end the start's GC hold, close ``main``, say ``line``; ``code``.

    ``mask``: the signal mask to go back to, once said (a signal held meanwhile acts then).
    """
    release_gc()
    close_main(main)
    if line is not None:
        say(line)
    if mask is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    return code


def end_daemon(code: int) -> int:
    """The daemon's last step, bounded by its shutdown budget (see ``_process_end``)."""
    # Loaded with the run phase, before any chroot or privilege drop.
    from ._run._process_end import end_process

    return end_process(code)


def become_daemon(
    hooks: Hooks,
    main: MainTarget,
    options: Options,
    acquired: Acquired,
    pipe: ReadinessPipe,
    *,
    foreground: bool,
    container: bool = False,
    handoff: Handoff | None = None,
    launch_directory: str | None = None,
    explain: Callable[[DaemonError], str] = str,
) -> int:
    """Connect to the service manager, drop privileges, start logging, run: the exit status.

    A failure before the run is worded by ``explain``, as ``launch`` words its
    own (the CLI names its flags): a detached daemon, a fork of the launcher,
    holds the same function and sends the worded line over the readiness pipe
    for the launcher to print as it comes.
    """
    from ._run._signal_mask import lifecycle_signals_held

    # From before the pid is written until the loop's handlers exist, a stop,
    # reload or reopen signal, or one of on_signal's, waits instead of killing
    # us (see _signal_mask).
    with lifecycle_signals_held(hooks.signals):
        from ._run._runner import DaemonParts, run_daemon

        try:
            notifier = None
            # Only a service manager's daemon loads the notify protocol. Connected
            # before a chroot hides the socket's path; aiodaemon.sd_notify shares it
            # for the same reason.
            if os.environ.get("NOTIFY_SOCKET"):
                from ._run._systemd import Notifier, SuccessorNotifier, set_default_notifier

                if handoff is None:
                    notifier = Notifier.from_env()
                else:
                    notifier = SuccessorNotifier.for_successor(handoff.owns_watchdog)
                if notifier is not None:
                    acquired.stack.enter_context(notifier)
                set_default_notifier(notifier)
            from ._prefork._handoff import remember_launch_directory

            remember_launch_directory(launch_directory)
            from ._prefork._invocation import remember_invocation

            remember_invocation(launch_directory)
            if handoff is not None:
                # launch() loaded these before its fork; an upgrade's successor
                # comes through succeed() and loads them here.
                _preload(options)
            # Before a drop gives it up: that terminal's hang-up is a stop, not a
            # reload. Not an upgrade's successor's: its shell saw the foreground
            # job end with the old process, so no hang-up of the terminal is its.
            from ._prefork._stdfds import controlling_terminal

            terminal = controlling_terminal() if foreground and handoff is None else None
            if foreground and acquired.logs is not None:
                # Before a chroot or a drop: a descriptor of its own for the echo.
                acquired.logs.open_echo()
            from ._run._services import load_factories

            factories = load_factories()
            from ._prefork._privileges import drop_privileges

            if acquired.pidfile is not None and options.chroot is not None:
                acquired.pidfile.enter_chroot(options.chroot)
            if acquired.listeners is not None and options.chroot is not None:
                acquired.listeners.enter_chroot(options.chroot)
            if acquired.control is not None and options.chroot is not None:
                acquired.control.enter_chroot(options.chroot)
            if acquired.logs is not None and options.chroot is not None:
                outputs = [path for path in (options.stdout, options.stderr) if path is not None]
                acquired.logs.enter_chroot(options.chroot, outputs)
            drop_privileges(options)
            if acquired.pidfile is not None and handoff is None:
                # A successor writes its pid only at the hand-over (see _upgrade).
                acquired.pidfile.write_pid()
            if acquired.pidfile is not None:
                # Now, while descriptors are free: one may be short when it stops.
                acquired.pidfile.reserve_mark()
            from ._prefork._detach import close_in_forked_children

            for own in acquired.daemon_only_fds():
                close_in_forked_children(own)
            from ._logs._logging import start_logging

            assert acquired.logs is not None  # acquire() always opens the log targets
            logs = start_logging(
                acquired.logs, options, detached=not foreground, container=container
            )
        except Exception as exc:
            code = getattr(exc, "exit_code", ExitCode.FAILURE)
            message = (
                explain(exc) if isinstance(exc, DaemonError) else f"{type(exc).__name__}: {exc}"
            )
            pipe.fail(code, message)
            if foreground:
                say(message)
            close_main(main)
            return int(code)
        if handoff is not None:
            from ._prefork._adopt import SuccessorChannel
            from ._run._upgrade_service import await_handover

            assert isinstance(pipe, SuccessorChannel)
            pipe.pidfile, pipe.listeners, pipe.notifier = (
                acquired.pidfile,
                acquired.listeners,
                notifier,
            )
            pipe.control = acquired.control
            pipe.on_ready = await_handover
        parts = DaemonParts(
            options=options,
            listeners=acquired.listeners,
            control=acquired.control,
            pidfile=acquired.pidfile,
            pipe=pipe,
            notifier=notifier,
            logs=logs,
            log_targets=acquired.logs,
            foreground=foreground,
            factories=factories,
            terminal=terminal,
        )
        return run_daemon(main, hooks, parts)


def _maybe_foreground(options: Options) -> bool:
    """Whether the daemon may run in the foreground, as far as preloading goes.

    ``detach=None`` decides only later (supervised or not): a daemon that
    cannot load a module once it ran (chroot, a drop) counts as foreground.
    """
    if options.detach is None:
        return options.chroot is not None or options.identity is not None
    return not options.detach


def _preload(options: Options, *, detach: bool = False) -> list[str]:
    """Import what the run phase needs while the interpreter's files are still readable.

    ``detach``: the daemon will be forked, and lead a process group of its own.

    After a chroot or a drop to an unprivileged user, a lazy import would fail;
    a daemon that keeps its identity and root loads the rest when it needs it.
    Returns what the start should warn of (an installed uvloop that cannot be
    loaded).

    Raises:
        ConfigError: ``uvloop=True`` and uvloop cannot be loaded.
    """
    # What only the daemon uses (_invocation) is loaded here too: imported after
    # the fork, each page it touches is copied first (~0.5 ms more to ready).
    import orjson  # noqa: F401
    import structlog

    from ._logs import _logging
    from ._prefork import _handoff, _invocation, _privileges  # noqa: F401
    from ._prefork._pinned import pin
    from ._run import _context, _runner, _services, _serving, _signal_handlers, _signal_mask  # noqa: F401

    # Every daemon's SIGUSR2 service loads _upgrade_service (with _upgrade and
    # _handoff); an upgrade's own modules are read now and run once main runs
    # (see _pinned): read in the daemon, their ~40 KB of code cost it three
    # times the CPU.
    from ._run._upgrade_service import UPGRADE_PATH

    pin(UPGRADE_PATH)
    import resource

    if any(
        resource.getrlimit(limit)[0] != resource.RLIM_INFINITY
        for limit in (resource.RLIMIT_AS, resource.RLIMIT_DATA)
    ):
        # A daemon that can run out of address space must not learn it at its
        # exit: glibc maps libgcc_s when the interpreter's exit first ends a
        # thread, and aborts the process (SIGABRT, after an `exit` record of
        # status 0) when it cannot. Not for every daemon: ctypes costs ~3 ms.
        _privileges.load_unwinder()
    if options.health is not None:
        from ._run import _health  # noqa: F401
    if options.pidfile is not None:
        # Its removal marks the exit, also from a forced exit's signal handler.
        from ._prefork import _exit_mark  # noqa: F401
    if detach or os.getpgid(0) == os.getpid():
        # A forced exit kills the rest of the process group the daemon leads (see
        # _run._forced): a foreground one in its caller's group needs none of it.
        from ._prefork import _kill  # noqa: F401
    if options.control is not None:
        from ._run import _control_server, _upgrade_reloads  # noqa: F401
    if options.chroot is not None or options.identity is not None:
        import concurrent.futures.thread  # noqa: F401  (run_in_executor imports it lazily)
        import subprocess  # noqa: F401  (an upgrade's spawn imports these lazily)
        import traceback  # noqa: F401

        # The program's getaddrinfo on a str host; idna looks punycode up for a
        # non-ASCII label.
        from encodings import idna, punycode  # noqa: F401

        # A foreground daemon logging to a file echoes its warnings to a terminal;
        # one on a terminal, or with log_format="console", writes console lines.
        from ._logs import _console, _logecho  # noqa: F401

        if structlog.is_configured():
            # The program configured structlog itself: start_logging takes it over.
            from ._logs import _program_config  # noqa: F401

        # aiodaemon.sd_notify; _terminal for a foreground daemon's SIGHUP (a
        # hang-up is no reload).
        from ._prefork import _terminal  # noqa: F401
        from ._run import _systemd  # noqa: F401

    if options.stdout is not None or options.stderr is not None:
        # Reopened at a rotation; sys.stdout/sys.stderr drop what a full disk refuses.
        from ._logs import _fullstdio, _outputs  # noqa: F401
    elif _maybe_foreground(options) and _logging.reader_ends():
        # A foreground daemon's pipe or terminal may lose its reader (see _fullstdio).
        from ._logs import _fullstdio  # noqa: F401
    warnings = []
    asyncio_loop = options.uvloop is False
    if not asyncio_loop:
        try:
            from ._run import _uvloop_signals  # noqa: F401  (uvloop, and our loop on it)
        except ImportError as exc:
            if options.uvloop:
                raise ConfigError(
                    "uvloop", f"uvloop=True but uvloop cannot be loaded: {exc}"
                ) from exc
            if not (isinstance(exc, ModuleNotFoundError) and exc.name == "uvloop"):
                # Installed but broken (a bad copy, another glibc): the daemon
                # runs, but not on the loop its operator installed.
                warnings.append(
                    f"uvloop is installed but cannot be loaded ({exc}); running on asyncio's loop"
                )
            asyncio_loop = True
    if asyncio_loop:
        from ._run import _selector_loop  # noqa: F401  (asyncio's loop, in uvloop's place)
    return warnings


def _should_detach(options: Options) -> bool:
    if options.detach is not None:
        return options.detach
    from ._prefork._detach import is_supervised

    if not is_supervised():
        return True
    without_id = {k: v for k, v in os.environ.items() if k != "INVOCATION_ID"}
    if not is_supervised(without_id) and (os.isatty(0) or os.isatty(2)):
        # systemd sets INVOCATION_ID for every unit, and a desktop terminal may
        # run as one: its shells inherit it. The contract keeps the foreground
        # then; a person at a terminal is at least told why, and what to write.
        say(
            "note: staying in the foreground, as INVOCATION_ID is set (systemd sets it"
            " for a service, and some terminals pass it on); pass detach=True to detach"
        )
    return False


def check_main(main: object) -> None:
    """Refuse a ``main`` that is not an async function (with the right signature) nor a coroutine.

    Raises:
        ConfigError: naming ``main``.
    """
    if asyncio.iscoroutine(main):
        # A coroutine object runs once: given again after a run awaited it, it
        # failed in the daemon, after a detached start had reported it ready.
        if getattr(main, "cr_frame", True) is None or getattr(main, "cr_suspended", False):
            name = getattr(main, "__qualname__", "main")
            raise ConfigError(
                "main",
                f"the coroutine {name}() was already awaited or closed and cannot run"
                " again; pass the async function itself",
            )
        return
    try:
        check_hook(main, "main")
    except TypeError as exc:
        raise ConfigError("main", str(exc).removeprefix("main ")) from None


def close_main(main: object) -> None:
    """A coroutine object that will never run is closed, not left to warn."""
    if asyncio.iscoroutine(main):
        main.close()
