"""The processor chain shared by structlog and stdlib ``logging`` records.

Everything here runs on the thread that logs (the event loop's, mostly), so it
is kept short: one metadata processor instead of three, orjson straight to
bytes with the newline appended, and a wrapped logger whose methods only queue.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import TYPE_CHECKING, Any

import orjson
import structlog

from .._prefork._messages import safe_repr, safe_str

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

__all__ = [
    "QueueLogger",
    "QueueLoggerFactory",
    "StdlibHandler",
    "import_bound_processors",
    "local_from_utc",
    "local_timestamp",
    "processors",
    "set_pid",
    "severity_of",
    "utc_timestamp",
    "wants_colors",
]

_pid = 0


def set_pid(pid: int) -> None:
    """Record the daemon's pid once (after the fork) instead of calling getpid per record."""
    global _pid
    _pid = pid


_METHOD_LEVEL = {"warn": "warning", "exception": "error", "fatal": "critical", "msg": "info"}

#: (whole second, its formatted prefix) for UTC and for local time (and then
#: its UTC offset): one tuple each, so a thread never pairs a second with
#: another second's prefix.
_utc_second: tuple[int, str] = (-1, "")
_local_second: tuple[int, str, str] = (-1, "", "")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def utc_timestamp(ns: int) -> str:
    """``ns`` (since the epoch) in ISO 8601 UTC with exactly six fractional digits.

    ``datetime.isoformat()`` drops the fraction on a whole second; a log reader
    (and a sort on the raw text) expects one fixed width.
    """
    global _utc_second
    seconds, nanos = divmod(ns, 1_000_000_000)
    cached, prefix = _utc_second
    if cached != seconds:
        t = time.gmtime(seconds)
        # Not %Y: it gives "385" for a year before 1000, no ISO 8601 year.
        prefix = f"{t.tm_year:04d}{time.strftime('-%m-%dT%H:%M:%S', t)}"
        _utc_second = (seconds, prefix)
    return f"{prefix}.{nanos // 1000:06d}Z"


def local_timestamp(ns: int) -> str:
    """``ns`` in local time with its UTC offset, for a person: ``2026-11-23 19:19:50.750000-05:00``.

    Local, as structlog's console default and ``journalctl`` show it; with the
    offset, so the line says which instant it is (a DST change, a reader in
    another zone, a JSON line's UTC ``timestamp`` to compare it with).
    """
    global _local_second
    seconds, nanos = divmod(ns, 1_000_000_000)
    cached, prefix, offset = _local_second
    if cached != seconds:
        t = time.localtime(seconds)
        prefix = f"{t.tm_year:04d}{time.strftime('-%m-%d %H:%M:%S', t)}"
        offset = _utc_offset(t.tm_gmtoff)
        _local_second = (seconds, prefix, offset)
    return f"{prefix}.{nanos // 1000:06d}{offset}"


def _utc_offset(seconds: int) -> str:
    """``+HH:MM`` (``+HH:MM:SS`` for a local mean time of old dates), as ``isoformat()``."""
    sign = "-" if seconds < 0 else "+"
    minutes, second = divmod(abs(seconds), 60)
    offset = f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"
    return f"{offset}:{second:02d}" if second else offset


