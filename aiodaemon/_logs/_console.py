"""Console lines for a person: structlog's, with the program's control characters escaped.

An event text often carries what a client sent (``log.info(f"GET {path}")``).
Written raw, an escape sequence in it rewrites the reader's terminal (its
title, colours, the screen), a carriage return hides the line and a newline
forges one. Python's ``http.server`` escapes its log lines for the same
reason; here every control character the program logs is shown as ``\\x1b``,
``\\n``..., while the renderer's own colours and a traceback's line breaks stay.
"""

from __future__ import annotations

import re
from collections.abc import Callable, MutableMapping
from io import StringIO
from typing import Any

import structlog

from .._prefork._messages import safe_repr, safe_str

__all__ = ["console_encoder", "console_renderer", "escape_controls"]

#: C0 (but the tab, harmless on a terminal), DEL and C1, each to its escape as in repr().
_CONTROLS = {c: repr(chr(c))[1:-1] for c in (*range(0x20), *range(0x7F, 0xA0)) if c != 0x09}


def escape_controls(text: str, keep: str = "") -> str:
    """``text`` with every control character but those in ``keep`` escaped (``\\x1b``)."""
    table = _CONTROLS if not keep else {c: e for c, e in _CONTROLS.items() if chr(c) not in keep}
    return text.translate(table)


#: The same characters, searched for in C: most records hold none and are left as they are.
_HAS_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]").search


class _Shown:
    """A value the renderer writes as the given text (``repr()`` of a string, controls escaped)."""

    __slots__ = ("_text",)

    def __init__(self, text: str) -> None:
        self._text = text

    def __repr__(self) -> str:
        return self._text


def _escape_record(event_dict: MutableMapping[Any, Any]) -> dict[Any, Any]:
    """The record with str keys, controls escaped in them, the event, logger and values."""
    escaped: dict[Any, Any] = {}
    for key, value in event_dict.items():
        if not isinstance(key, str):
            # A stdlib extra={404: ...}: the renderer sorts the keys, and an int
            # among strings made it raise (the record lost its fields).
            key = str(key)
        if _HAS_CONTROL(key):
            key = escape_controls(key)
        if isinstance(value, str):
            if not _HAS_CONTROL(value):
                pass
            elif key in ("event", "logger"):
                # Written as they are, not as a repr: escaped once here.
                value = escape_controls(value)
            elif key in ("exception", "stack"):
                # Text the renderer writes as it is below the line (a str only:
                # it concatenates them), its line breaks kept as a traceback's.
                value = escape_controls(value, "\n")
            else:
                # The renderer writes a string without a space or quote as it is,
                # and the repr of one with: repr() escapes every control, once.
                value = _Shown(repr(value))
        elif key not in ("exc_info", "exception", "stack"):
            # Rendered here, not by the renderer: a __repr__ that raises failed
            # the log call and lost the record; a custom one may write controls.
            text = safe_str(value) if key in ("event", "logger") else safe_repr(value)
            value = _Shown(escape_controls(text))
        escaped[key] = value
    return escaped


def _escaped_traceback(
    formatter: Callable[[Any, Any], None], keep: str
) -> Callable[[Any, Any], None]:
    """``formatter`` (structlog's traceback writer) with what it writes escaped but ``keep``."""

    def write(sio: Any, exc_info: Any) -> None:
        # An exception's message is the program's text too (ValueError(path)).
        buffer = StringIO()
        formatter(buffer, exc_info)
        sio.write(escape_controls(buffer.getvalue(), keep))

    return write


def console_renderer(colors: bool) -> Callable[[Any, str, MutableMapping[str, Any]], str]:
    """A structlog processor rendering a record as one console line (plus any traceback).

    Args:
        colors: colour the line (a person's terminal).
    """
    dev = structlog.dev
    base = dev.default_exception_formatter if colors else dev.default_monochrome_exception_formatter
    # A coloured rich or better-exceptions traceback holds its own escape sequences.
    keep = "\n\x1b" if colors and base is not dev.plain_traceback else "\n"
    traceback = _escaped_traceback(base, keep)
    renderer = dev.ConsoleRenderer(colors=colors, exception_formatter=traceback)

    def render(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> str:
        return str(renderer(logger, method_name, _escape_record(event_dict)))

    return render


def console_encoder(encoding: str) -> Callable[[Any, str, str], bytes]:
    """A structlog processor ending a console chain: the line as bytes in ``encoding``.

    What ``encoding`` cannot say is escaped (``\\u20ac``), as Python does on stderr.
    """

    def encode(logger: Any, method_name: str, text: str) -> bytes:
        return (text + "\n").encode(encoding, "backslashreplace")

    return encode
