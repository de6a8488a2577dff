"""run() with pickled options (they may be Paths, bytes, NaN...): main records that it ran.

argv: base64 pickled options, the file main creates, a marker for process scans.
"""

from __future__ import annotations

import base64
import pickle
import sys
from pathlib import Path

import aiodaemon

options = pickle.loads(base64.b64decode(sys.argv[1]))


async def main() -> None:
    Path(sys.argv[2]).touch()


aiodaemon.run(main, **options)
