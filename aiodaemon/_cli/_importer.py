"""The CLI's TARGET: import ``MODULE:ATTR`` and check it is a program aiodaemon can run.

In a module of its own, as uvicorn's ``importer.py``: the errors a user makes
here (a typo in the module, a sync function, a missing ``main``) each get one
line, never the import's traceback.
"""

from __future__ import annotations

import errno
import os
import sys

TYPE_CHECKING = False  # not typing's: see aiodaemon/__init__.py
if TYPE_CHECKING:
    from typing import Any

    from .._daemon import Daemon
    from .._run._hooks import HookFunction

__all__ = ["TargetError", "load_target"]


class TargetError(Exception):
    """TARGET cannot be run: the one-line reason (a usage error, exit 2)."""


def load_target(spec: str) -> tuple[Daemon, HookFunction]:
    """Import ``MODULE:ATTR`` and return the daemon whose hooks apply and the program.

    Raises:
        TargetError: the module, the attribute or its type is wrong.
    """
    import functools

    from .._daemon import Daemon, default_daemon

    module_name, _, attr_path = spec.partition(":")
    attr_path = attr_path or "main"
    if module_name.endswith(".py") or "/" in module_name:
        raise TargetError(_path_hint(module_name, attr_path))
    if not module_name or not all(part.isidentifier() for part in module_name.split(".")):
        raise TargetError(f"TARGET must be MODULE:ATTR, not {spec!r}")
    if not all(part.isidentifier() for part in attr_path.split(".")):
        raise TargetError(f"TARGET must be MODULE:ATTR, not {spec!r}")
    module = _import(module_name, spec)
    try:
        obj = functools.reduce(getattr, attr_path.split("."), module)
    except AttributeError:
        raise TargetError(
            f"module {module_name!r} has no attribute {attr_path!r}"
            f"{_attribute_hint(module, module_name, attr_path)}"
        ) from None
    except Exception as exc:
        # A module __getattr__ (PEP 562: a lazy import) or a property that fails
        # is the program's error, as one that fails at import.
        raise TargetError(
            f"getting {attr_path!r} from {module_name!r} failed: {_describe(exc)}"
        ) from None
    if isinstance(obj, Daemon):
        program = getattr(obj, "main", None) or getattr(module, "main", None)
        if program is None:
            raise TargetError(
                f"{spec} is a Daemon, but neither it nor module {module_name!r} has a `main`"
            )
        return obj, _check_program(f"{module_name}:main", program)
    return default_daemon, _check_program(spec, obj)


def _path_hint(path: str, attr_path: str) -> str:
    """What to write instead of a file path given as TARGET (``app.py``, ``src/app.py``)."""
    directory, name = os.path.split(path)
    parts = [name.removesuffix(".py")]
    if parts == ["__init__"]:
        parts = []
    # A module of a package is imported by its dotted name, from above the package:
    # run from inside it, its relative imports would fail.
    while directory not in ("", ".", "/") and os.path.isfile(
        os.path.join(directory, "__init__.py")
    ):
        directory, package = os.path.split(directory)
        parts.insert(0, package)
    suggestion = f"{'.'.join(parts)}:{attr_path}"
    if directory not in ("", "."):
        # TARGET is imported from the current directory, not from a path.
        suggestion += f", run from {directory}/"
    return f"TARGET is MODULE:ATTR, not a file path {path!r}; did you mean {suggestion}?"


def _attribute_hint(module: Any, module_name: str, attr_path: str) -> str:
    """``; did you mean app:main?`` for a misspelt attribute (``app:mian``), else ``""``.

    The candidates are what TARGET may name where the lookup stopped: async
    functions and Daemon objects.
    """
    import difflib  # only on this error path
    import inspect

    from .._daemon import Daemon

    obj, prefix = module, []
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except Exception:
            break
        prefix.append(part)
    else:
        return ""
    try:
        names = [
            name
            for name, value in vars(obj).items()
            if inspect.iscoroutinefunction(value) or isinstance(value, Daemon)
        ]
    except TypeError:  # no __dict__ (a built-in object)
        return ""
    matches = difflib.get_close_matches(part, sorted(names))
    if not matches:
        return ""
    targets = [f"{module_name}:{'.'.join([*prefix, name])}" for name in matches]
    return f"; did you mean {' or '.join(targets)}?"


