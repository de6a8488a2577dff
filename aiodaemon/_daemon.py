"""The Daemon object: its hooks, the module-level decorators, and ``run``.

The phases ``run`` goes through are in ``_launch``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from ._launch import LAUNCHING, close_main, launch, start_warnings
from ._prefork._messages import flush_stdio, say
from ._run._hooks import (
    Hooks,
    Lifespan,
    MainTarget,
    UserCheck,
    UserHook,
    UserLifespan,
    UserMain,
    check_hook,
    check_lifespan,
    entry_name,
)
from .exceptions import ExitCode

if TYPE_CHECKING:
    from typing import Unpack

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

if TYPE_CHECKING:
    F = TypeVar("F", bound=UserHook)
    L = TypeVar("L", bound=UserLifespan)
    C = TypeVar("C", bound=UserCheck)
else:
    # The bounds are strings at run time (Context is imported for type checkers
    # only), and TypeVar compiles a string bound (a ForwardRef) at every import:
    # ~0.2 M instructions each on every start, for type checkers alone.
    F = L = C = TypeVar("F")


class Daemon:
    """One daemon: its lifecycle hooks and ``run``.

    The module-level ``aiodaemon.on_startup``, ``aiodaemon.run`` and the other
    decorators use one default instance; a process is one daemon. A ``Daemon``
    object suits programs that prefer explicit objects to module state, and it
    is a CLI target (``aiodaemon start app:daemon``).

    Attributes:
        main: the program ``run()`` and the CLI run when given none:
            ``Daemon(main)``'s, or a subclass's own ``async def main`` method.

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

    def __init__(self, main: UserMain | None = None) -> None:
        """Create a daemon, optionally with its ``main`` (what the CLI runs for a Daemon target).

        Args:
            main: the program: an async function taking no argument or a
                ``Context``, or a coroutine object.

        Raises:
            TypeError: ``main`` is given but is not an async function or coroutine.
        """
        if main is not None and not asyncio.iscoroutine(main):
            check_hook(main, "main")
        if main is not None or not hasattr(self, "main"):
            # Not over a subclass's own `async def main` method: that is its program.
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
        self.hooks.refuse_while_running("on_startup hook", fn)
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

    def readiness_check(self, fn: C) -> C:
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
        from ._run._signal_handlers import check_handler, check_signal

        check_signal(signum)

        def register(fn: F) -> F:
            number = check_handler(signum, fn)
            self.hooks.refuse_while_running("on_signal handler", fn)
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
            async def database(ctx: aiodaemon.Context) -> AsyncIterator[None]:
                pool = await open_pool()
                yield
                await pool.close()  # only if open_pool() succeeded
            ```
        """
        check_lifespan(fn)
        self.hooks.refuse_while_running("lifespan", fn)
        span = Lifespan(fn)
        self.hooks.startup.append(span)
        self.hooks.shutdown.append(span)
        return fn

    def run(self, main: UserMain | None = None, **options: Unpack[DaemonOptions]) -> NoReturn:
        """Run ``main`` (default: the one given at construction) and exit with its status.

        Carries out every phase: configure (validate the options), acquire
        (pidfile lock, sockets, log files, control socket), detach, drop
        privileges, run. In the launching process of a detached daemon, this
        exits 0 once the daemon is ready, or with the daemon's status and its
        error on stderr if it fails first (1 when that status is 0: a daemon
        that ended before ready by its own choice leaves nothing running).

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
                shutdown timed out, 128 + n after a forced second signal n,
                n after ``sys.exit(n)`` in ``main``, a hook or a task (outside
                0-255 its low byte, and 1 where that would be 0). Called
                from a thread other than the main thread, it raises
                nothing: one line on stderr, and the process exits 2 at once.
            RuntimeError: called from another thread while this process runs
                a daemon (from a thread of ``main``, say): the daemon goes on.
        """
        target = main if main is not None else self.main
        if _importing_main_for_multiprocessing():
            # Run on, it would start a second daemon in a pool's worker.
            close_main(target)
            say(
                "run() was called while multiprocessing imported the main module again in"
                " a child process it starts (spawn or forkserver start method); guard the"
                ' call with if __name__ == "__main__":'
            )
            raise SystemExit(ExitCode.USAGE)
        if _loop_is_running():
            # Forking, or blocking this thread on a second loop, under a running
            # loop cannot work: say so before anything starts.
            close_main(target)
            say(
                "run() was called from inside a running event loop; "
                "call aiodaemon.run(main) at the top level of the program "
                "(not under asyncio.run() or from async code)"
            )
            raise SystemExit(ExitCode.USAGE)
        if target is None:
            say("main: no main given to run() nor to Daemon()")
            raise SystemExit(ExitCode.USAGE)
        if threading.current_thread() is not threading.main_thread():
            _refuse_from_a_thread(target)
        stray = stray_hooks_warning(self)
        if stray is not None:
            say(stray)
        status = launch(self.hooks, target, options, on_ready=_warn_on_ready(options))
        raise SystemExit(status)


def stray_hooks_warning(daemon: Daemon, module: object = None) -> str | None:
    """A warning naming hooks registered on a Daemon other than ``daemon``, the one run.

    The module-level decorators register on ``default_daemon``, and a
    ``Daemon()`` of the program's own keeps its hooks to itself: beside the
    other one, what they registered never runs, and nothing else would say so.
    ``module``, the program's (for ``aiodaemon start MODULE:ATTR``): its own
    Daemon objects too.
    """
    others: list[tuple[Daemon, str]] = []
    if daemon is not default_daemon:
        others.append((
            default_daemon,
            "the default Daemon (the module-level decorators, aiodaemon.on_startup"
            " and the like), not the one this program runs; register them with its own",
        ))  # fmt: skip
    name = getattr(module, "__name__", None)
    for attr, value in vars(module).items() if module is not None else ():
        # Each Daemon once, though the module may name one twice (or the default one).
        known = (daemon, *(other for other, _ in others))
        if isinstance(value, Daemon) and all(value is not other for other in known):
            others.append((value, f"{name}.{attr}, not the Daemon TARGET runs; run {name}:{attr}"))
    parts = [
        f"{listed} are registered on {where}"
        for other, where in others
        if (listed := _registered(other.hooks))
    ]
    return f"warning: hooks that will not run: {'; '.join(parts)}" if parts else None


def _registered(hooks: Hooks) -> str:
    """``app.setup (on_startup), app.db (lifespan)``: what ``hooks`` holds, each once."""
    kinds: dict[str, str] = {}
    for kind, registered in (
        ("on_startup", hooks.startup),
        ("on_reload", hooks.reload),
        ("on_shutdown", hooks.shutdown),
        ("readiness_check", hooks.readiness),
        ("on_signal", [fn for handlers in hooks.signals.values() for fn in handlers]),
    ):
        for fn in registered:
            # A lifespan sits in both startup and shutdown: named once.
            kinds.setdefault(entry_name(fn), "lifespan" if isinstance(fn, Lifespan) else kind)
    return ", ".join(f"{named} ({what})" for named, what in kinds.items())


def _warn_on_ready(options: Mapping[str, Any]) -> Callable[[int], None]:
    """Once a detached daemon is ready: the launcher's warnings (no pidfile, no log)."""

    def on_ready(pid: int) -> None:
        for warning in start_warnings(pid, options):
            say(warning)

    return on_ready


def _refuse_from_a_thread(target: MainTarget) -> NoReturn:
    """Refuse ``run()`` outside the main thread, before anything is acquired.

    Signal handlers can only be set from the main thread, so the run phase
    would fail after the pidfile, sockets and logs were taken. A SystemExit
    here would end only this thread, silently, and let the main thread go on
    as if a daemon ran: the process exits with status 2 instead, as ``run()``
    refusing in the main thread makes it (stdio flushed; nothing was started,
    so nothing else is left to clean).

    Raises:
        RuntimeError: a launch is under way in this process (``run()``'s or
            the CLI's): the daemon it runs goes on.
    """
    close_main(target)
    if LAUNCHING.under_way:
        # Ending the process here would kill the daemon this process runs,
        # with no shutdown and its pidfile left: the caller's thread gets it.
        raise RuntimeError(
            "run() was called from a thread while this process runs a daemon;"
            " a process is one daemon"
        )
    say(
        f"run() was called from a thread other than the main thread"
        f" ({threading.current_thread().name!r}); call aiodaemon.run(main) from the"
        f" main thread (signal handling needs it)"
    )
    flush_stdio()
    os._exit(ExitCode.USAGE)


def _importing_main_for_multiprocessing() -> bool:
    """Whether this is a multiprocessing child importing the program's main module again.

    The spawn and forkserver start methods run the main script as
    ``__mp_main__`` in each new process, with this flag set, before the
    process's own target: an unguarded ``run()`` there would start a daemon.
    """
    process = sys.modules.get("multiprocessing.process")
    return process is not None and bool(getattr(process.current_process(), "_inheriting", False))


def _loop_is_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


default_daemon = Daemon()

# The module-level decorators are the default Daemon's methods. Each string below
# is what the API reference shows for the name (griffe reads attribute
# docstrings, not the bound method's); the contract is the method's docstring.
on_startup = default_daemon.on_startup
"""Register an async startup hook, run in registration order before ready: ``Daemon.on_startup``."""
on_reload = default_daemon.on_reload
"""Register an async reload hook, run in registration order on SIGHUP: ``Daemon.on_reload``."""
on_shutdown = default_daemon.on_shutdown
"""Register an async shutdown hook, run in reverse registration order: ``Daemon.on_shutdown``."""
lifespan = default_daemon.lifespan
"""Register an async generator: setup before its ``yield``, teardown after: ``Daemon.lifespan``."""
readiness_check = default_daemon.readiness_check
"""Register an async check run on each ``GET /readyz``: ``Daemon.readiness_check``."""
on_signal = default_daemon.on_signal
"""Register an async handler for a signal the framework does not own: ``Daemon.on_signal``."""


def run(main: UserMain, **options: Unpack[DaemonOptions]) -> NoReturn:
    """Run ``main`` as a daemon with the hooks of the module-level decorators.

    The same as ``Daemon.run`` on the default ``Daemon``: validates every
    option, acquires the pidfile, sockets and log files, detaches (unless
    supervised), drops privileges and runs ``main`` on the event loop (uvloop
    when installed and not ``uvloop=False``) until a signal or its return;
    then exits. Call it at the top level of the program, never
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
