"""Modules read at start and run later: a daemon's late imports get the code it started with.

A daemon imports a few of aiodaemon's modules only once it runs (those of an
upgrade: nothing on the way to ready needs them). Imported from disk then, they
would be whatever a deploy put there meanwhile, run by the old version's other
modules. :func:`pin` reads their code before the daemon starts (before any
chroot or privilege drop, too) and a finder first on ``sys.meta_path`` serves
that code when they are imported; CPython's own loader reads it, so cached
bytecode, its checks and its rewriting are exactly an import's.
"""

from __future__ import annotations

import sys
from importlib.machinery import ModuleSpec, PathFinder, SourceFileLoader
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from types import CodeType, ModuleType

__all__ = ["pin"]


class _PinnedLoader(SourceFileLoader):
    """The standard source loader, with the code it read at :func:`pin`."""

    def __init__(self, fullname: str, path: str, code: CodeType) -> None:
        super().__init__(fullname, path)
        self._code: CodeType | None = code

    def get_code(self, fullname: str) -> CodeType | None:
        code, self._code = self._code, None
        # A second import of the name (after ``del sys.modules[...]``) reads the file.
        return super().get_code(fullname) if code is None else code


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
            if spec is None or not isinstance(spec.loader, SourceFileLoader):
                raise ImportError(f"no source module {name}")
            code = spec.loader.get_code(name)
            if code is None or spec.origin is None:
                raise ImportError(f"no code for {name}")
            loader = _PinnedLoader(name, spec.origin, code)
        except (AttributeError, ImportError, KeyError, OSError, SyntaxError, ValueError):
            continue
        spec.loader = loader
        _finder.specs[name] = spec
    if _finder.specs and _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)
