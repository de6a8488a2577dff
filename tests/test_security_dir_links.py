"""Another user's directory above a daemon file: its symlinks lead root nowhere else.

The account a root daemon drops to may own a directory on the way to a log,
pidfile or socket (``/srv/app/logs/app.log``, ``~svc/run/app.pid``). It can
turn what lies below into a symlink to a directory of root's. The kernel would
follow it: at the next start root opened or bound the daemon's file *there*
and gave it to the account (``fchown``), at a reopen root created it there.
Every path option, at start and at a reopen, is refused with one clear line,
and nothing in root's directory is created, changed or given away. The walk
itself (:func:`aiodaemon._prefork._sharedfile.open_directory`) is checked
step by step against real users' links and directories.
"""

from __future__ import annotations

import errno
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from aiodaemon._prefork._sharedfile import UnsafePathError, open_directory

from .security_support import (
    Snapshot,
    User,
    arena,
    as_user,
    make_victim,
    own_dir,
    records,
    refused_reopen,
    running_daemon,
    service_account,
    start_daemon,
    stop_daemon,
)
from .support import read_pid, wait_for
from .test_security_paths import PATH_OPTIONS, PathOption

pytestmark = pytest.mark.root

__all__ = ["arena", "service_account"]  # fixtures, re-exported for pytest


@pytest.fixture
def root_only(arena: Path) -> Path:
    """A directory only root may write to, holding root's own file named ``trapped``."""
    directory = arena / "root-only"
    directory.mkdir(mode=0o755)
    make_victim(directory, "trapped")
    return directory


def _link_as(user: User, link: Path, target: str | Path) -> None:
    """Make ``link`` a symlink to ``target``, created by ``user``."""
    as_user(user, lambda: os.symlink(target, link))


@pytest.mark.parametrize("target", ["absolute", "relative"])
@pytest.mark.parametrize("option", PATH_OPTIONS, ids=[o.name for o in PATH_OPTIONS])
def test_start_refuses_a_path_through_the_accounts_symlink_to_roots_directory(
    arena: Path, root_only: Path, service_account: User, option: PathOption, target: str
) -> None:
    """The account's ``logs`` made a link to a root-only directory: refused, root's file untouched.

    Followed, root opened its own ``trapped`` there and, the daemon dropping to
    the account, gave it to the account (``fchown``), or created or bound a
    file of the account's in a directory it cannot write.
    """
    home = own_dir(arena / "home", service_account)
    _link_as(service_account, home / "logs", root_only if target == "absolute" else "../root-only")
    before, listing = Snapshot.of(root_only / "trapped"), sorted(os.listdir(root_only))
    path = home / "logs" / "trapped"
    mark = arena / "started"
    options: dict[str, Any] = {
        "detach": True,
        "user": service_account.name,
        "pidfile": str(arena / "d.pid"),
        **option.options(path),
    }
    result = start_daemon(options, mark)
    if result.returncode == 0:  # a broken rule: do not leave the daemon behind
        stop_daemon(read_pid(Path(options["pidfile"])))
    assert result.returncode != 0
    [line] = result.stderr.splitlines()
    assert option.name in line
    assert str(path) in line
    assert "refusing to follow it" in line
    assert f"symlink of uid {service_account.uid}" in line
    assert Snapshot.of(root_only / "trapped") == before
    assert sorted(os.listdir(root_only)) == listing
    assert not mark.exists()
    assert not (arena / "d.pid").exists()


