"""The control socket's wire protocol, shared by the daemon (server) and the CLI (client).

One connection carries one request and one answer, each a single JSON object
on one line (UTF-8, ``\\n``-terminated; the client may also end its request by
shutting down its write side):

    request  {"v": 1, "cmd": "status"}
    answer   {"v": 1, "ok": true, "state": "running", "pid": 42, ...}

    request  {"v": 1, "cmd": "reload", "timeout": 60}
    answer   {"v": 1, "ok": true, "reload": {"ok": false, "error": "E: msg", "at": "..."}}

    any      {"v": 1, "ok": false, "error": "one line"}   (plus "timeout": true when
                                                           the wait ran out, or
                                                           "transient": true when
                                                           asking again later may
                                                           succeed: every slot taken,
                                                           an upgrade under way)

``v`` is the protocol version: a daemon refuses a request of another version
with ``ok: false``, so a client can tell "old daemon" from "broken daemon".
New commands are new ``cmd`` values; new answer keys may appear at any time
and clients ignore the ones they do not know. Synchronous and dependency-free:
the CLI imports this without asyncio.
"""

from __future__ import annotations

import json
import math

from ._fdshare import connection_cap
from ._messages import shown

TYPE_CHECKING = False  # not typing's: see aiodaemon/__init__.py
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "HANDOVER_WAIT",
    "LEFT_WHEN_HUNG_UP",
    "MAX_ANSWER",
    "MAX_CONNECTIONS",
    "MAX_REQUEST",
    "MAX_WAIT",
    "MAX_WAITING",
    "NOT_BEGUN_WHEN_HUNG_UP",
    "PROMPT_COMMANDS",
    "REQUEST_TIMEOUT",
    "VERSION",
    "ProtocolError",
    "VersionError",
    "decode",
    "encode",
    "failure",
]

#: The protocol version this side speaks.
VERSION = 1
#: Largest request a daemon reads, newline included; anything longer is refused.
MAX_REQUEST = 4096
#: Largest answer a client reads.
MAX_ANSWER = 1 << 20
#: Seconds a peer has to send its whole request.
REQUEST_TIMEOUT = 5.0
#: Longest wait a request may ask for (``timeout`` of ``reload``).
MAX_WAIT = 24 * 3600.0
#: Connections served at once; an allowed peer past it gets a "busy" failure.
MAX_CONNECTIONS = 40
#: Of those, how many may wait for a result (``reload``, ``upgrade``): the
#: rest stay free for the commands answered at once (:data:`PROMPT_COMMANDS`),
#: so reloads waiting on a slow hook never lock ``stop`` or ``status`` out.
MAX_WAITING = 32


def connection_caps(nofile: int) -> tuple[int, int]:
    """Control connections served at once, and how many of them may wait, under ``nofile``.

    :data:`MAX_CONNECTIONS` and :data:`MAX_WAITING`, lowered to an eighth of the
    soft RLIMIT_NOFILE: at 32 descriptors (the least a daemon starts with),
    40 idle clients would take every descriptor the service has left, and its
    own clients would be reset unseen.
    """
    total = connection_cap(MAX_CONNECTIONS, nofile)
    # One slot at least stays free of waiting reloads, for stop and status.
    return total, max(1, min(MAX_WAITING, total * MAX_WAITING // MAX_CONNECTIONS, total - 1))


#: The commands answered at once, which :data:`MAX_WAITING` does not limit.
PROMPT_COMMANDS = frozenset({"status", "stop"})
#: The commands whose wait ends when the client hangs up: the reload runs on,
#: but a client gone (an interrupted ``reload --timeout 86400``) must not keep
#: its slot. Not ``upgrade``: one asked for is never left half-done.
LEFT_WHEN_HUNG_UP = frozenset({"reload"})
#: The commands not begun when their client has hung up before the daemon
#: read the request (a loop held up meanwhile): an upgrade nobody waits for any
#: more (the command timed out, was interrupted or killed) is not started
#: behind its user's back. One begun runs to its end, its outcome in the log.
NOT_BEGUN_WHEN_HUNG_UP = frozenset({"upgrade"})
#: Seconds an upgrade's new process has, once told to take over, to write its
#: pid and serve the control socket; then the old daemon kills it and takes the
#: pidfile back. Meanwhile the pidfile names the new process and its parent
#: answers on the socket: the commands wait that out (within their timeout).
HANDOVER_WAIT = 10.0


class ProtocolError(ValueError):
    """A message that is not one JSON object of this protocol's version."""


class VersionError(ProtocolError):
    """A message of this protocol in another version: the peer runs another aiodaemon.

    Attributes:
        version: the version the message is in.
        error: its ``error`` (a refusal's one line), None when it has none.
    """

    def __init__(self, version: int, error: str | None) -> None:
        super().__init__(_unsupported(version))
        self.version = version
        self.error = error


def encode(message: dict[str, Any]) -> bytes:
    """One message as its line on the wire."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=True).encode() + b"\n"


def decode(data: bytes) -> dict[str, Any]:
    """Parse one line into a message of this version.

    Raises:
        VersionError: an object of another version (an integer ``v`` other
            than :data:`VERSION`).
        ProtocolError: not UTF-8 JSON (NaN and infinite numbers are not), not
            an object, or no version (``v`` must be an integer).
    """
    try:
        message = json.loads(data.decode("utf-8"), parse_constant=_not_json, parse_float=_finite)
    except (UnicodeDecodeError, ValueError, RecursionError):
        # RecursionError: a few thousand nested "[" fit in a request, and the
        # decoder recurses once per level; that is malformed input too.
        raise ProtocolError("not a JSON object") from None
    if not isinstance(message, dict):
        raise ProtocolError("not a JSON object")
    version = message.get("v")
    # An integer, not True or 1.0 (both == 1): "v": true is no request of ours.
    if type(version) is not int:
        raise ProtocolError(_unsupported(version))
    if version != VERSION:
        error = message.get("error")
        raise VersionError(version, error if isinstance(error, str) else None)
    return message


def _unsupported(version: object) -> str:
    # Named with the version this side speaks, so that the peer's user (another
    # aiodaemon's CLI) learns both.
    return f"protocol version {shown(version)} is not supported (this side speaks {VERSION})"


def _not_json(name: str) -> Any:
    # NaN, Infinity and -Infinity: Python's extension, not JSON. A NaN timeout
    # would pass every "> 0" check and then sit in the event loop's timer heap.
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    # 1e999 is valid JSON that Python reads as infinity: refused the same way.
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range")
    return value


def failure(error: str, **extra: Any) -> dict[str, Any]:
    """An answer saying the request failed, with a one-line ``error``."""
    return {"v": VERSION, "ok": False, "error": " ".join(error.split()), **extra}