def local_from_utc(stamp: str) -> str:
    """A JSON line's ``timestamp`` (ISO 8601 UTC) as :func:`local_timestamp` shows it.

    Raises:
        ValueError: ``stamp`` is no such timestamp.
    """
    if not stamp.endswith("Z"):
        raise ValueError(f"not a UTC timestamp: {stamp!r}")
    return local_timestamp((datetime.fromisoformat(stamp) - _EPOCH) // _MICROSECOND * 1000)


#: The event_dict key of a stdlib record's creation time (ns), which the
#: timestamp then shows: a record handed on by a ``QueueListener`` or rebuilt by
#: a socket receiver reaches the handler well after it was made.
_CREATED_NS = "_aiodaemon_created_ns"


#: Years 1 to 9999: what an ISO 8601 timestamp can say.
_CREATED_RANGE = (-62_135_596_800.0, 253_402_300_800.0)


def _created_ns(record: logging.LogRecord) -> int | None:
    """``record.created`` in nanoseconds, to the nearest microsecond; None if it is no time."""
    created = record.created
    if not isinstance(created, int | float) or not (
        _CREATED_RANGE[0] <= created < _CREATED_RANGE[1]
    ):
        return None  # a hand-made record (makeLogRecord) may hold anything: then "now"
    # Integer arithmetic from here on: x.9999996 becomes the next whole second,
    # never a 60th second or a seven-digit fraction.
    return round(created * 1_000_000) * 1000


#: The record's own columns: a key of these names the program logged is renamed ``user_<key>``.
_OWN_COLUMNS = ("timestamp", "level", "logger", "pid")


def _meta(stamp: Callable[[int], str]) -> Callable[..., Any]:
    def add_meta(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> Any:
        """Put ``timestamp``, ``level``, ``event``, ``logger`` first, then ``pid``, then the rest.

        One processor instead of four, and a fixed key order: a person scanning
        the file finds the same columns at the start of every line. ``logger``
        is the logger's own name (a stdlib record stands in for its logger):
        a key of that name the program logged, bound or passed in ``extra=``
        is written as ``user_logger``, as ``timestamp``, ``level`` and ``pid``
        are, so the column says which logger wrote the line, for both APIs alike.
        """
        name = getattr(logger, "name", None)
        if type(name) is not str:
            name = "root" if name is None else safe_str(name)
        logged = {key: event_dict.pop(key) for key in _OWN_COLUMNS if key in event_dict}
        if "stack_info" in event_dict:
            _add_stack(event_dict)
        created = event_dict.pop(_CREATED_NS, None)
        ordered = {
            "timestamp": stamp(time.time_ns() if created is None else created),
            # The method's, never a key the program logged (a tank's level=0.5):
            # the column must say what the syslog severity and the echo go by.
            "level": _METHOD_LEVEL.get(method_name, method_name),
            "event": event_dict.pop("event", None),
            "logger": name,
            "pid": _pid,
        }
        ordered.update(event_dict)
        # The program's own value of a column's name (a tank's level=0.5) is
        # kept, renamed, never dropped without a word; a key it logged under
        # the new name itself wins.
        for key, value in logged.items():
            ordered.setdefault(f"user_{key}", value)
        return ordered

    return add_meta


#: structlog's stack walk, skipping this package's frames as it skips its own.
_STACK = structlog.processors.StackInfoRenderer(additional_ignores=["aiodaemon._logs"])


def _add_stack(event_dict: MutableMapping[str, Any]) -> None:
    """``stack_info=True`` of a structlog call: the stack where it was made, as stdlib writes it.

    Under the same key as a stdlib record's (already text, formatted by
    ``logging`` at the call): one column for both APIs. Only records that ask
    pay for the walk; a false ``stack_info`` is not written.
    """
    asked = event_dict["stack_info"]
    if isinstance(asked, str):
        return
    if not asked:
        del event_dict["stack_info"]
        return
    found: dict[str, Any] = {"stack_info": True}
    _STACK(None, "", found)
    event_dict["stack_info"] = found["stack"]


_add_meta_json = _meta(utc_timestamp)
_add_meta_console = _meta(local_timestamp)


# Not OPT_NON_STR_KEYS: orjson would write {200: 1, "200": 2} with "200" twice,
# and a reader keeps one value. A key that is not a string fails the fast path,
# and _json_safe writes it as orjson would, made distinct where it collides.
_JSON_OPTIONS = orjson.OPT_APPEND_NEWLINE


def _render_json(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> bytes:
    """One JSON line as bytes; values orjson has no encoding for are written as their ``repr``.

    A record orjson refuses (a string that is not valid Unicode, an integer
    beyond 64 bits, a cycle, a key that is not a string) is written all the same,
    with only the refused parts rewritten by :func:`_json_safe`; so is one
    holding a NaN or an infinity, which orjson would write as null.
    """
    try:
        line = orjson.dumps(event_dict, default=repr, option=_JSON_OPTIONS)
    except TypeError:
        pass
    else:
        # orjson writes a NaN or an infinity as null, as it writes None: only
        # a line with a null can have lost one, and most have none.
        if line.find(b"null") < 0 or not _has_nonfinite(event_dict.values()):
            return line
    safe = _json_safe(dict(event_dict), 0)
    return orjson.dumps(safe, default=repr, option=_JSON_OPTIONS)


def _has_nonfinite(values: Iterable[Any]) -> bool:
    """Whether one of ``values`` is, or holds, a float NaN or infinity that orjson wrote as null.

    Walks what orjson walks itself: dicts, lists and tuples, an enum's value
    and a dataclass's attributes. Only called on what orjson took, so there
    is no cycle and no deeper nesting than it allows. Run on every line with
    a null: the common values are passed over first.
    """
    for value in values:
        kind = type(value)
        if kind is str or kind is int or value is None:
            continue
        if isinstance(value, float):
            if not math.isfinite(value):
                return True
        elif isinstance(value, dict):
            if _has_nonfinite(value.values()):
                return True
        elif isinstance(value, list) or kind is tuple:
            if _has_nonfinite(value):
                return True
        elif isinstance(value, enum.Enum):
            if _has_nonfinite((value.value,)):
                return True
        elif "__dataclass_fields__" in kind.__dict__ and _has_nonfinite(
            _dataclass_attrs(value).values()
        ):
            return True
    return False


def _dataclass_attrs(value: Any) -> dict[str, Any]:
    """The attributes orjson writes for a dataclass instance, in its order.

    Its ``__dict__`` when it has one (attributes set after ``__init__`` too),
    else its fields; either way without the names that start with ``_``.
    Only for an instance whose own class is a dataclass (``__dataclass_fields__``
    in the class's ``__dict__``): orjson writes the instance of a plain
    subclass as its ``repr``.
    """
    attrs = getattr(value, "__dict__", None)
    if attrs is None:
        attrs = {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
    return {name: attr for name, attr in attrs.items() if not name.startswith("_")}


def _json_safe(value: Any, depth: int) -> Any:
    """``value`` with what orjson refuses rewritten, everything else as in a normal line.

    - A string that UTF-8 cannot encode has each surrogate code point in it
      replaced by U+FFFD, the replacement character, which every UTF-8 decoder
      shows for invalid input: a byte of a file name that is not UTF-8 (which
      ``os.fsdecode`` turns into U+DC80-U+DCFF) or a lone surrogate. The rest
      of the string, backslashes included, is kept, so ``\\xff`` in a name
      still reads as those four characters and never as a byte.
    - An integer beyond 64 bits is written as its decimal digits, a string,
      and a float NaN or infinity as its ``repr`` (``"nan"``, ``"-inf"``).
    - Dicts, lists and tuples are walked (to :data:`_MAX_DEPTH` levels; deeper,
      or a cycle, is the ``repr``); each key becomes the string it is written
      as (orjson's form, else its ``str``), and one that then reads as another
      key of its dict is made distinct.
    - An enum is its value and a dataclass the object of its attributes (as
      orjson writes them), walked as above.
    - Anything else is left to orjson, with ``default=repr``, as in a normal
      line (a datetime stays ISO 8601, a UUID its string); one it still
      refuses is written as its ``repr``.
    """
    if isinstance(value, str):
        return _valid_text(value)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, float):
        # JSON has no number for it; orjson's null would read as None. The
        # float's own repr: an enum member that is a float shows "<Tank.X: nan>".
        return value if math.isfinite(value) else float.__repr__(value)
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**64 else repr(value)
    if isinstance(value, (dict, list)) or type(value) is tuple:
        # The containers orjson walks itself (a namedtuple is written as its repr).
        if depth > _MAX_DEPTH:
            return _json_safe(safe_repr(value), depth)
        if isinstance(value, dict):
            safe: dict[Any, Any] = {}
            for k, v in value.items():
                key = _json_key(k)
                if key in safe:
                    key = _distinct_key(k, safe)
                safe[key] = _json_safe(v, depth + 1)
            return safe
        return [_json_safe(v, depth + 1) for v in value]
    if isinstance(value, enum.Enum):
        # orjson writes an enum as its value: so is one whose value it refused.
        return _json_safe(value.value, depth + 1)
    if "__dataclass_fields__" in type(value).__dict__:
        # Walked as orjson walks it, so a NaN or a surrogate inside is written
        # as anywhere else, not as null nor the whole object as its repr.
        if depth > _MAX_DEPTH:
            return _json_safe(safe_repr(value), depth)
        return {key: _json_safe(v, depth + 1) for key, v in _dataclass_attrs(value).items()}
    try:
        return orjson.Fragment(orjson.dumps(value, default=repr, option=orjson.OPT_NON_STR_KEYS))
    except TypeError:
        return _json_safe(safe_repr(value), depth)


def _json_key(key: Any) -> str:
    """The string a dict key is written as: orjson's (OPT_NON_STR_KEYS) form, else ``str``.

    As a string, a key that reads as another key of its dict (``200`` beside
    ``"200"``) is seen to collide.
    """
    if isinstance(key, str):
        return _valid_text(key)
    if isinstance(key, float) and not math.isfinite(key):
        return repr(key)
    try:
        text = orjson.dumps({key: None}, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        # safe_str: a key whose __repr__ raises (str() falls back to it) would
        # fail the log call, as such a value did.
        return _valid_text(safe_str(key))
    return str(next(iter(orjson.loads(text))))


def _valid_text(text: str) -> str:
    """``text`` with each surrogate code point (not valid Unicode) replaced by U+FFFD."""
    return text.translate(_no_surrogates()) if _has_surrogate(text) else text


def _distinct_key(key: Any, taken: dict[Any, Any]) -> str:
    """A key for ``key`` whose rewritten form is already one of ``taken``'s.

    File names ``caf<0xe8>`` and ``caf<0xe9>`` both read ``caf`` and U+FFFD:
    the second is written escaped as Python shows it (``caf\\udce9``), and
    numbered should even that be taken, so that no value is lost.
    """
    text = key if isinstance(key, str) else safe_str(key)
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    distinct, n = text, 1
    while distinct in taken:
        n += 1
        distinct = f"{text} ({n})"
    return distinct


#: Nesting kept in a degraded line; deeper (or a cycle) is written as its repr.
_MAX_DEPTH = 16


@functools.cache
def _no_surrogates() -> dict[int, str]:
    """The ``str.translate`` table mapping every surrogate code point to U+FFFD.

    Built on first use: its 2,048 entries took ~0.1 ms of every start, for
    records few daemons ever log.
    """
    return dict.fromkeys(range(0xD800, 0xE000), "\ufffd")


def _has_surrogate(text: str) -> bool:
    """Whether ``text`` holds a code point UTF-8 cannot encode (a surrogate)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


#: Structured tracebacks without local variables: they would copy secrets into the log.
_DICT_TRACEBACKS = structlog.processors.ExceptionRenderer(
    structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
)


def wants_colors(on_terminal: bool) -> bool:
    """Whether console lines on stderr get colour codes: no-color.org, then FORCE_COLOR.

    Args:
        on_terminal: stderr is a terminal of the foreground daemon.
    """
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return on_terminal and os.environ.get("TERM") != "dumb"


def processors(log_format: str, *, colors: bool, encoding: str = "utf-8") -> list[Any]:
    """The chain for ``log_format``; console lines are encoded in ``encoding`` (JSON: UTF-8)."""
    if log_format == "console":
        # Only for console lines (_launch's _preload loads it before a chroot or a
        # drop): a JSON daemon's start does not pay for it.
        from ._console import console_encoder, console_renderer

        return [
            structlog.contextvars.merge_contextvars,
            _add_meta_console,
            console_renderer(colors),
            console_encoder(encoding),
        ]
    return [
        structlog.contextvars.merge_contextvars,
        _add_meta_json,
        _DICT_TRACEBACKS,
        _render_json,
    ]


def _interpolate(event: Any, args: tuple[Any, ...]) -> Any:
    """``event % args`` as structlog does it: one non-empty mapping is used by name."""
    if len(args) == 1 and isinstance(args[0], Mapping) and args[0]:
        return event % args[0]
    return event % args


def _unformatted(
    event: Any, args: tuple[Any, ...], kw: dict[str, Any], error: Exception
) -> tuple[Any, dict[str, Any]]:
    """The record of a call whose arguments do not fit its message, as a stdlib one is written.

    structlog's own level methods raise the error into the program
    (``log.info("%s", a, b)`` ended ``main``), where ``logging`` writes the
    record with why it failed (:meth:`StdlibHandler.handleError`): so here, the
    unformatted message, ``args`` (the ``repr`` of each, or of the one mapping)
    and ``logging_error``, beside the call's keyword arguments.
    """
    failed = dict(kw)
    try:
        by_name = len(args) == 1 and isinstance(args[0], Mapping) and bool(args[0])
    except Exception:  # a mapping whose __len__ raises: shown as any argument
        by_name = False
    failed["args"] = safe_repr(args[0]) if by_name else [safe_repr(arg) for arg in args]
    failed["logging_error"] = f"{type(error).__name__}: {safe_str(error)}"
    return (event if isinstance(event, str) else safe_repr(event)), failed


#: structlog's level methods, each with its stdlib level.
_LEVEL_METHODS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


@functools.cache
def filtering_bound_logger(min_level: int) -> type[FilteringBoundLogger]:
    """``structlog.make_filtering_bound_logger(min_level)`` whose calls never raise on a bad format.

    Its methods below ``min_level`` stay structlog's no-ops. The others
    interpolate positional arguments as structlog's do, writing a record
    that fails to as :func:`_unformatted` says, and go on as structlog's do;
    ``exception()`` calls ``error()``, so it is covered too.
    """
    base: Any = structlog.make_filtering_bound_logger(min_level)
    methods: dict[str, Any] = {}
    for name, level in _LEVEL_METHODS.items():
        if level >= min_level:
            methods[name] = _level_method(name)
            methods[f"a{name}"] = _async_method(getattr(base, f"a{name}"))
    for alias, name in (("fatal", "critical"), ("warn", "warning"), ("msg", "info")):
        if name in methods:
            methods[alias], methods[f"a{alias}"] = methods[name], methods[f"a{name}"]
    methods["log"] = _with_level(base.log)
    methods["alog"] = _with_level(base.alog)
    cls: type[FilteringBoundLogger] = type(base.__name__, (base,), methods)
    return cls


def _level_method(name: str) -> Callable[..., Any]:
    def meth(self: Any, event: Any = None, *args: Any, **kw: Any) -> Any:
        if args:
            try:
                event = _interpolate(event, args)
            except Exception as error:
                event, kw = _unformatted(event, args, kw, error)
        return self._proxy_to_logger(name, event, **kw)

    meth.__name__ = meth.__qualname__ = name
    return meth


def _async_method(method: Callable[..., Any]) -> Callable[..., Any]:
    """structlog's ``ainfo`` (or another level's) given an event already formatted.

    A plain function returning structlog's coroutine for the caller to await,
    not a coroutine of its own: structlog takes the frame that awaits it for
    the caller's, whose stack and call site a record reports.
    """

    def ameth(self: Any, event: Any = None, *args: Any, **kw: Any) -> Any:
        if args:
            try:
                event = _interpolate(event, args)
            except Exception as error:
                event, kw = _unformatted(event, args, kw, error)
        return method(self, event, **kw)

    ameth.__name__ = ameth.__qualname__ = method.__name__
    return ameth


def _with_level(method: Callable[..., Any]) -> Callable[..., Any]:
    """structlog's ``log(level, ...)`` or ``alog`` given an event already formatted."""

    def log(self: Any, level: int, event: Any = None, *args: Any, **kw: Any) -> Any:
        if args:
            try:
                event = _interpolate(event, args)
            except Exception as error:
                event, kw = _unformatted(event, args, kw, error)
        return method(self, level, event, **kw)

    log.__name__ = log.__qualname__ = method.__name__
    return log


class QueueLogger:
    """structlog's wrapped logger: each level method queues the rendered line."""

    __slots__ = ("_put", "name")

    def __init__(self, name: str, put: Callable[[int, bytes], None]) -> None:
        self.name = name
        self._put = put

    def critical(self, line: bytes) -> None:
        self._put(2, line)

    def error(self, line: bytes) -> None:
        self._put(3, line)

    def warning(self, line: bytes) -> None:
        self._put(4, line)

    def info(self, line: bytes) -> None:
        self._put(6, line)

    def debug(self, line: bytes) -> None:
        self._put(7, line)

    fatal = critical
    exception = err = error
    warn = warning
    msg = log = info


def _caller_module() -> str:
    frame: FrameType | None = sys._getframe(2)
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if not (name.startswith("structlog") or name == __name__):
            return str(name)
        frame = frame.f_back
    return "root"


class QueueLoggerFactory:
    def __init__(self, put: Callable[[int, bytes], None]) -> None:
        self._put = put

    def __call__(self, *args: Any) -> QueueLogger:
        # Like structlog.stdlib: get_logger() is named after the calling module.
        name = args[0] if args and isinstance(args[0], str) else _caller_module()
        return QueueLogger(name, self._put)


def import_bound_processors(
    chain: list[Any], put: Callable[[int, bytes], None], level: int
) -> list[Any]:
    """The processors of the loggers a program made before logging started.

    ``log = structlog.get_logger().bind(...)`` at import builds its logger
    there and then, from the configuration of that time (structlog's defaults:
    a ``PrintLogger`` on stdout, a detached daemon's /dev/null, unfiltered; or
    the program's own), holding that configuration's processor list. That
    list, given these processors, sends their records through ``chain`` to the
    writer like any other, filtered at ``level``; their ``logger`` is the
    logger's name, else the calling module (a ``PrintLogger`` keeps none).
    """
    numbers = logging.getLevelNamesMapping()

    def number(method_name: str) -> int:
        """The stdlib level of a structlog method (its alias resolved as for the column)."""
        return numbers.get(_METHOD_LEVEL.get(method_name, method_name).upper(), logging.INFO)

    def forward(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> Any:
        levelno = number(method_name)
        # Their wrapper class may filter nothing (structlog's default is NOTSET).
        if levelno < level:
            raise structlog.DropEvent
        if not isinstance(getattr(logger, "name", None), str):
            logger = QueueLogger(_caller_module(), put)
        line: Any = event_dict
        for processor in chain:
            line = processor(logger, method_name, line)
        put(severity_of(levelno), line)
        # Written: the logger behind it must write nothing.
        raise structlog.DropEvent

    return [forward]


#: LogRecord attributes that are not ``extra=`` fields, and ``event``: the
#: column holds the record's message, which an ``extra={"event": ...}`` replaced.
_RECORD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "event",
}


class StdlibHandler(logging.Handler):
    """Runs stdlib records through the structlog chain, so both give the same lines."""

    def __init__(
        self, processors: list[Any], put: Callable[[int, bytes], None], level: int
    ) -> None:
        super().__init__(level)
        self._processors = processors
        self._put = put

    def handle(self, record: logging.LogRecord) -> bool:
        # No handler lock: put() is thread-safe and must not serialise callers.
        if not self.filter(record):
            return False
        self.emit(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        try:
            event_dict: Any = {"event": record.getMessage(), _CREATED_NS: _created_ns(record)}
            for key, value in record.__dict__.items():
                if key not in _RECORD_ATTRS:
                    event_dict[key] = value
            if record.exc_info:
                event_dict["exc_info"] = record.exc_info
            if record.stack_info:
                event_dict["stack_info"] = record.stack_info
            method_name = record.levelname.lower()
            for processor in self._processors:
                # The record stands in for its logger: its name is the logger's.
                event_dict = processor(record, method_name, event_dict)
            self._put(severity_of(record.levelno), event_dict)
        except Exception:
            self.handleError(record)

    def handleError(self, record: logging.LogRecord) -> None:
        """Write a record that failed to render unformatted, with its arguments and why.

        The stdlib prints ``--- Logging error ---`` on stderr instead: /dev/null
        in a detached daemon, so ``log.warning("%s from %s", user)`` vanished
        without a word. Only values that cannot fail are used here (the
        ``extra=`` fields are left out: one of them may be the cause).
        """
        error = sys.exc_info()[1]
        try:
            args = record.args
            shown_args = (
                [safe_repr(arg) for arg in args] if isinstance(args, tuple) else safe_repr(args)
            )
            event_dict: Any = {
                "event": record.msg if isinstance(record.msg, str) else safe_repr(record.msg),
                "args": shown_args,
                "logging_error": f"{type(error).__name__}: {safe_str(error)}",
                _CREATED_NS: _created_ns(record),
            }
            method_name = record.levelname.lower()
            for processor in self._processors:
                event_dict = processor(record, method_name, event_dict)
            self._put(severity_of(record.levelno), event_dict)
        except Exception:
            super().handleError(record)


def severity_of(levelno: int) -> int:
    """The syslog severity (RFC 5424) of a stdlib level."""
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    return 6 if levelno >= logging.INFO else 7
