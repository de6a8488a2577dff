"""The pytest plugin of aiodaemon's testing kit (entry point ``pytest11``).

Loading it imports nothing of aiodaemon's runtime: the kit is imported only by
a test that asks for the fixture.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from aiodaemon.testing import Launch


@pytest.fixture(scope="session")
def aiodaemon_launch() -> Launch:
    """:func:`aiodaemon.testing.launch`: ``async with aiodaemon_launch("app:main") as d:``.

    Session-scoped (it holds no state: each ``launch`` owns its daemon), so a
    module- or session-scoped fixture can share one daemon between tests, and
    Hypothesis' ``@given`` tests may use it.
    """
    from aiodaemon.testing import launch

    return launch
