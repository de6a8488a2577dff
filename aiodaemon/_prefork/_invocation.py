"""How the program was started, and so how an upgrade starts it again.

An upgrade's successor runs the daemon's command line (``sys.orig_argv``)
again, and it must run the program a deploy put where that command line
points: with one virtual environment per release, that includes the
interpreter. Two rules follow.

- A script whose ``#!`` line chose the interpreter (pip's console script,
  ``current/venv/bin/aiodaemon``): the kernel wrote that interpreter's real
  path (``releases/1/venv/bin/python3``) in front of the script's, so the
  successor runs the script again, whose ``#!`` line names the interpreter of
  the release ``current`` names now. Recorded at the start: by the upgrade,
  the script may name another interpreter.
- An interpreter named on the command line (``venv/bin/python -m aiodaemon``,
  ``current/venv/bin/python -X dev app.py``): the successor runs it by the
  path typed, relative to the launch directory as the shell named it, never
  by ``sys.executable``, whose directories are resolved (``releases/1``).

A pex archive is run again by the path it was run by (see :mod:`._relaunch`),
which pex leaves resolved in ``$PEX``: that path is recorded at the start too.

Synchronous and asyncio-free.
"""

from __future__ import annotations

import os
import stat
import sys

__all__ = ["archive_as_run", "relaunch_command", "remember_invocation"]

#: How many bytes of a script's first line the kernel reads (BINPRM_BUF_SIZE).
_SHEBANG_LIMIT = 256
#: How many bytes of the next line are read: pip's ``'''exec' INTERPRETER "$0"
#: "$@"`` line, which sh reads whole, for an interpreter path up to PATH_MAX.
_EXEC_LINE_LIMIT = 4096 + 64
#: The index of the script in ``sys.orig_argv`` when its ``#!`` line chose the
#: interpreter (0 when it did not).
_script_index = 0
#: The pex archive's path as it was run, through ``current`` (None: not known).
_archive: str | None = None


def remember_invocation(directory: str | None) -> None:
    """Record how the program was started, before a deploy changes what its paths lead to.

    Whether a script's ``#!`` line started it, and the path a pex archive was run by.

    Args:
        directory: the launch directory, against which a relative script path is read.
    """
    global _script_index, _archive
    _script_index = _shebang_script(sys.orig_argv, sys.argv, directory)
    _archive = _archive_path(directory)


def archive_as_run() -> str | None:
    """The path the pex archive in ``$PEX`` was run by at the start, if it is known."""
    return _archive


def relaunch_command(directory: str | None) -> tuple[list[str], str | None]:
    """The successor's ``argv`` and the executable to run it with (None: ``argv[0]``).

    Args:
        directory: where the successor starts; a relative path on the command
            line is read there.
    """
    argv = list(sys.orig_argv)
    if not argv:
        return argv, None
    if _script_index:
        script = argv[_script_index]
        if directory is not None or os.path.isabs(script):
            return [os.path.join(directory or "", script), *argv[_script_index + 1 :]], None
    if not _is_interpreter(argv[0], directory):
        return argv, None
    if os.sep in argv[0] and (directory is not None or os.path.isabs(argv[0])):
        # As typed: ``current/venv/bin/python`` stays through ``current``.
        return argv, os.path.join(directory or "", argv[0])
    return argv, _interpreter()


