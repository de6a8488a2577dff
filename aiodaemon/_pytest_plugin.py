"""The pytest plugin of aiodaemon's testing kit (entry point ``pytest11``).

Loading it imports nothing of aiodaemon's runtime: the kit is imported only by
a test that asks for the fixture.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable


@pytest.fixture
def aiodaemon_launch() -> Callable[..., Any]:
    """:func:`aiodaemon.testing.launch`: ``async with aiodaemon_launch("app:main") as d:``."""
    from aiodaemon.testing import launch

    return launch
