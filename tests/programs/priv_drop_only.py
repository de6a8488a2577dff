"""drop_privileges alone, in a forked child: what the daemon calls after its last fork.

argv: options JSON, and a mode: "", "nobody-first" or "keep-caps".
"""

from __future__ import annotations

import json
import os
import resource
import sys

from aiodaemon._prefork._config import parse_options
from aiodaemon._prefork._privileges import drop_privileges
from aiodaemon.exceptions import StartupError

options = parse_options(json.loads(sys.argv[1]))
os.setgroups([0, 4, 27])  # root's supplementary groups, which must not survive
if len(sys.argv) > 2 and sys.argv[2] == "nobody-first":
    os.setresgid(65534, 65534, 65534)
    os.setresuid(65534, 65534, 65534)
if len(sys.argv) > 2 and sys.argv[2] == "keep-caps":
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    # PR_SET_SECUREBITS, SECBIT_NO_SETUID_FIXUP: a uid change keeps every capability.
    assert libc.prctl(28, 1 << 2, 0, 0, 0) == 0, ctypes.get_errno()
pid = os.fork()
if pid == 0:
    try:
        drop_privileges(options)
    except StartupError as exc:
        print(json.dumps({"error": str(exc)}), flush=True)
        os._exit(1)
    try:
        os.setuid(0)
        regain = "regained root"
    except OSError as exc:
        regain = exc.strerror or ""
    report = {
        "resuid": os.getresuid(),
        "resgid": os.getresgid(),
        "groups": os.getgroups(),
        "setuid0": regain,
        "core": resource.getrlimit(resource.RLIMIT_CORE),
        "cwd": os.getcwd(),
        "root_listing": sorted(os.listdir("/")),
    }
    print(json.dumps(report), flush=True)
    os._exit(0)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
