"""How a run ended: one record, written through two methods, read once at the exit."""

from __future__ import annotations

from ..exceptions import ExitCode

__all__ = ["Outcome", "ProgramRaised", "error_text", "exit_status", "raised"]

#: Characters of a failure's message kept in its one-line summary (the launcher's
#: line, the ``exit`` record's reason); the logged traceback keeps all of it.
SUMMARY_LIMIT = 2000


class ProgramRaised(Exception):
    """A failure of the program's that ``except Exception`` would miss, as an Exception.

    ``GeneratorExit``, a ``BaseException`` subclass of the program's, or a
    ``CancelledError`` that ended a hook or ``main`` nothing of the daemon's
    cancelled: each ends that hook or ``main`` as a failure like any other
    (a CancelledError taken for the shutdown's own would end nothing, and
    the daemon would wait for ever). ``raised`` is what the program raised
    (also the ``__cause__``, whose traceback shows where).
    """

    def __init__(self, raised: BaseException) -> None:
        super().__init__(raised)
        self.raised = raised


def exit_status(code: int) -> int:
    """The status a process asking for ``code`` exits with, and that the ``exit`` record says.

    An exit status is one byte: the kernel keeps the low 8 bits of any other
    number (``sys.exit(-1)`` exits 255). A non-zero request never reads as
    success, though: 256, 512 and the like exit 1, where the kernel would
    make them 0 and a supervisor would see a clean stop.
    """
    code = int(code)
    if 0 <= code <= 255:
        return code
    return code & 0xFF or ExitCode.FAILURE


def raised(exc: BaseException) -> BaseException:
    """What the program raised: ``exc`` itself, or the one a :class:`ProgramRaised` carries."""
    return exc.raised if isinstance(exc, ProgramRaised) else exc


def error_text(exc: BaseException) -> str:
    """``Type: message`` for a failure's one-line summary, never raising.

    What the program raised stands for its :class:`ProgramRaised`. A
    ``__str__`` that raises gives ``<exception str() failed>``, as the
    interpreter's traceback says; a message longer than ``SUMMARY_LIMIT`` is cut.
    """
    exc = raised(exc)
    try:
        message = str(exc)
    except Exception:
        message = "<exception str() failed>"
    if len(message) > SUMMARY_LIMIT:
        cut = len(message) - SUMMARY_LIMIT
        message = f"{message[:SUMMARY_LIMIT]}... ({cut} more characters)"
    name = type(exc).__name__
    return f"{name}: {message}" if message else name


class Outcome:
    """The exit status, the first failure's one-line message and its exception.

    The first non-zero status and the first message win: what went wrong first
    is the cause, whatever the shutdown it started went through afterwards.
    """

    # A plain class, not a dataclass: defining one costs every start ~0.3 ms.
    __slots__ = ("code", "exception", "message", "requested")

    def __init__(self) -> None:
        self.code: int = ExitCode.OK
        self.message: str | None = None
        self.exception: BaseException | None = None
        #: the program chose its status itself (``sys.exit(n)``), 0 included.
        self.requested = False

    def exit_with(self, code: int) -> None:
        """Ask for ``code`` as the exit status unless an earlier one is set."""
        if code and not self.code:
            self.code = int(code)

    def fail(
        self,
        message: str,
        exception: BaseException | None = None,
        code: int = ExitCode.FAILURE,
    ) -> None:
        """Record a failure: ``message`` for the launcher, ``exception`` for the traceback."""
        self.exit_with(code)
        if self.message is None:
            self.message = message
            self.exception = exception

    def end_before_ready(self, code: int, message: str) -> None:
        """The program asked to end (``sys.exit(code)``) before it was ready.

        Unlike a failure, ``sys.exit(0)`` keeps its 0 as the daemon's status:
        the program decided there was nothing to run. A launcher still exits 1
        with ``message``: no daemon runs (see ``Runtime.release_launcher``).
        """
        self.fail(message, None, code)
        if not self.code:
            self.requested = True

    def force(self, code: int, message: str) -> None:
        """A forced exit: its status replaces any other (the run did not end as it meant to)."""
        self.code = int(code)
        if self.message is None:
            self.message = message

    @property
    def errno(self) -> int | None:
        """The failure's ``errno`` when it came from the system (systemd's ``ERRNO=``).

        aiodaemon's own errors keep the system error as their cause (``raise ... from exc``).
        """
        for exc in (self.exception, getattr(self.exception, "__cause__", None)):
            errno = getattr(exc, "errno", None)
            if isinstance(errno, int):
                return errno
        return None
