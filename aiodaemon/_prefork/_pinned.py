"""Modules read at start and run later: a daemon's late imports get the code it started with.

A daemon imports a few of aiodaemon's modules only once it runs (those of an
upgrade: nothing on the way to ready needs them). Imported from disk then, they
would be whatever a deploy put there meanwhile, run by the old version's other
modules. :func:`pin` reads their code before the daemon starts (before any
chroot or privilege drop, too) and a finder first on ``sys.meta_path`` serves
that code when they are imported; the module's own loader reads it, so cached
bytecode, its checks and its rewriting are exactly an import's. Any loader that
gives code will do: aiodaemon vendored in a zipapp is read by ``zipimport``,
which opens the archive again at each import (after a chroot or a drop to a
user who cannot read it, it could not).
"""

from __future__ import annotations

import sys
from importlib.machinery import ModuleSpec, PathFinder
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from importlib.abc import Loader
    from types import CodeType, ModuleType

__all__ = ["pin"]


class _PinnedLoader:
    """The module's own loader, with the code it gave at :func:`pin`.

    Everything but running the code (``get_source``, ``is_package``,
    ``get_resource_reader``...) is the original loader's.
    """

    def __init__(self, loader: Loader, code: CodeType) -> None:
        self._loader = loader
        self._code: CodeType | None = code

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return None  # the default module, as for source and zip imports

    def exec_module(self, module: ModuleType) -> None:
        code, self._code = self._code, None
        if code is None:
            # A second import of the name (after ``del sys.modules[...]``) reads the file.
            code = self._loader.get_code(module.__name__)  # type: ignore[attr-defined]
        exec(code, module.__dict__)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


class _PinnedFinder:
    """First on ``sys.meta_path``: answers for the pinned names only, once each."""

    def __init__(self) -> None:
        self.specs: dict[str, ModuleSpec] = {}

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        return self.specs.pop(fullname, None)


_finder = _PinnedFinder()


def pin(names: Iterable[str]) -> None:
    """Read the code of the modules ``names`` (absolute) that are not imported yet.

    Their parent packages must be imported. A module that cannot be read (a
    broken installation) is left to its import, which reads the disk and says why.
    """
    for name in names:
        if name in sys.modules or name in _finder.specs:
            continue
        parent, _, _ = name.rpartition(".")
        try:
            spec = PathFinder.find_spec(name, sys.modules[parent].__path__)
            if spec is None or spec.loader is None:
                raise ImportError(f"no module {name}")
            # Source files and zip archives give it; an extension module gives None.
            get_code = getattr(spec.loader, "get_code", None)
            code = None if get_code is None else get_code(name)
            if code is None:
                raise ImportError(f"no code for {name}")
        except (AttributeError, ImportError, KeyError, OSError, SyntaxError, ValueError):
            continue
        # Duck-typed: importing importlib.abc (importlib.resources with it) would
        # cost every daemon's start milliseconds.
        spec.loader = cast("Loader", _PinnedLoader(spec.loader, code))
        _finder.specs[name] = spec
    if _finder.specs and _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)
