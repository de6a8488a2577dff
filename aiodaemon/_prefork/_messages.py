"""One-line messages for the terminal: what every error the user sees goes through."""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # not typing's: see aiodaemon/__init__.py
if TYPE_CHECKING:
    from typing import TextIO

__all__ = [
    "broken_install",
    "counted",
    "flush_stdio",
    "printable",
    "safe_repr",
    "safe_str",
    "say",
    "seconds_shown",
    "shown",
    "write_line",
]


def printable(text: str) -> str:
    """``text`` with control characters escaped: a message stays one line on a terminal."""
    # A list, not a generator: out of memory, a generator's failure is also
    # reported ("Exception ignored in: <generator ...>") as it is collected.
    return "".join([c if c.isprintable() else repr(c)[1:-1] for c in text])


def safe_repr(value: object) -> str:
    """``repr(value)``, or its type and that its ``__repr__`` raised: logging never fails on it."""
    try:
        return repr(value)
    except Exception as exc:
        return f"<{type(value).__name__} object; repr() raised {type(exc).__name__}>"


#: The most of a value's repr() a one-line message shows.
_SHOWN = 80


def shown(value: object) -> str:
    """``repr(value)`` for a one-line message, absurd values cut short.

    A huge int is shown as ``-1e+400``, not in its 400 digits (past 4,300,
    ``repr`` raises: a traceback instead of the message); any other repr by
    its first 80 characters.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        import decimal  # only for such a number

        return f"{decimal.Context(prec=6).create_decimal(value).normalize():e}"
    text = safe_repr(value)
    return text if len(text) <= _SHOWN else f"{text[:_SHOWN]}..."


#: The most decimals a number of seconds is written out with; a tinier one stays ``1e-20``.
_MOST_DECIMALS = 15


def counted(count: int, one: str, many: str) -> str:
    """``1 process``, ``2 processes``."""
    return f"{count} {one if count == 1 else many}"


def seconds_shown(value: float) -> str:
    """A number of seconds as messages write it: the figure itself, never rounded to 0.

    Every digit the figure has (Python's shortest repr: ``:g`` cut
    ``1234567.891`` to ``1.23457e+06``, and rounding ``1e-9`` to two places
    said "within 0 s"), written out (``0.000000001``, not ``1e-09``), with no
    ``.0`` after a whole number.
    """
    # 15 significant digits, all a double keeps exactly: a sum (a timeout and
    # its grace) shows no binary noise (0.30000000000000004).
    value = float(f"{float(value):.15g}")
    text = repr(value)
    mantissa, _, exponent = text.partition("e")
    if exponent:
        decimals = len(mantissa.partition(".")[2]) - int(exponent)
        if 0 <= decimals <= _MOST_DECIMALS:
            text = f"{value:.{decimals}f}"
    return text.removesuffix(".0")


def safe_str(value: object) -> str:
    """``str(value)``, or :func:`safe_repr` when its ``__str__`` raises."""
    try:
        return str(value)
    except Exception:
        return safe_repr(value)


def say(message: str) -> None:
    """Print ``aiodaemon: message`` as one line on stderr."""
    write_line(printable(f"aiodaemon: {message}"), sys.stderr)


def write_line(line: str, stream: TextIO | None = None) -> None:
    """Print ``line`` on ``stream`` (stdout by default), flushed.

    A reader that went away (``aiodaemon status | head -1``) is not an error
    of the command: the rest of its output is dropped, the command goes on
    and keeps its exit status. So is a stream the program closed, and one
    that fails (``> /dev/full``), which stderr then says.
    """
    stream = sys.stdout if stream is None else stream
    try:
        try:
            print(line, file=stream, flush=True)
        except UnicodeEncodeError:
            # A terminal whose encoding cannot say it (LANG=en_US.ISO-8859-1,
            # PYTHONIOENCODING=ascii) gets it escaped, as stderr always does,
            # rather than a traceback and an exit status that means something else.
            encoding = getattr(stream, "encoding", None) or "ascii"
            escaped = line.encode(encoding, "backslashreplace").decode(encoding)
            print(escaped, file=stream, flush=True)
    except BrokenPipeError:
        silence(stream)
    except OSError as exc:
        # A stream that cannot take it (`> /dev/full`: ENOSPC; a terminal that
        # hung up: EIO) loses this and the rest, as a reader that went away
        # does; the command's work and exit status stand (`start`'s daemon
        # runs). Said on stderr, since the output is missing.
        silence(stream)
        if stream is not sys.stderr:
            name = "stdout" if stream is sys.stdout else "the output"
            say(f"cannot write to {name}: {exc.strerror or exc}")
    except ValueError:
        pass  # the program closed the stream (sys.stderr.close()): nowhere to say it


def silence(stream: TextIO) -> None:
    """Send what is still written to ``stream`` to /dev/null.

    Its descriptor is pointed at /dev/null (and its buffer dropped there), so
    neither a later write nor the interpreter's flush at exit raises again.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    try:
        os.dup2(devnull, stream.fileno())
    except (OSError, ValueError):
        pass
    finally:
        os.close(devnull)


def flush_stdio() -> None:
    """Flush ``sys.stdout`` and ``sys.stderr`` before an ``os._exit``, which skips it.

    Each on its own, and never raising: a closed or broken stream must not
    keep the other from being flushed, nor the exit from happening.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except Exception:  # nothing left to tell: the process is leaving
            pass


def broken_install(exc: ImportError) -> str:
    """The line for a dependency that cannot be imported: the install is broken, not the program."""
    return f"cannot load what aiodaemon needs (reinstall it with its dependencies): {exc}"
