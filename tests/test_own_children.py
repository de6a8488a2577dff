"""The exit signals only processes that are still the daemon's own children.

With a pidfd (checked through it) and without one (an old kernel, a seccomp
profile refusing ``pidfd_open``: only unreaped children of this process).
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from aiodaemon._run._own_children import claim_own, kill_own, own_pids

from .support import PYTHON, dead_pid, is_alive, kill_quietly, proc_state, wait_for, wait_gone

#: A child of ours that starts a grandchild (not ours), prints its pid, then waits on stdin.
#: The grandchild idles until the fixture kills it: one reading a pipe from the child
#: saw its end when the child was killed, and exited before the test could look.
_PARENT = (
    "import subprocess, sys\n"
    "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'],"
    " stdin=subprocess.DEVNULL)\n"
    "print(g.pid, flush=True)\n"
    "sys.stdin.read()\n"
)


@pytest.fixture(params=["pidfd", "no-pidfd"])
def pidfd(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test with the kernel's pidfds, and as on a kernel without them."""
    if request.param == "no-pidfd":

        def refused(pid: int, flags: int = 0) -> int:
            raise OSError(errno.ENOSYS, os.strerror(errno.ENOSYS))

        monkeypatch.setattr(os, "pidfd_open", refused)
    param: str = request.param
    return param


@pytest.fixture
def family() -> Iterator[tuple[subprocess.Popen[str], int]]:
    """A child of this process and its own child (this process's grandchild)."""
    with subprocess.Popen(
        [PYTHON, "-c", _PARENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as child:
        assert child.stdout is not None
        grandchild = int(child.stdout.readline())
        try:
            yield child, grandchild
        finally:
            kill_quietly(grandchild)
            kill_quietly(child.pid)


def test_only_the_own_unreaped_children_are_claimed_and_killed(
    pidfd: str, family: tuple[subprocess.Popen[str], int]
) -> None:
    """Of a child, a grandchild and a reaped child's pid, only the child is killed."""
    child, grandchild = family
    gone = dead_pid()
    assert own_pids([child.pid, grandchild, gone, os.getpid()]) == [child.pid]
    owned = claim_own([child.pid, grandchild, gone])
    assert [c.pid for c in owned] == [child.pid]
    assert (owned[0].pidfd is None) == (pidfd == "no-pidfd")
    kill_own(owned)
    assert child.wait(timeout=10) == -signal.SIGKILL
    assert is_alive(grandchild)


def test_a_zombie_child_is_still_ours(pidfd: str) -> None:
    """An ended child not yet reaped holds its pid: it is claimed, and the kill is harmless."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    # Not waited for (that would reap it): its /proc entry says when it has ended.
    wait_for(lambda: proc_state(child.pid) == "Z", 10, "the child's end")
    assert own_pids([child.pid]) == [child.pid]
    kill_own(claim_own([child.pid]))
    assert child.wait(timeout=10) == 0


def test_a_child_reaped_meanwhile_is_not_claimed(pidfd: str) -> None:
    """A child reaped after its pid was recorded is no longer ours: nothing is signalled."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    wait_gone(child.pid)
    assert claim_own([child.pid]) == []