@pytest.mark.parametrize("sig", [signal.SIGUSR1, signal.SIGHUP], ids=["SIGUSR1", "SIGHUP"])
def test_a_reopen_refuses_the_directory_the_account_swapped_for_a_symlink(
    arena: Path, root_only: Path, service_account: User, sig: signal.Signals
) -> None:
    """A root daemon logging under the account's directory: a rotation there cannot lead it away.

    The account moves its ``logs`` aside and makes it a link to a root-only
    directory (as a logrotate ``postrotate`` then signals the daemon): the
    reopen is refused at error level, the daemon goes on in the old file, and
    root creates nothing in its directory.
    """
    home = own_dir(arena / "home", service_account)
    logs = own_dir(home / "logs", service_account)
    log = logs / "app.log"
    listing = sorted(os.listdir(root_only))
    with running_daemon({"pidfile": str(arena / "d.pid"), "log_file": str(log)}) as pid:
        wait_for(lambda: len(records(log)) > 2, what="ticks in the file")
        as_user(service_account, lambda: os.rename(logs, home / "logs.old"))
        _link_as(service_account, home / "logs", root_only)
        os.kill(pid, sig)

        old = home / "logs.old" / "app.log"
        record = refused_reopen(old)
        assert record["level"] == "error"
        assert "refusing to follow it" in str(record["error"]), record
        seen = len(records(old))
        wait_for(lambda: len(records(old)) > seen + 2, what="ticks after the refusal")
    assert sorted(os.listdir(root_only)) == listing


# --- the walk, step by step ------------------------------------------------------------


def _walk(path: Path) -> os.stat_result:
    """What :func:`open_directory` reached at ``path``."""
    fd = open_directory(str(path))
    try:
        return os.fstat(fd)
    finally:
        os.close(fd)


def test_the_walk_follows_roots_and_our_own_links(arena: Path, root_only: Path) -> None:
    """Links root made (``/var/run``, say) are followed as the kernel follows them."""
    os.symlink(root_only, arena / "absolute")
    os.symlink("root-only", arena / "relative")
    os.symlink("absolute", arena / "chained")
    for name in ("absolute", "relative", "chained"):
        assert os.path.samestat(_walk(arena / name), os.stat(root_only))
    assert os.path.samestat(_walk(arena / "relative" / ".." / "root-only"), os.stat(root_only))


def test_the_walk_follows_another_users_link_within_what_they_own(
    arena: Path, service_account: User
) -> None:
    """The account's link to a directory of its own leads nowhere it did not own already."""
    home = own_dir(arena / "home", service_account)
    own_dir(home / "real", service_account)
    _link_as(service_account, home / "link", home / "real")
    assert os.path.samestat(_walk(home / "link"), os.stat(home / "real"))


@pytest.mark.parametrize(
    "planted",
    ["absolute", "relative", "to-root", "chain"],
)
def test_the_walk_refuses_another_users_link_out_of_what_they_own(
    arena: Path, root_only: Path, service_account: User, planted: str
) -> None:
    """The account's link to root's directory, by any route: refused, naming the link's owner."""
    home = own_dir(arena / "home", service_account)
    target = {
        "absolute": str(root_only),
        "relative": "../root-only",
        "to-root": "/",
        "chain": "hop",
    }[planted]
    if planted == "chain":
        _link_as(service_account, home / "hop", root_only)
    _link_as(service_account, home / "link", target)
    with pytest.raises(UnsafePathError) as refused:
        _walk(home / "link")
    assert refused.value.errno == errno.EACCES
    assert f"symlink of uid {service_account.uid}" in str(refused.value.strerror)


def test_the_walk_refuses_roots_directory_inside_another_users(
    arena: Path, root_only: Path, service_account: User
) -> None:
    """Root's directory inside the account's: the account could have moved it there, or swap it."""
    home = own_dir(arena / "home", service_account)
    os.rename(root_only, home / "moved")
    with pytest.raises(UnsafePathError) as refused:
        _walk(home / "moved")
    assert "refusing to enter it" in str(refused.value.strerror)


def test_the_walk_stops_at_a_symlink_loop(arena: Path) -> None:
    """Links that lead back to themselves: ELOOP, as the kernel says, not a hang."""
    os.symlink("b", arena / "a")
    os.symlink("a", arena / "b")
    with pytest.raises(OSError, match="Too many levels of symbolic links") as refused:
        _walk(arena / "a")
    assert refused.value.errno == errno.ELOOP


def test_the_walk_says_what_is_missing_or_not_a_directory(arena: Path) -> None:
    """A missing component, or a file where a directory should be: the kernel's errors."""
    (arena / "file").touch()
    with pytest.raises(FileNotFoundError):
        _walk(arena / "missing" / "deeper")
    with pytest.raises(NotADirectoryError):
        _walk(arena / "file")
