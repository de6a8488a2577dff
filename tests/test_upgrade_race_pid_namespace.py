"""The commands racing an upgrade, in a pid namespace of their own (a container's).

There ``/proc/locks`` leaves out the pidfile's lock once the process that took
it (a ``start``'s launcher, an upgraded daemon) has exited, where outside it
still names that pid: ``stop``, ``upgrade`` and ``reload`` must tell an
upgrade's new process from a daemon started afresh all the same. The races of
``test_upgrade_stop_race`` are run as they are, by a pytest inside
``unshare --pid --fork --mount-proc``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from .support import PYTHON, REPO, clean_env, require_tool

pytestmark = pytest.mark.root  # a pid namespace of its own (unshare --pid)

#: The races whose outcome hangs on telling a hand-over from a fresh start.
RACES = [
    "test_stop_that_read_the_old_pid_before_the_hand_over_stops_the_new_daemon",
    "test_stop_that_verified_the_old_pid_before_the_hand_over_stops_the_new_daemon",
    "test_upgrade_that_read_the_old_pid_before_another_hand_over_upgrades_the_new_daemon",
    "test_reload_that_read_the_old_pid_before_the_hand_over_reloads_the_new_daemon",
    "test_reload_that_verified_the_old_pid_before_the_hand_over_reloads_the_new_daemon",
    "test_upgrade_whose_daemon_was_replaced_by_a_fresh_start_says_so",
    "test_upgrade_whose_daemon_died_before_a_fresh_start_names_no_successor",
]


@pytest.mark.timeout(240)
@pytest.mark.parametrize("race", RACES)
def test_race_inside_a_pid_namespace_acts_on_whoever_serves_after_it(
    race: str, tmp_path: Path
) -> None:
    """Each race's command says and does inside the namespace what it does outside."""
    # The outer pytest's own variables (its xdist worker's) are not the inner one's.
    env = {k: v for k, v in clean_env().items() if not k.startswith("PYTEST_")}
    done = subprocess.run(
        [
            require_tool("unshare"),
            "--pid",
            "--fork",
            "--mount-proc",
            "--kill-child",
            PYTHON,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            f"--basetemp={tmp_path / 'inner'}",
            "-k",
            race,
            "tests/test_upgrade_stop_race.py",
        ],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=200,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout
    assert "failed" not in done.stdout
    assert "skipped" not in done.stdout
