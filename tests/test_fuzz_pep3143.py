"""pep3143.DaemonContext with a generated umask, uid, gid or files_preserve.

docs/migrating.md promises that bad settings raise DaemonError (or TypeError)
from ``open()`` before anything changed: a ``uid`` of -5 raised OverflowError
after the working directory was changed, ``umask="027"`` a TypeError of
``os.umask``'s, and a ``files_preserve`` fd past a C int failed after the fork.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from .support import program, python

_NUMBERS = st.one_of(
    st.integers(-(2**40), 2**40),
    st.sampled_from([-1, 0o777, 0o1000, 2**32 - 1, 2**32 - 2, 2**31]),
    st.floats(),
    st.text(max_size=4),
    st.booleans(),
)


@st.composite
def _settings(draw: st.DrawFn) -> dict[str, object]:
    name = draw(st.sampled_from(["umask", "uid", "gid", "files_preserve"]))
    value = draw(_NUMBERS)
    return {name: [value] if name == "files_preserve" else value}


# A child interpreter per example: a few seconds in all.
@pytest.mark.root  # uid=0 is a valid value only for root
@settings(max_examples=20, deadline=None, derandomize=True, database=None)
@given(_settings())
@example({"uid": -5})
@example({"umask": "027"})
@example({"files_preserve": [2**40]})
@example({"gid": 2**40})
def test_bad_numbers_are_refused_before_anything_changes(values: dict[str, object]) -> None:
    """open() with any umask/uid/gid/fd: opens, or DaemonError/TypeError with nothing changed."""
    with tempfile.TemporaryDirectory(prefix="aiodaemon-fuzz-") as tmp:
        result = python([program("pep3143_settings"), json.dumps(values)], cwd=Path(tmp))
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""
        refused = {f"{kind} {tmp} False\n" for kind in ("DaemonError", "TypeError")}
        assert result.stdout in {"opened\n", *refused}, result.stdout
