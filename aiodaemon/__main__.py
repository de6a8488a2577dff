"""``python -m aiodaemon``: the same command as the ``aiodaemon`` console script."""

from __future__ import annotations

import os
import sys

if __name__ == "__main__" and sys.path and not sys.flags.safe_path:
    # python -m put the current directory first on the path, where a program's
    # json.py or queue.py would replace the standard module for aiodaemon and
    # its libraries (a traceback from structlog). The console script has no such
    # entry; as there, the TARGET's import adds the directory, after checking
    # the program's name against the modules the daemon imports.
    try:
        if os.path.abspath(sys.path[0] or os.curdir) == os.getcwd():
            del sys.path[0]
    except OSError:
        pass  # a working directory that is gone: the importer says so

from ._cli._main import main  # after the path is fixed

if __name__ == "__main__":
    raise SystemExit(main())
