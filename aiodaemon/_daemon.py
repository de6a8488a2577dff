"""The Daemon object and the phases in order: configure, acquire, detach, drop, run."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from ._config import Options, parse_options
from ._hooks import (
    HookFunction,
    Hooks,
    Lifespan,
    LifespanFunction,
    MainTarget,
    check_hook,
    check_lifespan,
)
from ._messages import say
from ._readiness import LaunchResult, ReadinessPipe, hold_gc, release_gc
from .exceptions import ConfigError, DaemonError, ExitCode, StartupError

if TYPE_CHECKING:
    from typing import Unpack

    from ._acquire import Acquired
    from ._adopt import Handoff
    from ._options import DaemonOptions

__all__ = [
    "Daemon",
    "default_daemon",
    "lifespan",
    "on_reload",
    "on_shutdown",
    "on_signal",
    "on_startup",
    "readiness_check",
    "run",
]

F = TypeVar("F", bound=HookFunction)
L = TypeVar("L", bound=LifespanFunction)


class Daemon:
    """One daemon: its lifecycle hooks and ``run``.

    The module-level ``aiodaemon.on_startup``, ``aiodaemon.run`` and the other
    decorators use one default instance; a process is one daemon. A ``Daemon``
    object suits programs that prefer explicit objects to module state, and it
    is a CLI target (``aiodaemon start app:daemon``).

    Examples:
        ```python
        import aiodaemon

        daemon = aiodaemon.Daemon()

        @daemon.on_startup
        async def connect() -> None: ...

        async def main(ctx: aiodaemon.Context) -> None:
            await ctx.wait_stopping()

        if __name__ == "__main__":
            daemon.run(main, pidfile="/run/app.pid")
        ```
    """

    def __init__(self, main: MainTarget | None = None) -> None:
        """Create a daemon, optionally with its ``main`` (what the CLI runs for a Daemon target).

        Args:
            main: the program: an async function taking no argument or a
                ``Context``, or a coroutine object.

        Raises:
            TypeError: ``main`` is given but is not an async function or coroutine.
        """
        if main is not None and not asyncio.iscoroutine(main):
            check_hook(main, "main")
        self.main = main
        self.hooks = Hooks()

    def on_startup(self, fn: F) -> F:
        """Register an async startup hook; hooks run in registration order before ready.

        The daemon is ready (the launching command exits 0, systemd gets
        ``READY=1``) once every startup hook has returned. A hook that raises
        fails the start: the launching command prints its error and exits 1.

        Args:
            fn: an async function taking no argument or the ``Context``.

        Returns:
            ``fn`` itself, so this works as a decorator.

        Raises:
            TypeError: ``fn`` is not an async function of zero or one argument.
        """
        check_hook(fn, "on_startup hook")
        self.hooks.startup.append(fn)
        return fn

    def on_reload(self, fn: F) -> F:
        """Register an async reload hook, run in registration order on SIGHUP.

        Also run by ``aiodaemon reload`` and ``ctx.request_reload()``. Reloads
        never overlap; requests during one coalesce into one more. The first
        hook that raises ends the run (later hooks would build on a step that
        did not happen): the error is logged and reported to ``aiodaemon
        reload``, and the daemon keeps running.

        Args:
            fn: an async function taking no argument or the ``Context``.

        Returns:
            ``fn`` itself, so this works as a decorator.

        Raises:
            TypeError: ``fn`` is not an async function of zero or one argument.
        """
        check_hook(fn, "on_reload hook")
        self.hooks.reload.append(fn)
        return fn

    def on_shutdown(self, fn: F) -> F:
        """Register an async shutdown hook; hooks run in reverse registration order.

        Shutdown hooks run whenever shutdown begins after startup began: also
        after a failed startup hook or a stop during startup, so they must
        tolerate a setup that never ran (``lifespan`` pairs setup and
        teardown strictly). They run after servers stopped accepting and
        requests in flight finished, and before what is left is cancelled;
        a hook that raises is logged and the others still run.

        Args:
            fn: an async function taking no argument or the ``Context``.

        Returns:
            ``fn`` itself, so this works as a decorator.

        Raises:
            TypeError: ``fn`` is not an async function of zero or one argument.
        """
        check_hook(fn, "on_shutdown hook")
        self.hooks.shutdown.append(fn)
        return fn

    def readiness_check(self, fn: F) -> F:
        """Register an async readiness check, run on each ``GET /readyz`` of ``health=``.

        Returning False or raising makes ``/readyz`` answer 503; each check has
        one second. Checks run concurrently, and concurrent probes share one run.

        Args:
            fn: an async function taking no argument or the ``Context``,
                returning a bool (None counts as ready).

        Returns:
            ``fn`` itself, so this works as a decorator.

        Raises:
            TypeError: ``fn`` is not an async function of zero or one argument.
        """
        check_hook(fn, "readiness_check")
        self.hooks.readiness.append(fn)
        return fn

    def on_signal(self, signum: int) -> Callable[[F], F]:
        """Register an async handler for ``signum``, a signal the framework does not own.

        Use it as ``@daemon.on_signal(signal.SIGWINCH)``. The handler takes no
        argument or the Context. Runs of one handler never overlap: signals
        that arrive during a run coalesce into one more run after it. A
        handler that raises is logged at error and the daemon keeps running.
        Once shutdown begins no run starts, and a running handler is cancelled
        before the shutdown hooks run.

        Args:
            signum: the signal number, e.g. ``signal.SIGWINCH`` or ``signal.SIGRTMIN + 1``.

        Returns:
            A decorator registering the async handler and returning it.

        Raises:
            ValueError: ``signum`` is no signal, cannot be caught, or is one
                the framework owns (SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2,
                SIGCHLD); the message names the hook to use instead.
            TypeError: ``signum`` is not an int, or (from the decorator) the
                handler is not an async function of zero or one argument.
        """
        from ._signal_handlers import check_handler, check_signal

        check_signal(signum)

        def register(fn: F) -> F:
            number = check_handler(signum, fn)
            self.hooks.signals.setdefault(number, []).append(fn)
            return fn

        return register

    def lifespan(self, fn: L) -> L:
        """Register an async generator with one ``yield``: setup before it, teardown after.

        The setup runs among the startup hooks (in registration order), the
        teardown at shutdown among the shutdown hooks (in reverse order), and
        only if the setup completed. A setup that raises is a failed startup.

        Args:
            fn: an async generator function taking no argument or the
                ``Context``, with exactly one ``yield``.

        Returns:
            ``fn`` itself, so this works as a decorator.

        Raises:
            TypeError: ``fn`` is not an async generator function of zero or one argument.

        Examples:
            ```python
            @aiodaemon.lifespan
            async def database(ctx: aiodaemon.Context):
                pool = await open_pool()
                yield
                await pool.close()  # only if open_pool() succeeded
            ```
        """
        check_lifespan(fn)
        span = Lifespan(fn)
        self.hooks.startup.append(span)
        self.hooks.shutdown.append(span)
        return fn

    def run(self, main: MainTarget | None = None, **options: Unpack[DaemonOptions]) -> NoReturn:
        """Run ``main`` (default: the one given at construction) and exit with its status.

        Carries out every phase: configure (validate the options), acquire
        (pidfile lock, sockets, log files, control socket), detach, drop
        privileges, run. In the launching process of a detached daemon, this
        exits 0 once the daemon is ready, or with the daemon's status and its
        error on stderr if it fails first.

        Args:
            main: the program: an async function taking no argument or a
                ``Context``, or a coroutine object; default: ``Daemon(main)``'s.
            **options: keyword options, typed by ``DaemonOptions`` and listed
                in the documentation's options table (``pidfile``, ``listen``,
                ``log_file``, ``user``, ``shutdown_timeout``...).

        Raises:
            SystemExit: always, with the exit status (``ExitCode``): 0 after a
                graceful shutdown, 1 on a failure, 2 on a bad option (one line
                on stderr, nothing started), 3 when already running, 4 when the
                shutdown timed out, 128 + n after a forced second signal n.
        """
        target = main if main is not None else self.main
        if _loop_is_running():
            # Forking, or blocking this thread on a second loop, under a running
            # loop cannot work: say so before anything starts.
            _close_main(target)
            say(
                "run() was called from inside a running event loop; "
                "call aiodaemon.run(main) at the top level of the program "
                "(not under asyncio.run() or from async code)"
            )
            raise SystemExit(ExitCode.USAGE)
        if target is None:
            say("main: no main given to run() nor to Daemon()")
            raise SystemExit(ExitCode.USAGE)
        raise SystemExit(launch(self, target, options))


def _loop_is_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def launch(
    daemon: Daemon,
    main: MainTarget,
    raw: Mapping[str, Any],
    *,
    on_ready: Callable[[int], None] | None = None,
    explain: Callable[[DaemonError], str] = str,
) -> int:
    """Carry out every phase; return the exit status of this process.

    Errors before the fork are printed as one line on stderr, worded by
    ``explain`` (the CLI names its flags). ``on_ready(pid)`` runs in the
    launching process once a detached daemon is ready.
    """
    from ._stdfds import fill_std_fds

    # Before anything is opened: nothing acquired may land on fds 0-2.
    fill_std_fds()

    # Everything the program and the start-up build lives as long as the
    # process: no collection until ready (see hold_gc).
    hold_gc()

    # Where an upgrade starts this program again (``python app.py`` is relative).
    launch_directory = _getcwd()
    # Only a process started by an upgrade loads the hand-off code this early
    # (the CLI may have taken the variable already).
    if "AIODAEMON_HANDOFF" in os.environ or "aiodaemon._adopt" in sys.modules:
        from ._adopt import take_handoff

        try:
            handoff = take_handoff()
        except DaemonError as exc:
            release_gc()
            _close_main(main)
            say(str(exc))
            return exc.exit_code
        if handoff is not None:
            return _succeed(daemon, main, raw, handoff, launch_directory)
    try:
        options = parse_options(raw)
        _check_main(main)
        detach = _should_detach(options)
        if detach and threading.active_count() > 1:
            names = ", ".join(
                t.name for t in threading.enumerate() if t is not threading.main_thread()
            )
            raise StartupError(f"cannot detach while other threads run ({names})")
        from ._acquire import acquire

        acquired = acquire(options)
    except DaemonError as exc:
        release_gc()
        _close_main(main)
        say(explain(exc))
        return exc.exit_code

    # The run phase's modules, loaded before the fork rather than in the daemon:
    # an import after the fork writes to pages it shares with the waiting
    # launcher (module dicts, interned strings, pymalloc pools), each write a
    # copy-on-write fault; loading them here costs the whole start ~1.5 ms less
    # CPU (benchmarks/detach.py --startup). _preload adds what options need;
    # every daemon's SIGUSR2 service loads _upgrade (and with it _handoff).
    from . import (  # noqa: F401
        _handoff,
        _logging,
        _privileges,
        _runtime,
        _services,
        _signal_handlers,
        _upgrade,
    )
    from ._detach import detach as detach_process
    from ._detach import enter_workdir, redirect_outputs

    as_init = False
    # The one place the daemon gives back what it acquired, however it ends.
    # (A launcher never leaves detach_process: it exits with the daemon's verdict.)
    with acquired:
        if detach:

            def on_failure(result: LaunchResult) -> None:
                acquired.release(daemon_pid=result.pid)
                say(result.message)

            pipe = detach_process(
                keep=acquired.keep_fds(),
                stdout=acquired.stdout,
                stderr=acquired.stderr,
                on_ready=on_ready or (lambda pid: None),
                on_failure=on_failure,
                start_timeout=options.start_timeout,
                shutdown_timeout=options.shutdown_timeout,
            )
            # The stdio files are on fds 1 and 2 now; the detach closed the originals.
            acquired.stdout = acquired.stderr = None
        else:
            pipe = ReadinessPipe(None, thaw=True)
            redirect_outputs(acquired.stdout, acquired.stderr)
            acquired.close_outputs()
            if os.getpid() == 1:
                from ._init import split_init

                as_init = True
                split_init(forward=daemon.hooks.signals)
        acquired.stack.enter_context(pipe)
        enter_workdir(options.workdir if options.chroot is None else "/", options.umask)
        return _become_daemon(
            daemon,
            main,
            options,
            acquired,
            pipe,
            foreground=not detach,
            container=as_init,
            launch_directory=launch_directory,
        )


def _succeed(
    daemon: Daemon,
    main: MainTarget,
    raw: Mapping[str, Any],
    handoff: Handoff,
    launch_directory: str | None,
) -> int:
    """Start as an upgrade's successor: adopt the old daemon's descriptors, no detach."""
    from ._adopt import SuccessorChannel, adopt
    from ._detach import enter_workdir

    pipe = SuccessorChannel(handoff)
    try:
        options = _successor_options(raw)
        _check_main(main)
        acquired = adopt(options, handoff)
    except DaemonError as exc:
        pipe.fail(exc.exit_code, str(exc))
        say(str(exc))
        _close_main(main)
        return exc.exit_code
    with acquired:
        acquired.stack.enter_context(pipe)
        enter_workdir(options.workdir, options.umask)
        return _become_daemon(
            daemon,
            main,
            options,
            acquired,
            pipe,
            foreground=not handoff.detached,
            handoff=handoff,
            launch_directory=launch_directory,
        )


def _successor_options(raw: Mapping[str, Any]) -> Options:
    """The options, the pidfile and control paths checked against inherited fds, not by path.

    After a privilege drop their directory may be root-only: the successor
    cannot look there, but it can check the descriptors it inherits.

    Raises:
        ConfigError: an option is invalid.
        StartupError: we do not run as the configured user.
    """
    rest = dict(raw)
    pidfile = _absolute("pidfile", rest.pop("pidfile", None))
    control_raw = rest.pop("control", None)
    control = None if control_raw is False else _absolute("control", control_raw)
    if control_raw is None and pidfile is not None:
        control = pidfile + ".ctl"
    # Files the old daemon opened and we inherit (log file, fds 1 and 2): their
    # directory may be closed to us as well.
    log_file = _absolute("log_file", rest.pop("log_file", None))
    stdout = _absolute("stdout", rest.pop("stdout", None))
    stderr = _absolute("stderr", rest.pop("stderr", None))
    options = parse_options(rest)._replace(
        pidfile=pidfile, control=control, log_file=log_file, stdout=stdout, stderr=stderr
    )
    identity = options.identity
    if identity is not None:
        # The drop cannot be redone without root; it must already hold.
        if identity.uid is not None and os.getresuid() != (identity.uid,) * 3:
            raise StartupError(f"upgrade: running as uid {os.getresuid()}, not {identity.uid}")
        if identity.gid is not None and os.getresgid() != (identity.gid,) * 3:
            raise StartupError(f"upgrade: running as gid {os.getresgid()}, not {identity.gid}")
    return options


def _getcwd() -> str | None:
    try:
        return os.getcwd()
    except OSError:
        return None


def _absolute(option: str, value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str | os.PathLike):
        text = os.fspath(value)
        if isinstance(text, str) and text:
            return os.path.abspath(text)
    raise ConfigError(option, f"must be a path, not {value!r}")


def _become_daemon(
    daemon: Daemon,
    main: MainTarget,
    options: Options,
    acquired: Acquired,
    pipe: ReadinessPipe,
    *,
    foreground: bool,
    container: bool = False,
    handoff: Handoff | None = None,
    launch_directory: str | None = None,
) -> int:
    from ._runtime import DaemonParts, run_daemon

    try:
        notifier = None
        # Only a service manager's daemon loads the notify protocol. Connected
        # before a chroot hides the socket's path; aiodaemon.sd_notify shares it
        # for the same reason.
        if os.environ.get("NOTIFY_SOCKET"):
            from ._systemd import Notifier, SuccessorNotifier, set_default_notifier

            if handoff is None:
                notifier = Notifier.from_env()
            else:
                notifier = SuccessorNotifier.for_successor(handoff.owns_watchdog)
            if notifier is not None:
                acquired.stack.enter_context(notifier)
            set_default_notifier(notifier)
        from ._handoff import remember_launch_directory

        remember_launch_directory(launch_directory)
        _preload(options)
        from ._services import load_factories

        factories = load_factories()
        from ._privileges import drop_privileges

        if acquired.pidfile is not None and options.chroot is not None:
            acquired.pidfile.enter_chroot(options.chroot)
        drop_privileges(options)
        if acquired.pidfile is not None and handoff is None:
            # A successor writes its pid only at the hand-over (see _upgrade).
            acquired.pidfile.write_pid()
        from ._logging import start_logging

        assert acquired.logs is not None  # acquire() always opens the log targets
        logs = start_logging(acquired.logs, options, detached=not foreground, container=container)
    except Exception as exc:
        code = getattr(exc, "exit_code", ExitCode.FAILURE)
        message = str(exc) if isinstance(exc, DaemonError) else f"{type(exc).__name__}: {exc}"
        pipe.fail(code, message)
        if foreground:
            say(message)
        _close_main(main)
        return int(code)
    if handoff is not None:
        from ._adopt import SuccessorChannel
        from ._upgrade import await_handover

        assert isinstance(pipe, SuccessorChannel)
        pipe.pidfile, pipe.listeners, pipe.notifier = acquired.pidfile, acquired.listeners, notifier
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
    )
    return run_daemon(main, daemon.hooks, parts)


def _preload(options: Options) -> None:
    """Import what the run phase needs while the interpreter's files are still readable.

    After a chroot or a drop to an unprivileged user, a lazy import would fail;
    a daemon that keeps its identity and root loads the rest when it needs it.
    """
    import orjson  # noqa: F401
    import structlog  # noqa: F401

    from . import _context, _logging, _runtime, _serving  # noqa: F401

    if options.health is not None:
        from . import _health  # noqa: F401
    if options.control is not None:
        # __version__ reads package metadata (for the control socket's status).
        from . import __version__, _control_server  # noqa: F401
    if options.chroot is not None or options.identity is not None:
        import concurrent.futures.thread  # noqa: F401  (run_in_executor imports it lazily)
        import encodings.idna  # noqa: F401  (getaddrinfo on a str host)
        import secrets  # noqa: F401  (an upgrade's spawn imports these lazily)
        import subprocess  # noqa: F401
        import traceback  # noqa: F401

        # aiodaemon.sd_notify; the run phase imports _upgrade for SIGUSR2.
        from . import _systemd, _upgrade  # noqa: F401

    if options.uvloop is not False:
        try:
            import uvloop  # noqa: F401
        except ImportError:
            if options.uvloop:
                raise


def _should_detach(options: Options) -> bool:
    if options.detach is not None:
        return options.detach
    from ._detach import is_supervised

    return not is_supervised()


def _check_main(main: object) -> None:
    if asyncio.iscoroutine(main):
        return
    try:
        check_hook(main, "main")
    except TypeError as exc:
        raise ConfigError("main", str(exc).removeprefix("main ")) from None


def _close_main(main: object) -> None:
    """A coroutine object that will never run is closed, not left to warn."""
    if asyncio.iscoroutine(main):
        main.close()


default_daemon = Daemon()

on_startup = default_daemon.on_startup
on_reload = default_daemon.on_reload
on_shutdown = default_daemon.on_shutdown
lifespan = default_daemon.lifespan
readiness_check = default_daemon.readiness_check
on_signal = default_daemon.on_signal


def run(main: MainTarget, **options: Unpack[DaemonOptions]) -> NoReturn:
    """Run ``main`` as a daemon with the hooks of the module-level decorators.

    The same as ``Daemon.run`` on the default ``Daemon``: validates every
    option, acquires the pidfile, sockets and log files, detaches (unless
    supervised), drops privileges and runs ``main`` on uvloop until a signal or
    its return; then exits. Call it at the top level of the program, never
    from inside a running event loop.

    Args:
        main: an async function taking no argument or a ``Context``, or a
            coroutine object.
        **options: keyword options, typed by ``DaemonOptions`` (a type checker
            catches a misspelt or mistyped one) and listed in the
            documentation's options table.

    Raises:
        SystemExit: always, with the exit status (``ExitCode``).

    Examples:
        ```python
        import aiodaemon

        async def main(ctx: aiodaemon.Context) -> None:
            await ctx.start_server(handle, "http")
            await ctx.wait_stopping()

        if __name__ == "__main__":
            aiodaemon.run(main, pidfile="/run/app.pid", listen={"http": "127.0.0.1:8080"},
                          log_file="/var/log/app.jsonl", user="app")
        ```
    """
    default_daemon.run(main, **options)
