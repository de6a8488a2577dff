"""Where a chrooted daemon finds its files: worked out on the host, through real symlinks."""

from __future__ import annotations

import os
from pathlib import Path

from aiodaemon._prefork._jailpath import seen_from


def test_a_path_through_a_symlinked_directory_is_inside_the_jail(tmp_path: Path) -> None:
    """A log file named via a link to the jail is found in it (rotation reopens it there)."""
    jail = tmp_path / "jail"
    (jail / "logs").mkdir(parents=True)
    (tmp_path / "link").symlink_to(jail)
    assert seen_from(str(jail), str(tmp_path / "link" / "logs" / "d.log")) == "/logs/d.log"
    assert seen_from(str(tmp_path / "link"), str(jail / "logs" / "d.log")) == "/logs/d.log"


def test_the_jail_itself_and_paths_outside_it(tmp_path: Path) -> None:
    """The root is "/"; a sibling sharing the root's name as a prefix is outside."""
    jail = tmp_path / "jail"
    jail.mkdir()
    (tmp_path / "jail2").mkdir()
    assert seen_from(str(jail), str(jail)) == "/"
    assert seen_from(str(jail), str(tmp_path / "jail2" / "d.pid")) is None
    assert seen_from(str(jail), str(jail / "run" / ".." / "d.pid")) == "/d.pid"
    assert seen_from("/", str(tmp_path / "d.pid")) == str(tmp_path / "d.pid")


def test_the_last_component_is_followed_only_when_asked(tmp_path: Path) -> None:
    """A socket link (``/dev/log``) leads to its target; a file's own name is kept."""
    jail = tmp_path / "jail"
    (jail / "run").mkdir(parents=True)
    (jail / "dev").mkdir()
    (jail / "dev" / "log").symlink_to(jail / "run" / "dev-log")
    link = str(jail / "dev" / "log")
    assert seen_from(str(jail), link, follow=True) == "/run/dev-log"
    assert seen_from(str(jail), link) == "/dev/log"
    # A link out of the jail: the socket would be unreachable from inside.
    os.unlink(link)
    (jail / "dev" / "log").symlink_to(tmp_path / "elsewhere")
    assert seen_from(str(jail), link, follow=True) is None
