"""A foreground daemon whose reloads fail with a long error in Chinese; argv[1]: the log file.

aiodaemon keeps 2,000 characters of an error: in Chinese, three bytes each.
"""

from __future__ import annotations

import sys

import aiodaemon


@aiodaemon.on_reload
async def reload() -> None:
    raise RuntimeError("配置无效 " + "字段值不合法 " * 400)


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.wait_stopping()


aiodaemon.run(main, log_file=sys.argv[1])
