"""Prints through the daemon's sys.stdout onto a file at its size limit, and says how it wrote.

``streams.json`` next to it (copied as app.py) holds the stream's encoding,
error handler, line buffering and write-through at import and in ``main``,
and the errno of a print to a closed fd 1 (any error but a lack of space is
the program's, as before).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent


def attributes() -> dict[str, Any]:
    stream = sys.stdout
    return {
        "encoding": stream.encoding,
        "errors": stream.errors,
        "line_buffering": stream.line_buffering,
        "write_through": getattr(stream, "write_through", None),
    }


AT_IMPORT = attributes()


async def main() -> None:
    print("caf\xe9 \udcff")  # fits: latin-1, the lone surrogate escaped back to its byte
    print("x" * 5000)  # past the limit: cut short, the rest lost
    print("after")  # the file is at its limit: lost
    record: dict[str, Any] = {"import": AT_IMPORT, "main": attributes()}
    saved = os.dup(1)
    os.close(1)
    try:
        print("to a closed fd", flush=True)
    except OSError as exc:
        record["closed"] = exc.errno
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    (HERE / "streams.json").write_text(json.dumps(record), encoding="utf-8")
