"""aiodaemon.testing.launch() given values of any type for run()'s options.

Each is refused as run() would refuse it (a TypeError or ValueError naming the
option, or StartFailed with the daemon's own line), or taken: never an error
in Python's words from inside the kit (``unsupported operand type(s) for /``,
``Unknown format code 'o'``), never a daemon started on a value run() refuses
(``umask=True``, ``detach="yes"``, a control socket named ``5``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from aiodaemon._kit._options import TRANSLATORS
from aiodaemon._prefork._config import parse_options
from aiodaemon.exceptions import ConfigError
from aiodaemon.testing import StartFailed, launch

from .support import REPO

PROGRAM = REPO / "tests" / "programs" / "kit_app.py"

_VALUES = st.one_of(
    st.booleans(),
    st.integers(-5, 5),
    st.floats(allow_nan=False, min_value=-1, max_value=1),
    st.sampled_from(["", "x", "no", "0o22"]),
    st.lists(st.integers(0, 3), max_size=2),
    st.dictionaries(st.sampled_from(["a"]), st.integers(), max_size=1),
    st.builds(object),
)


async def _outcome(name: str, value: Any) -> str:
    """What launch() did with ``name=value``: "started", or the error it raised, in words."""
    try:
        async with launch(PROGRAM, **{name: value}):
            return "started"
    except StartFailed:
        return "refused by the daemon"
    except (TypeError, ValueError) as exc:
        return f"refused by the kit: {exc}"


def _run_accepts(name: str, value: Any) -> bool:
    """Whether run() itself takes ``name=value``."""
    try:
        parse_options({name: value})
    except ConfigError:
        return False
    return True


# A daemon for the values that pass on to it: some seconds in all.
@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(name=st.sampled_from(sorted(TRANSLATORS)), value=_VALUES)
@example(name="log_file", value=5)
@example(name="umask", value=1.5)
@example(name="start_timeout", value="abc")
@example(name="listen", value=5)
@example(name="detach", value="yes")
@example(name="control", value=5)
def test_any_value_is_refused_as_run_refuses_it_or_taken(name: str, value: Any) -> None:
    """launch(name=value): started only if run() takes it; else an error naming the option."""
    outcome = asyncio.run(_outcome(name, value))
    if outcome == "started":
        assert _run_accepts(name, value), f"{name}={value!r} started a daemon; run() refuses it"
    elif outcome.startswith("refused by the kit"):
        assert name in outcome, f"{name}={value!r}: {outcome}"
