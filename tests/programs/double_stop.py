"""A daemon whose loop is blocked while a stop signal is sent twice, as GNU timeout does.

argv: options JSON, a directory for its marker files. main writes ``blocking``
and keeps the loop busy for two seconds; the shutdown hook writes ``hook``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import aiodaemon

options = json.loads(sys.argv[1])
marks = Path(sys.argv[2])


@aiodaemon.on_shutdown
async def hook() -> None:
    (marks / "hook").write_text("done")


async def main(ctx: aiodaemon.Context) -> None:
    (marks / "blocking").write_text("1")
    time.sleep(2.0)  # the loop cannot read either signal until this ends
    await ctx.wait_stopping()


aiodaemon.run(main, **options)
