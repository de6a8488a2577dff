"""Lifecycle hooks, lifespans and ``main``: what users hand us, checked when they hand it."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import reprlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar, cast

import structlog

from ._forked_child import end_if_forked
from ._outcome import ProgramRaised
from ._user_exit import from_another_process

if TYPE_CHECKING:
    from ._context import Context

__all__ = [
    "HookError",
    "HookFunction",
    "Hooks",
    "Lifespan",
    "LifespanFunction",
    "MainTarget",
    "NotBegun",
    "UserCheck",
    "UserHook",
    "UserLifespan",
    "UserMain",
    "call_async",
    "check_hook",
    "check_lifespan",
    "describe",
    "entry_name",
    "in_own_context",
    "warn_returned",
]

T = TypeVar("T")

_log = structlog.get_logger("aiodaemon")

#: An async function taking no argument or one Context.
HookFunction: TypeAlias = Callable[..., Awaitable[Any]]
#: An async generator function with one ``yield``, taking no argument or one Context.
LifespanFunction: TypeAlias = Callable[..., AsyncIterator[Any]]
#: What ``run()`` accepts as ``main``.
MainTarget: TypeAlias = HookFunction | Coroutine[Any, Any, Any]

# The public signatures' narrower forms of the three above: what check_hook and
# check_lifespan let through, so a user's type checker refuses a hook taking two
# arguments (or python-daemon's ``(signum, frame)``) before the TypeError at
# decoration. Strings: Context is imported for type checkers only.
#: An async function taking no argument or one Context.
UserHook: TypeAlias = "Callable[[], Awaitable[Any]] | Callable[[Context], Awaitable[Any]]"
#: An async generator function taking no argument or one Context.
UserLifespan: TypeAlias = (
    "Callable[[], AsyncIterator[Any]] | Callable[[Context], AsyncIterator[Any]]"
)
#: ``main`` as ``run()`` and ``Daemon()`` take it.
UserMain: TypeAlias = "UserHook | Coroutine[Any, Any, Any]"
#: A readiness check: only False fails it, so a check returning 0 or "" (an int
#: or str) would pass where its author meant "not ready"; a checker refuses it.
UserCheck: TypeAlias = (
    "Callable[[], Awaitable[bool | None]] | Callable[[Context], Awaitable[bool | None]]"
)


class HookError(Exception):
    """A hook broke the rules at run time (a lifespan that does not yield exactly once)."""


class Lifespan:
    """A registered ``@lifespan`` function: setup before its ``yield``, teardown after it."""

    def __init__(self, fn: LifespanFunction) -> None:
        self.fn = fn
        self.name = describe(fn)

    async def enter(self, ctx: Context) -> AsyncGenerator[Any, None]:
        """Run the setup; return the suspended generator for :meth:`exit`.

        Raises:
            HookError: the function returned without yielding.
        """
        # check_lifespan made sure this is an async generator function.
        gen = cast(
            AsyncGenerator[Any, None],
            self.fn(ctx) if _wants_context(self.fn, "lifespan") else self.fn(),
        )
        try:
            await anext(gen)
        except StopAsyncIteration:
            raise HookError(f"lifespan {self.name} did not yield") from None
        return gen

    async def exit(self, gen: AsyncGenerator[Any, None]) -> None:
        """Run the teardown of a setup that completed.

        Raises:
            HookError: the generator yielded a second time (it is closed).
        """
        try:
            await anext(gen)
        except StopAsyncIteration:
            return
        await gen.aclose()
        raise HookError(f"lifespan {self.name} yielded more than once")

    def __repr__(self) -> str:
        return f"<Lifespan {self.name}>"


class Hooks:
    """The hooks registered on one daemon, in registration order.

    A lifespan sits in both ``startup`` and ``shutdown``, at the place it was
    registered, so setups and teardowns interleave with the plain hooks.
    """

    # A plain class, not a dataclass: defining one costs every start ~0.3 ms.
    __slots__ = ("readiness", "reload", "running", "shutdown", "signals", "startup")

    def __init__(self) -> None:
        #: a run of these hooks is under way (see :meth:`refuse_while_running`).
        self.running = False
        self.startup: list[HookFunction | Lifespan] = []
        self.reload: list[HookFunction] = []
        self.shutdown: list[HookFunction | Lifespan] = []
        #: ``@readiness_check`` functions, run on each ``GET /readyz``.
        self.readiness: list[HookFunction] = []
        #: ``@on_signal`` handlers by signal number (see :mod:`._signal_handlers`).
        self.signals: dict[int, list[HookFunction]] = {}

    def refuse_while_running(self, what: str, fn: object) -> None:
        """Refuse a startup hook, lifespan or signal handler registered during a run.

        The run reads them as it starts: registered later (by ``main``, or a
        module it imports), one would never run, without a word.

        Raises:
            RuntimeError: a run is under way.
        """
        if self.running:
            raise RuntimeError(
                f"{what} {describe(fn)} registered while the daemon runs: startup hooks,"
                f" lifespans and signal handlers are read when it starts; register them"
                f" before run() (at import)"
            )


def check_hook(fn: object, what: str = "hook") -> None:
    """Refuse anything that is not an async function of zero or one argument.

    Raises:
        TypeError: at decoration time, so a sync hook never reaches a running daemon.
    """
    if inspect.isasyncgenfunction(fn):
        raise TypeError(
            f"{what} must be an async function (async def without yield), not the async"
            f" generator function {describe(fn)} (@aiodaemon.lifespan takes a setup, one"
            f" yield and a teardown)"
        )
    if not callable(fn) or not inspect.iscoroutinefunction(fn):
        raise TypeError(f"{what} must be an async function (async def), not {_shown(fn)}")
    _wants_context(fn, what)


def check_lifespan(fn: object) -> None:
    """Refuse anything that is not an async generator function of zero or one argument.

    Raises:
        TypeError: at decoration time.
    """
    if not callable(fn) or not inspect.isasyncgenfunction(fn):
        raise TypeError(
            "lifespan must be an async generator function (async def with one yield),"
            f" not {_shown(fn)}"
        )
    _wants_context(fn, "lifespan")


def _shown(fn: object) -> str:
    """A refused hook as its error names it: a function by its name, as the other errors do."""
    if inspect.isfunction(fn) or inspect.ismethod(fn):
        # Not repr()'s <function open_db at 0x7f...>: which module's open_db?
        kind = "async function" if inspect.iscoroutinefunction(fn) else "function"
        return f"the {kind} {describe(fn)}"
    return repr(fn)


def _wants_context(fn: Callable[..., object], what: str) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if positional and positional[0].name in ("self", "cls") and _in_class_body(fn):
        # Decorated in its class body: it would get the Context as ``self``.
        raise TypeError(
            f"{what} {describe(fn)} is a method registered without its instance (it"
            f" would get the Context as {positional[0].name}): register the bound method"
            f" once the object exists, e.g. daemon.on_startup(app.start)"
        )
    required = [p for p in positional if p.default is p.empty]
    variadic = any(p.kind is p.VAR_POSITIONAL for p in params)
    # A required keyword-only parameter could never be given: it failed at run time.
    keyword = [p for p in params if p.kind is p.KEYWORD_ONLY and p.default is p.empty]
    if len(required) > 1 or keyword:
        raise TypeError(f"{what} {describe(fn)} must take no argument or one Context")
    # Only a required parameter receives the context: ``def hook(name=name)``
    # is the loop-variable idiom, not a request for one.
    return bool(required) or (variadic and not positional)


def _in_class_body(fn: Callable[..., object]) -> bool:
    """Whether ``fn`` is a plain function defined in a class body (``App.start``)."""
    if inspect.ismethod(fn):
        return False  # bound: its self is given
    owner, _, _ = getattr(fn, "__qualname__", "").rpartition(".")
    return bool(owner) and not owner.endswith("<locals>")


def call_async(fn: HookFunction, ctx: Context) -> Awaitable[Any]:
    """Call a hook (or ``main``) with the context if it takes one."""
    if _wants_context(fn, "hook"):
        return fn(ctx)
    return fn()


def entry_name(entry: object) -> str:
    """The name of a hook or lifespan for the log."""
    return entry.name if isinstance(entry, Lifespan) else describe(entry)


def describe(fn: object) -> str:
    """A short name for logs: ``module.qualname``."""
    module = getattr(fn, "__module__", None)
    name = getattr(fn, "__qualname__", None) or repr(fn)
    return f"{module}.{name}" if module else str(name)


def warn_returned(kind: str, name: str, result: object) -> None:
    """Warn once that a hook returned a value, which goes nowhere.

    As main's: a value returned (a connection meant to be kept, a status meant
    for the exit) is dropped, and the program should hear it once.

    Args:
        kind: ``startup``, ``reload`` or ``shutdown``.
        name: the hook's name, as :func:`describe` gives it.
        result: what the hook returned; None says nothing.
    """
    if result is not None:
        _log.warning(
            f"{kind} hook returned",
            hook=name,
            value=reprlib.repr(result),
            ignored=f"a {kind} hook's return value is not used",
        )


async def in_own_context(
    make: Callable[[], Awaitable[T]],
    name: str,
    context: contextvars.Context | None = None,
    *,
    begin_unless: Callable[[], bool] | None = None,
) -> T:
    """Await ``make()`` in a task of its own, in a copy of the current contextvars Context.

    What the program binds there (``structlog.contextvars.bind_contextvars``,
    any ``ContextVar.set``) stays in its own context: the framework's records
    logged afterwards, and the next hook, do not carry it. Cancelling the
    caller cancels the task.

    Args:
        make: called inside the task, returns what to await (a hook's coroutine).
        name: the task's name (it shows in the stuck-task report).
        context: the Context to run in (a lifespan's setup and teardown share
            one); default a fresh copy of the current one.
        begin_unless: checked as the task begins: if true, ``make`` is not called.

    Raises:
        NotBegun: ``begin_unless`` was true.
        ProgramRaised: the hook ended with what ``except Exception`` misses:
            GeneratorExit, a BaseException subclass, or a CancelledError while
            the caller was not being cancelled.
    """

    async def run() -> T:
        if begin_unless is not None and begin_unless():
            # Checked here, not by the caller alone: what happens between the
            # caller's step and this task's first (a signal read) comes first.
            raise NotBegun(name)
        try:
            result = await make()
        except BaseException as exc:
            # A child the program forked in the hook ends here, not in our code.
            end_if_forked(name, exc)
            if isinstance(exc, (SystemExit, KeyboardInterrupt)) and not from_another_process(exc):
                # Raised out of a task's step, these would also escape the event
                # loop itself (asyncio re-raises them there): carried to the caller.
                # One a process pool's worker raised is that call's failure (below).
                raise _Carried(exc) from None
            if isinstance(exc, (Exception, asyncio.CancelledError)):
                raise
            # GeneratorExit, the program's own BaseException or a pool worker's
            # KeyboardInterrupt/SystemExit: a failure like another, as an
            # Exception (a task does not pass GeneratorExit on whole).
            raise ProgramRaised(exc) from exc
        end_if_forked(name, None)
        return result

    task = _hook_task(run(), name, context)
    try:
        return await task
    except _Carried as carried:
        raise carried.request from None
    except asyncio.CancelledError as exc:
        me = asyncio.current_task()
        if me is None or me.cancelling():
            raise  # the daemon's cancellation (a stop during startup, the shutdown's last step)
        # Raised by the program, or its own task.cancel(): a failure of this
        # hook, not a cancellation of the caller, which would end nothing.
        raise ProgramRaised(exc) from exc


def _hook_task(
    coro: Coroutine[Any, Any, T], name: str, context: contextvars.Context | None
) -> asyncio.Task[T]:
    """Start ``coro`` as the hook's task, in ``context`` (None: a fresh copy of the current one).

    Through the program's task factory, if it set one, unless that factory
    cannot run the task in ``context``.
    """
    loop = asyncio.get_running_loop()
    factory = loop.get_task_factory()
    if factory is None or _takes_context(factory):
        context = contextvars.copy_context() if context is None else context
        return loop.create_task(coro, name=name, context=context)
    _warn_old_factory(factory)
    if context is None:
        # A factory of the ``(loop, coro)`` form asyncio documented before
        # 3.11, which context= fails (uvloop passes it on every create_task):
        # called as asyncio calls it without one. The task it makes copies the
        # current context: the fresh copy this hook needs anyway.
        task = cast("asyncio.Task[T]", factory(loop, coro))
        task.set_name(name)
        return task
    # A lifespan's setup and teardown share one context, which that factory
    # cannot be given: a plain task, as without a factory.
    return asyncio.Task(coro, loop=loop, name=name, context=context)


#: The task factories :func:`_warn_old_factory` told of (by id: one per run is plenty).
_warned_factories: set[int] = set()


def _warn_old_factory(factory: Callable[..., object]) -> None:
    """Say once that the program's task factory takes no ``context=``."""
    if id(factory) in _warned_factories:
        return
    _warned_factories.add(id(factory))
    _log.warning(
        "task factory takes no context=",
        factory=describe(factory),
        hint="def factory(loop, coro, **kwargs): asyncio passes context= since 3.11",
    )


def _takes_context(factory: Callable[..., object]) -> bool:
    """Whether a task factory accepts the ``context=`` keyword (asyncio passes it since 3.11)."""
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return True  # not introspectable (a C function): taken at its word
    return any(
        p.kind is p.VAR_KEYWORD
        or (p.name == "context" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))
        for p in params
    )


class NotBegun(Exception):
    """A hook that :func:`in_own_context` did not begin (its ``begin_unless`` was true)."""


class _Carried(Exception):
    """A SystemExit or KeyboardInterrupt on its way from a hook's task to its caller."""

    def __init__(self, request: BaseException) -> None:
        super().__init__(request)
        self.request = request
