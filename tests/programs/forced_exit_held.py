"""forced_exit_sockets' daemon, whose forced exit pauses where a third signal can reach it.

argv: options (JSON), record, release. The forced exit's last step (its line on
stderr) first records "forced exit" and waits for the file ``release``, so the
test can send another stop signal into that window, which under load is only
microseconds wide otherwise.
"""

from __future__ import annotations

import sys

import aiodaemon
import aiodaemon._run._exit_notice
from tests.programs.recorder import record, wait_for_file

say = aiodaemon._run._exit_notice.say_nowait


def held_say(text: str) -> None:
    record("forced exit")
    wait_for_file(sys.argv[3])
    say(text)


aiodaemon._run._exit_notice.say_nowait = held_say


# The same daemon as forced_exit_sockets (a shutdown hook that hangs), run with
# the forced exit held: importing it registers its hooks and runs it.
import tests.programs.forced_exit_sockets  # noqa: E402, F401
