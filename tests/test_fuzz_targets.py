"""TARGET specs of every shape, naming attributes of every kind: a program, or one line why not.

The attributes are in tests/programs/odd_targets.py: a number, an async
generator function, a property that raises, and a module ``__getattr__``
(PEP 562) whose lazy import fails.
"""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from aiodaemon._cli._importer import TargetError, load_target

from .support import aiodaemon_cli

MODULE = "tests.programs.odd_targets"

_MODULES = st.sampled_from([MODULE, "", ".", f"{MODULE}.", "tests..programs", "aiodaemon_no_mod"])
_ATTRS = st.one_of(
    st.sampled_from(["number", "stream", "two", "broken", "broken.main", "lazy", "lazy.main"]),
    st.just("coroutine"),
    st.sampled_from(["", "main", "missing", "number.real", "1x", "a b", "__getattr__"]),
    st.text(max_size=8),
)


@st.composite
def _specs(draw: st.DrawFn) -> str:
    module, attr = draw(_MODULES), draw(_ATTRS)
    return draw(st.sampled_from([f"{module}:{attr}", module, f"{module}:{attr}:{attr}"]))


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(_specs())
@example(f"{MODULE}:lazy")
@example(f"{MODULE}:broken.main")
@example(f"{MODULE}:stream")
def test_any_target_loads_or_is_a_one_line_target_error(spec: str) -> None:
    """Any TARGET: a program aiodaemon can run, or a TargetError of one line, nothing else."""
    error = ""
    try:
        load_target(spec)
    except TargetError as exc:
        error = str(exc)
    assert "\n" not in error


@pytest.mark.parametrize(
    ("attr", "said"),
    [
        ("lazy", "getting 'lazy' from 'tests.programs.odd_targets' failed: ModuleNotFoundError"),
        ("broken.main", "failed: RuntimeError: broken property"),
        ("stream", "is an async generator function (async def with yield)"),
        ("number", "is not an async function or an aiodaemon.Daemon (it is an int)"),
        # Closed once refused: no "coroutine ... was never awaited" line after it.
        ("coroutine", "is a coroutine object; TARGET names the async function itself"),
    ],
)
def test_a_target_that_fails_when_read_is_one_line(attr: str, said: str) -> None:
    """run, a TARGET whose lookup raises, an async generator or a number: exit 2, one line."""
    result = aiodaemon_cli("run", f"{MODULE}:{attr}", "--no-control")
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert said in result.stderr
    assert "odd_targets.py" in result.stderr or attr in ("stream", "number", "coroutine")
