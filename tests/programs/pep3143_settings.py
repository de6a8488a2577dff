"""Open a foreground DaemonContext with the settings in argv[1] (JSON); print what happened.

Prints ``opened``, or the exception's type, the working directory and
``is_open`` when open() refused (so the test sees whether anything changed),
and with ``say`` as argv[2], the exception's message on a second line.
"""

from __future__ import annotations

import json
import os
import sys

from aiodaemon import pep3143

settings = json.loads(sys.argv[1])
settings["files_preserve"] = settings.get("files_preserve") or None
# The streams kept: open() would point them at /dev/null.
defaults = {"working_directory": "/", "stdout": sys.stdout, "stderr": sys.stderr}
context = pep3143.DaemonContext(detach_process=False, **(defaults | settings))
try:
    context.open()
except (pep3143.DaemonError, TypeError) as exc:
    kind = "DaemonError" if isinstance(exc, pep3143.DaemonError) else type(exc).__name__
    print(kind, os.getcwd(), context.is_open)
    if sys.argv[2:] == ["say"]:
        print(exc)
else:
    print("opened")
