"""python-daemon's drop with ``initgroups``: ``pep3143_user_groups.py USER REPORT``.

Run as root, in the foreground; the daemon writes its groups as JSON into
REPORT (opened before the drop).
"""

from __future__ import annotations

import json
import os
import pwd
import sys

from aiodaemon import pep3143 as daemon

USER, REPORT = sys.argv[1:3]


def main() -> None:
    """Open the context as USER with its groups, and report them."""
    entry = pwd.getpwnam(USER)
    report = open(REPORT, "w")  # noqa: SIM115 (written by the daemon)
    context = daemon.DaemonContext(
        uid=entry.pw_uid,
        gid=entry.pw_gid,
        initgroups=True,
        detach_process=False,
        files_preserve=[report],
    )
    with context:
        json.dump(sorted(os.getgroups()), report)
        report.close()


if __name__ == "__main__":
    main()
