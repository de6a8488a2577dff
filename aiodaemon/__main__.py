"""``python -m aiodaemon``: the same command as the ``aiodaemon`` console script."""

from __future__ import annotations

from ._cli._main import main

if __name__ == "__main__":
    raise SystemExit(main())