def _module_hint(spec: str, module_name: str) -> str:
    """``; did you mean app:main?`` for a dotted TARGET without a colon (``app.main``).

    Python imported ``app`` before it looked for ``app.main``: its attributes
    are at hand, the misspelt ones too (``app.mian``).
    """
    import inspect

    from .._daemon import Daemon

    parent, _, attr = module_name.rpartition(".")
    if ":" in spec or parent not in sys.modules:
        return ""
    value = getattr(sys.modules[parent], attr, None)
    if inspect.iscoroutinefunction(value) or isinstance(value, Daemon):
        return f"; did you mean {parent}:{attr}?"
    return _attribute_hint(sys.modules[parent], parent, attr)


def _import(module_name: str, spec: str) -> Any:
    import importlib

    # The absolute current directory, not "": the daemon chdirs to its workdir,
    # and imports made later must still find the program's own modules.
    try:
        cwd: str | None = os.getcwd()
    except OSError:
        # A shell left in a directory that is gone (a deploy replaced the release
        # it sat in): nothing to import there, an installed TARGET still imports.
        cwd = None
    if cwd is not None:
        _check_own_name(module_name, cwd)
        if cwd not in sys.path:
            # The modules the start imports after TARGET from the top level are
            # loaded first (a cost moved, not added): the program's directory now
            # comes first, as for ``python app.py``, and a file of the program's
            # named like one (a REST project's resource.py) would be loaded in
            # its place ("module 'resource' has no attribute 'RLIMIT_AS'"). What
            # the program imports itself is its own, as under Python.
            import resource  # noqa: F401

            import orjson  # noqa: F401

            sys.path.insert(0, cwd)
    from .._launch import TARGET_IMPORT, TargetCallsRun

    TARGET_IMPORT.active, TARGET_IMPORT.called_at = True, None
    try:
        module = importlib.import_module(module_name)
    except TargetCallsRun:
        raise _calls_run(module_name, TARGET_IMPORT.called_at) from None
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module_name + ".").startswith(exc.name + "."):
            where = (
                "sys.path; the current directory no longer exists"
                if cwd is None
                else f"{_unreadable(cwd)} or sys.path"
            )
            raise TargetError(
                f"no module named {module_name!r} (in {where}){_module_hint(spec, module_name)}"
            ) from None
        raise TargetError(f"importing {module_name!r} failed: {_describe(exc)}") from None
    except (Exception, SystemExit) as exc:
        if isinstance(exc, MemoryError) or (isinstance(exc, OSError) and exc.errno == errno.ENOMEM):
            # Out of memory (a low RLIMIT_AS), not a broken TARGET: said as such, exit 1.
            raise
        # SystemExit too (a guard, the script's own argument parsing): start
        # would exit with its status, 0 saying "started" when nothing runs.
        raise TargetError(f"importing {module_name!r} failed: {_describe(exc)}") from None
    finally:
        TARGET_IMPORT.active = False
    if TARGET_IMPORT.called_at is not None:
        # The module caught the refusal's SystemExit and carried on: still wrong.
        raise _calls_run(module_name, TARGET_IMPORT.called_at)
    return module


#: Modules the daemon's runtime imports besides the standard library's (the
#: testing kit, which uses no private module, keeps its own list).
_RUNTIME_MODULES = frozenset({"aiodaemon", "orjson", "structlog", "uvloop"})


def _owner_of_module_name(name: str) -> str | None:
    """Whose module ``name`` is, when the daemon imports one of that name itself.

    A program of that name cannot be imported as itself there: a built-in or
    already imported module runs in its place (``module 'time' has no
    attribute 'main'``), or the program, first on the path, takes the module's
    place for the whole daemon (``module 'json' has no attribute 'dumps'``).
    """
    if name in sys.stdlib_module_names:
        return "the standard library's"
    if name in _RUNTIME_MODULES:
        return "a module aiodaemon itself imports:"
    return None


