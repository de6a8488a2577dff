"""docs/logging.md's table of aiodaemon's own events is every record the code writes."""

from __future__ import annotations

import ast
import re
from collections import defaultdict

from .support import REPO
from .test_docs import DOCS, table_rows

PACKAGE = REPO / "aiodaemon"
LEVELS = {"debug", "info", "warning", "error", "critical", "exception"}
#: Keywords of a logging call that are not keys of the record.
NOT_KEYS = {"event", "exc_info", "failing", "to_failing"}
#: Events whose text is built at run time, with their levels and keys.
BUILT = {
    "not ready after S s": ({"error"}, {"start_timeout", "loop", "process", "hook", "stack"}),
    "upgrade abandoned: the daemon is stopping": ({"warning"}, {"successor"}),
    "reload forwarded": ({"info"}, {"successor"}),
    "reload held during the upgrade forwarded": ({"info"}, {"successor"}),
    **{
        f"{kind} hook returned": ({"warning"}, {"hook", "value", "ignored"})
        for kind in ("startup", "reload", "shutdown")
    },
}


def written_events() -> dict[str, tuple[set[str], set[str]]]:
    """Event -> (levels, keys) of every logging call with a literal event in aiodaemon/.

    Calls are ``_log.LEVEL("event", key=...)``, the log writer's
    ``self._log("LEVEL", "event", ...)`` and its ``self._alert(text, event="...")``.
    """
    found: dict[str, tuple[set[str], set[str]]] = defaultdict(lambda: (set(), set()))
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            args = node.args
            method = node.func.attr
            if method in LEVELS:
                level = "error" if method == "exception" else method
            elif method == "_log" and args and isinstance(args[0], ast.Constant):
                level, args = str(args[0].value), args[1:]
            elif method == "_alert":
                level = "error"
            else:
                continue
            texts = [a.value for a in args[:1] if isinstance(a, ast.Constant)]
            texts += [
                k.value.value
                for k in node.keywords
                if k.arg == "event" and isinstance(k.value, ast.Constant)
            ]
            for event in texts:
                if isinstance(event, str):
                    levels, keys = found[event]
                    levels.add(level)
                    keys.update(k.arg for k in node.keywords if k.arg and k.arg not in NOT_KEYS)
    return dict(found)


def documented_rows() -> list[tuple[list[str], set[str], set[str]]]:
    """(events, levels, keys) of each row of docs/logging.md's table."""
    return [
        (
            re.findall(r"`([^`]+)`", row[0]),
            {level.strip() for level in row[1].split(",")},
            set(re.findall(r"`([a-z_]+)`", row[2])),
        )
        for row in table_rows(DOCS / "logging.md", "## aiodaemon's own events")
    ]


def test_every_event_the_code_writes_is_documented() -> None:
    """Each literal event of aiodaemon's records has a row, and each row an event."""
    documented = [event for events, _, _ in documented_rows() for event in events]
    assert len(documented) == len(set(documented)), "an event in two rows"
    assert set(documented) - set(BUILT) == set(written_events())


def test_documented_levels_and_keys_are_the_written_ones() -> None:
    """A row's levels and keys are those of the calls that write its events."""
    written = {**written_events(), **BUILT}
    for events, levels, keys in documented_rows():
        assert levels == set().union(*(written[event][0] for event in events)), events
        assert keys == set().union(*(written[event][1] for event in events)), events
