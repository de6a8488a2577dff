"""A ``DaemonContext.open()`` that fails leaves the caller as it was: not inside the chroot.

aiodaemon changes the environment in the calling process before the fork (so
its errors reach the caller). A working directory missing inside the jail
failed after the chroot, and the caller, catching the error, was left in the
jail: none of its own files reachable, its cwd ``/`` there.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .support import program, python

pytestmark = pytest.mark.root


def test_a_missing_working_directory_in_the_jail_leaves_the_caller_outside(
    tmp_path: Path,
) -> None:
    """The error reaches the caller, which is back where it was, its pidfile gone."""
    (tmp_path / "jail").mkdir()
    result = python([program("pep3143_failed_jail"), tmp_path], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"failed: cannot enter workdir /missing inside chroot {tmp_path / 'jail'}: "
        "No such file or directory",
        f"cwd {tmp_path}",
        "outside visible True",
    ]
    assert not (tmp_path / "jail" / "d.pid").exists()


def test_an_absolute_pidfile_missing_outside_the_jail_says_where_it_was_looked_up(
    tmp_path: Path,
) -> None:
    """An absolute pidfile path is the host's, not the jail's: the error says so."""
    inside = f"/absent-{tmp_path.name}"  # in the jail only
    (tmp_path / "jail" / inside.lstrip("/")).mkdir(parents=True)
    pidfile = f"{inside}/p.pid"
    result = python([program("pep3143_failed_jail"), tmp_path, "/", pidfile], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"failed: cannot open pidfile {pidfile}: No such file or directory"
        " (a path outside the chroot_directory)",
        f"cwd {tmp_path}",
        "outside visible True",
    ]
    assert not Path(pidfile).exists()
