"""Deliver a real SIGINT to the ``aiodaemon`` command as it loads a module, or as it exits.

Put on ``PYTHONPATH`` by a test, with ``SIGINT_AT`` naming a module (the signal
is sent as its import begins: Ctrl-C in the command's first milliseconds, while
``aiodaemon._cli._main`` and what it imports load), ``re.sub`` (sent by the
console script's first call of it: pip's script runs ``re.sub`` on ``argv[0]``
between its import of the entry point and its call) or ``exit`` (sent by the
last callback of the interpreter's exit, once the command has ended).
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

_AT = os.environ.pop("SIGINT_AT", "")


def _interrupt() -> None:
    os.kill(os.getpid(), signal.SIGINT)


class _InterruptOnImport:
    """A finder that finds nothing: it only interrupts as the import of ``_AT`` begins."""

    @staticmethod
    def find_spec(
        name: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if name == _AT:
            sys.meta_path.remove(_InterruptOnImport)
            _interrupt()
        return None


def _patch_re_sub() -> None:
    import re

    sub = re.sub

    def interrupting_sub(*args: Any, **kwargs: Any) -> Any:
        re.sub = sub
        _interrupt()
        return sub(*args, **kwargs)

    re.sub = interrupting_sub


if _AT == "re.sub":
    _patch_re_sub()
elif _AT == "exit":
    atexit.register(_interrupt)  # registered first, so it runs last
elif _AT:
    sys.meta_path.insert(0, _InterruptOnImport)
