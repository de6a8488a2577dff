"""examples/uvicorn_app.py with uvicorn's ``limit_max_requests=2``: uvicorn ends on its own.

tests/test_servers.py checks that the daemon then ends too, instead of running
on with nothing serving.
"""

from __future__ import annotations

import functools

import uvicorn

from examples import uvicorn_app
from examples.uvicorn_app import main

__all__ = ["main"]

# The example builds its uvicorn.Config through the module's ``uvicorn`` name.
limited = functools.partial(uvicorn.Config, limit_max_requests=2)
vars(uvicorn_app)["uvicorn"] = type("limited_uvicorn", (), {"Config": limited})
