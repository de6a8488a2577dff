"""Relative paths and the current directory, which may be gone or too deep to name.

A shell left in a release directory a deploy removed has a current directory
with no path: ``os.getcwd()`` raises ``FileNotFoundError`` (and so does
``os.path.abspath`` of any relative path). A directory deeper than
``PATH_MAX`` has a path, but no system call takes it. Every option path is
made absolute here, at configure time, so either case is one line naming the
option rather than a traceback or a "directory does not exist" for one that does.

A relative path is taken relative to the directory as the user's shell names
it (``$PWD``, when that is this directory): started from a ``current``
symlink to a release, ``run/app.pid`` is ``/srv/app/current/run/app.pid``,
the name the upgrade's new process, started in ``current`` again, computes
too, not the old release's physical path (which ``os.getcwd()`` gives).
"""

from __future__ import annotations

import os

from ..exceptions import ConfigError

__all__ = ["absolute_path", "current_directory", "shell_directory"]

#: The longest path a system call takes, in bytes (PATH_MAX counts the NUL).
_PATH_MAX = 4096


def current_directory() -> str | None:
    """The current directory's path; None when it has none (removed, or unreadable)."""
    try:
        return os.getcwd()
    except OSError:
        return None


def shell_directory() -> str | None:
    """The current directory as the user's shell names it; None when it has none.

    ``$PWD`` when that is this directory, else its physical path: a deploy that
    switches a ``current`` symlink to a new release must have the upgrade start
    the new release, and ``os.getcwd()`` resolves the symlink to the old one
    (gunicorn's ``util.getcwd`` does the same).
    """
    cwd = current_directory()
    return None if cwd is None else _named_by_the_shell(cwd)


def absolute_path(option: str, path: str) -> str:
    """``path`` made absolute and normalised as ``os.path.abspath`` does, or why it cannot be.

    Args:
        option: the option that gave ``path``, for the error.
        path: the path as given.

    Raises:
        ConfigError: ``path`` is relative and the current directory is gone,
            unreadable, or so deep that the absolute path exceeds ``PATH_MAX``.
    """
    if os.path.isabs(path):
        return os.path.normpath(path)
    try:
        cwd = os.getcwd()
    except FileNotFoundError as exc:
        raise ConfigError(
            option,
            f"{path} is relative, but the current directory no longer exists"
            " (it was removed); give an absolute path",
        ) from exc
    except OSError as exc:
        # ENAMETOOLONG or EACCES where the C library walks up the tree itself.
        raise ConfigError(
            option,
            f"{path} is relative, but the current directory's path cannot be read"
            f" ({exc.strerror}); give an absolute path",
        ) from exc
    # With a ``..`` the kernel and the shell part ways: the kernel resolves it
    # from the physical directory, ``normpath`` removes it from the name.
    base = cwd if ".." in path.split("/") else _named_by_the_shell(cwd)
    absolute = os.path.normpath(os.path.join(base, path))
    size = len(os.fsencode(absolute))
    if size >= _PATH_MAX:
        raise ConfigError(
            option,
            f"{path} is relative, but the current directory is too deep to name it"
            f" ({size} bytes from /, at most {_PATH_MAX - 1}); give a shorter absolute path",
        )
    return absolute


def _named_by_the_shell(cwd: str) -> str:
    """``$PWD`` if it names ``cwd`` (the same directory), else ``cwd``."""
    logical = os.environ.get("PWD")
    if not logical or logical == cwd or not os.path.isabs(logical):
        return cwd
    try:
        same = os.path.samestat(os.stat(logical), os.stat(cwd))
    except OSError:
        return cwd
    return logical if same else cwd