def _check_own_name(module_name: str, cwd: str) -> None:
    """Refuse a TARGET in ``cwd`` named like a module the daemon imports itself.

    Raises:
        TargetError: naming the program's file and the module it clashes with.
    """
    top = module_name.partition(".")[0]
    owner = _owner_of_module_name(top)
    if owner is None:
        return
    loaded = getattr(sys.modules.get(top), "__file__", None)
    for path, rename in (
        (os.path.join(cwd, top + ".py"), f"{top}_app.py"),
        (os.path.join(cwd, top, "__init__.py"), f"{top}_app/"),
    ):
        # aiodaemon's own checkout is the aiodaemon that runs: no clash there.
        if os.path.isfile(path) and not (
            loaded and os.path.realpath(loaded) == os.path.realpath(path)
        ):
            raise TargetError(
                f"{path} cannot be imported as itself: its module name {top!r} is "
                f"{owner} {top} (rename it, e.g. {rename})"
            )


def _unreadable(directory: str) -> str:
    """``directory``, saying so when we may not list it, so its modules cannot be found.

    ``sudo -u svc aiodaemon start app:main`` typed in a home directory closed
    to ``svc`` leaves ``svc`` in a directory it cannot read: "no module named
    'app'" while app.py is right there would send the reader after a typo.
    """
    if os.access(directory, os.R_OK | os.X_OK):
        return directory
    from .._prefork._identity import effective_user

    return f"{directory}, which {effective_user()} may not read,"


def _calls_run(module_name: str, called_at: str | None) -> TargetError:
    """The error for a TARGET whose import calls ``aiodaemon.run()`` (no ``__main__`` guard)."""
    where = f" ({called_at})" if called_at else ""
    return TargetError(
        f"TARGET {module_name} calls aiodaemon.run() when imported{where}; "
        'put that call under `if __name__ == "__main__":`'
    )


def _describe(exc: BaseException) -> str:
    """``Type: message (file:line)`` of the innermost frame, a traceback in one line."""
    import traceback

    # No ": " after a bare type (``raise RuntimeError``, ``sys.exit()``).
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if isinstance(exc, SyntaxError):
        return text
    import importlib

    # The import machinery's own frames (importlib.import_module in a module
    # __getattr__) say nothing of where the program went wrong, nor do
    # aiodaemon's when it refuses what the program asked of it (a sync hook
    # given to @aiodaemon.on_startup): the program's line is the one to fix.
    machinery = os.path.dirname(importlib.__file__) + os.sep
    ours = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if not frame.filename.startswith(("<frozen ", machinery))
    ]
    frames = [frame for frame in frames if not frame.filename.startswith(ours)] or frames
    if frames:
        text += f" ({frames[-1].filename}:{frames[-1].lineno})"
    return text


def _check_program(name: str, obj: object) -> HookFunction:
    import inspect

    from .._run._hooks import check_hook

    if inspect.isasyncgenfunction(obj):
        raise TargetError(
            f"{name} is an async generator function (async def with yield); it must be an"
            " async function without yield (@aiodaemon.lifespan takes one with a yield)"
        )
    if inspect.isfunction(obj) and not inspect.iscoroutinefunction(obj):
        raise TargetError(f"{name} is a plain function; it must be an async function (async def)")
    try:
        check_hook(obj, name)
    except TypeError:
        kind = type(obj).__name__
        if inspect.iscoroutinefunction(obj):
            raise TargetError(f"{name} must take no argument or one Context") from None
        if inspect.iscoroutine(obj):
            # Closed, or Python warns at exit that it "was never awaited" (an
            # "Exception ignored" block under -W error) after the one line.
            obj.close()
            raise TargetError(
                f"{name} is a coroutine object; TARGET names the async function"
                " itself (def main, not main())"
            ) from None
        article = "an" if kind[:1].lower() in ("a", "e", "i", "o", "u") else "a"
        raise TargetError(
            f"{name} is not an async function or an aiodaemon.Daemon (it is {article} {kind})"
        ) from None
    return obj  # type: ignore[return-value]
