"""The command line that starts this program again, for an upgrade's successor.

It is the one :mod:`._invocation` chooses (the interpreter's own command
line, with its options, or a script run again through its ``#!`` line), but
for programs that cannot be read again that way. One read from stdin
(``python - < app.py``, a heredoc) is gone: the upgrade is refused. One that
pex runs re-executes itself into a copy of its archive in pex's cache (an
unpacked directory, or a virtual environment): its command line names that
copy, the old version's, so the successor runs the archive again (``$PEX``,
which pex sets), which unpacks the new version.

Loaded at the first upgrade (its code read at the start, see ``_pinned``).
Synchronous and asyncio-free.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping, Sequence

from ._invocation import archive_as_run, relaunch_command

__all__ = ["relaunch", "unreadable_program"]

#: The interpreter's short options that take a value (attached or the next argument).
_WITH_VALUE = frozenset("WX")
#: Its long options that take the next argument as their value.
_LONG_WITH_VALUE = frozenset({"--check-hash-based-pycs"})


def _operand(argv: Sequence[str]) -> int | None:
    """The index of the program's path in an interpreter's ``argv`` (``len(argv)`` if none).

    None when the program is code or a module: ``-c`` or ``-m``.
    """
    index = 1
    while index < len(argv):
        arg = argv[index]
        if arg == "--":
            return index + 1
        if not arg.startswith("-") or arg == "-":
            return index
        if arg.startswith("--"):
            index += 2 if arg in _LONG_WITH_VALUE else 1
            continue
        for position, letter in enumerate(arg[1:], 1):
            if letter in "cm":
                return None
            if letter in _WITH_VALUE:
                if position == len(arg) - 1:
                    index += 1  # the value is the next argument
                break
        index += 1
    return index


def _parsed() -> bool:
    """Whether ``sys.orig_argv`` is an interpreter's command line, parsed as ``python`` does.

    Not in a frozen program (PyInstaller, cx_Freeze), whose arguments are its own.
    """
    return not getattr(sys, "frozen", False) and len(sys.orig_argv) > 0


def unreadable_program() -> str | None:
    """Why the program cannot be started again (None if it can).

    A program read from stdin: the successor's stdin is ``/dev/null``, and the
    text is gone anyway; it would run nothing and exit 0. ``sys.argv[0]``
    confirms it (``-`` or empty), so an embedded interpreter that did not parse
    its command line is never taken for one.
    """
    if not _parsed() or sys.argv[:1] not in (["-"], [""]):
        return None
    argv = sys.orig_argv
    index = _operand(argv)
    if index is not None and (index == len(argv) or argv[index] == "-"):
        return "the program was read from stdin"
    return None


def relaunch(
    environ: MutableMapping[str, str], directory: str | None
) -> tuple[list[str], str | None]:
    """The successor's ``argv`` and the executable to run it with (None: ``argv[0]``).

    Args:
        environ: the successor's environment; pex's variables that name this
            process's descriptors are taken out of it.
        directory: where the successor starts (a relative program path is there).
    """
    argv, executable = relaunch_command(directory)
    if not argv or not _parsed() or argv != sys.orig_argv:
        # Empty, frozen, or a script run again through its #! line: no pex copy.
        return argv, executable
    index = _operand(argv)
    if index is None or index >= len(argv) or argv[index] == "-":
        return argv, executable
    program = os.path.join(directory or "", argv[index])
    archive = _pex_archive(environ, program)
    if archive is None:
        return argv, executable
    # pex's own lock on its cache, by a descriptor number of the process pex
    # started: in the successor that number is one of ours (the pidfile, a
    # socket). Without it, pex takes its lock afresh.
    environ.pop("_PEX_CACHE_ACCESS_LOCK", None)
    options = argv[1:index]
    if options[-1:] == ["-I"] and not os.path.isdir(program):
        # pex's virtual environment runs its ``pex`` script with ``-I`` added
        # last, which it adds again: kept, each upgrade would add one more.
        del options[-1]
    return [argv[0], *options, archive, *argv[index + 1 :]], executable


def _pex_archive(environ: MutableMapping[str, str], program: str) -> str | None:
    """The pex archive ``program`` is pex's cached copy of, if it is one (None otherwise).

    pex sets ``$PEX`` to the archive it ran (its real path: the one run, through
    ``current``, is recorded at the start), and its copies carry ``PEX-INFO``:
    an unpacked directory holds it, a virtual environment's ``pex`` script sits
    beside it. A program that merely inherited ``$PEX`` (a child of a pex
    program) runs from no such copy.
    """
    archive = environ.get("PEX", "")
    if not os.path.isabs(archive):
        return None
    holder = program if os.path.isdir(program) else os.path.dirname(program)
    if not os.path.isfile(os.path.join(holder, "PEX-INFO")):
        return None
    try:
        if os.path.samefile(program, archive):
            return None  # run from the archive itself (a "loose" directory)
    except OSError:
        pass  # the archive is gone: the successor says so, not the old copy's code
    # By the path it was run by: ``$PEX`` is resolved, the old release's.
    return archive_as_run() or archive
