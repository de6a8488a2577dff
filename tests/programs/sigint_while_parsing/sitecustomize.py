"""Deliver a real SIGINT to the ``aiodaemon`` command while argparse parses its arguments.

Put on ``PYTHONPATH`` by a test: Ctrl-C in the first milliseconds of a command
lands there (a person's key, a terminal's hang-up), before any command runs.
"""

from __future__ import annotations

import argparse
import os
import signal
from typing import Any

_parse = argparse.ArgumentParser.parse_known_args


def _interrupted(self: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> Any:
    os.kill(os.getpid(), signal.SIGINT)
    return _parse(self, *args, **kwargs)


argparse.ArgumentParser.parse_known_args = _interrupted  # type: ignore[method-assign]
