"""A program's own structlog configuration, made at import, taken over by aiodaemon's.

Many programs call ``structlog.configure()`` when their module is imported:
their processors, a logger factory printing to stdout, cached loggers. The
daemon's records must go to its sink whatever that configuration says, so
aiodaemon's configuration replaces it; what the program's processors add to a
record (a key, a redaction, a dropped event) is kept by running them first.
Loaded only for such a program.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, MutableMapping
from typing import Any

import structlog

from .._prefork._messages import safe_repr, safe_str

__all__ = ["ProgramChain", "name_of"]

_processors = structlog.processors
_stdlib = structlog.stdlib

#: What aiodaemon's chain does itself, or what cannot work without the
#: program's logger (a stdlib one): replaced wherever it is in the program's list.
_REPLACED_TYPES = (
    _processors.TimeStamper,
    _processors.MaybeTimeStamper,
    _processors.StackInfoRenderer,
    _processors.ExceptionRenderer,  # format_exc_info, dict_tracebacks
    _processors.ExceptionPrettyPrinter,  # prints on stdout
)
_REPLACED_FUNCTIONS = (_stdlib.filter_by_level,)

#: structlog's own steps that only prepare a record (aiodaemon's chain does
#: the same): kept in place for the program's processors after them, never
#: alone.
_PREPARING = (
    structlog.contextvars.merge_contextvars,
    _processors.add_log_level,
    _stdlib.add_logger_name,
    structlog.dev.set_exc_info,
)


class ProgramChain:
    """The processors kept of a program's configuration, and what became of the others."""

    def __init__(self, processors: Iterable[Any]) -> None:
        given = list(processors)
        # The last one renders (its result is what the program's logger wrote).
        kept = [
            step
            for step in given[:-1]
            if not isinstance(step, _REPLACED_TYPES) and not _among(step, _REPLACED_FUNCTIONS)
        ]
        if all(_among(step, _PREPARING) for step in kept):
            kept = []
        #: the program's processors that still run, in their order
        self.kept: list[Any] = kept
        #: those aiodaemon's chain does instead, in the program's order
        self.replaced: list[Any] = [step for step in given if not _among(step, kept)]

    def processor(self) -> Callable[..., Any] | None:
        """One processor running the kept ones, for the front of aiodaemon's chain; None if none."""
        if not self.kept:
            return None
        steps = tuple(_past_aiodaemon(step) for step in self.kept)

        def run_program_processors(
            logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
        ) -> Any:
            if _is_aiodaemons(logger):
                # Its events and keys are stable (alerts match them), and a
                # forced exit logs from a signal handler: no program code there.
                return event_dict
            # A record's own parts, for a record written despite a failing step.
            event, exc_info = event_dict.get("event"), event_dict.get("exc_info")
            step: Any = None
            try:
                for step in steps:
                    event_dict = step(logger, method_name, event_dict)
                if isinstance(event_dict, MutableMapping):
                    return event_dict
                raise TypeError(f"returned {type(event_dict).__name__}, not a dict")
            except structlog.DropEvent:
                raise
            except Exception as error:
                # A log call never fails the program. The record's values are
                # left out: a step that failed may be the one that redacts them.
                failed = {
                    "event": event if isinstance(event, str) else safe_repr(event),
                    "processor": name_of(step),
                    "logging_error": f"{type(error).__name__}: {safe_str(error)}",
                }
                if exc_info:
                    failed["exc_info"] = exc_info
                return failed

        return run_program_processors

    def summary(self) -> dict[str, list[str]]:
        """The ``kept`` and ``replaced`` processors by name, for the start's record."""
        return {
            "kept": [name_of(step) for step in self.kept],
            "replaced": [name_of(step) for step in self.replaced],
        }


def _is_aiodaemons(logger: Any) -> bool:
    """Whether ``logger`` is aiodaemon's own (``aiodaemon``, ``aiodaemon.logging``)."""
    name = getattr(logger, "name", None)
    return isinstance(name, str) and (name == "aiodaemon" or name.startswith("aiodaemon."))


def _among(step: Any, steps: Iterable[Any]) -> bool:
    return any(step is known for known in steps)


def name_of(step: Any) -> str:
    """A processor's dotted name: its function's, or its class's for an instance."""
    named = step if hasattr(step, "__qualname__") else type(step)
    return f"{getattr(named, '__module__', '?')}.{getattr(named, '__qualname__', '?')}"


def _past_aiodaemon(step: Any) -> Any:
    """``step``, or a copy of a ``CallsiteParameterAdder`` that looks past aiodaemon's frames.

    It reports the first frame that is not structlog's (or of its
    ``additional_ignores``): aiodaemon's logger methods and chain run between
    structlog and the program's call.
    """
    ignores = getattr(step, "_additional_ignores", None)
    if not isinstance(step, _processors.CallsiteParameterAdder) or not isinstance(ignores, list):
        return step
    past = copy.copy(step)
    past._additional_ignores = [*ignores, "aiodaemon._logs"]
    return past