def _shebang_script(orig_argv: list[str], argv: list[str], directory: str | None) -> int:
    """The index of the script in ``orig_argv`` if its ``#!`` line named the interpreter, else 0.

    The kernel runs ``#!interpreter [argument]`` as ``interpreter [argument]
    script args...``: the script is ``sys.argv[0]``, and what precedes it is
    exactly its first line's words. pip's form for a long interpreter path or one
    with spaces is ``#!/bin/sh`` and an ``exec`` of the interpreter on the next line.
    """
    index = len(orig_argv) - len(argv)
    if index not in (1, 2) or not argv or orig_argv[index:] != argv:
        return 0
    script = os.path.join(directory or "", argv[0])
    try:
        # Not blocking: ``python <(cat app.py)`` names a pipe, read to its end already.
        fd = os.open(script, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return 0
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode) or not _executable(fd, mode, script):
            # The kernel cannot have run it by its #! line: the interpreter
            # was typed (``ExecStart=/venv/bin/python /srv/app.py``, a 0644
            # file or a noexec mount), and the script may not be run itself.
            return 0
        head = os.read(fd, _SHEBANG_LIMIT + _EXEC_LINE_LIMIT)
    except OSError:
        return 0
    finally:
        os.close(fd)
    first = head[:_SHEBANG_LIMIT].partition(b"\n")[0]
    if not first.startswith(b"#!"):
        return 0
    # The kernel's split: the interpreter ends at the first blank; the rest, if
    # any, is one argument.
    line = first[2:].strip(b" \t")
    end = next((i for i, byte in enumerate(line) if byte in b" \t"), len(line))
    argument = line[end:].lstrip(b" \t")
    words = [line[:end], argument] if argument else [line[:end]]
    if [os.fsdecode(word) for word in words] == orig_argv[:index]:
        return index
    second = head[len(first) + 1 :].partition(b"\n")[0]
    if words == [b"/bin/sh"] and index == 1 and second.startswith(b"'''exec' "):
        named = second.removeprefix(b"'''exec' ").removesuffix(b' "$0" "$@"')
        if os.fsdecode(named.strip(b'"')) == orig_argv[0]:
            return index
    return 0


def _archive_path(directory: str | None) -> str | None:
    """The path through which the pex archive in ``$PEX`` was run, if one leads there now.

    pex writes the archive's real path in ``$PEX`` (``releases/1/app.pex``) and
    re-executes itself, so the path typed (``./app.pex`` in ``current``) is on
    no command line: run again, ``$PEX`` is the old release. What is left of
    it: the shell's ``$_`` (bash and zsh put the command's path there), else
    the archive's place below the launch directory, joined to that directory
    as the shell named it. Either counts only if it leads to ``$PEX`` now,
    before a deploy moves ``current``; ``$_`` may be any older command's.
    """
    archive = os.environ.get("PEX", "")
    if directory is None or not os.path.isabs(archive):
        return None
    typed = os.environ.get("_", "")
    below = os.path.relpath(archive, os.path.realpath(directory))
    candidates = [typed] if os.sep in typed else []
    if below != os.pardir and not below.startswith(os.pardir + os.sep):
        candidates.append(below)
    for candidate in candidates:
        path = os.path.join(directory, candidate)
        try:
            if os.path.samefile(path, archive):
                return path
        except OSError:
            continue
    return None


def _executable(fd: int, mode: int, path: str) -> bool:
    """Whether the file open at ``fd`` (its ``mode``, reached by ``path``) may be executed by us."""
    return (
        os.access(path, os.X_OK)
        and mode & 0o111 != 0  # root's access() ignores the bits
        and not os.fstatvfs(fd).f_flag & os.ST_NOEXEC
    )


def _interpreter() -> str | None:
    """This interpreter's binary: ``sys.executable``, else the one the kernel runs.

    Started by a bare name with no ``PATH`` to find it by (``env -i python3``,
    a supervisor's empty environment), Python leaves ``sys.executable`` empty,
    which ``subprocess`` joins to each directory of ``os.defpath``: "cannot
    start python3: Permission denied" (``/bin/`` is no program).
    """
    if sys.executable:
        return sys.executable
    try:
        return os.readlink("/proc/self/exe").removesuffix(" (deleted)")
    except OSError:
        return None  # no /proc: argv[0], searched for in PATH


def _is_interpreter(argv0: str, directory: str | None) -> bool:
    """Whether ``argv0`` names this interpreter (then run exactly the same binary)."""
    if os.path.basename(argv0).startswith("python"):
        return True
    path = os.path.join(directory or "", argv0) if os.sep in argv0 else argv0
    return os.path.realpath(path) == os.path.realpath(sys.executable)
