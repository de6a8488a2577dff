"""The testing kit's translation of ``run()``'s keyword options into ``aiodaemon run`` flags.

One translator per option of ``aiodaemon.DaemonOptions``: a test checks that
every option has one and that the command turns the flags back into the very
same options, so a new option cannot silently go astray.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["TRANSLATORS", "command_flags"]

Translator = Callable[[str, Any], list[str]]

#: ``log_level`` as a number, by the name the command takes.
_LEVEL_NAMES = {10: "debug", 20: "info", 30: "warning", 40: "error", 50: "critical"}


def _refuse(name: str, value: Any, expected: str) -> TypeError:
    """The error for a value of the wrong type, as ``run()`` words its own."""
    return TypeError(f"launch(): {name} must be {expected}, not {value!r}")


def _text(name: str, value: Any) -> list[str]:
    if value is None:
        return []
    # str() of anything would pass a list or a bool on as a word the daemon
    # might take (control=5 bound a socket named "5").
    if isinstance(value, bool) or not isinstance(value, str | os.PathLike | int | float):
        raise _refuse(name, value, "a string, a path or a number")
    return [_flag(name), os.fspath(value) if isinstance(value, os.PathLike) else str(value)]


def _path(name: str, value: Any) -> list[str]:
    if value is not None and not isinstance(value, str | os.PathLike):
        raise _refuse(name, value, "a path")
    return _text(name, value)


def _seconds(name: str, value: Any) -> list[str]:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise _refuse(name, value, "a number of seconds")
    return _text(name, value)


def _off_switch(flag: str) -> Translator:
    """A boolean option that is True by default: only False has a flag."""

    def translate(name: str, value: Any) -> list[str]:
        if value is True:
            return []
        if value is False:
            return [flag]
        raise TypeError(f"launch(): {name} must be True or False, not {value!r}")

    return translate


def _uvloop(name: str, value: Any) -> list[str]:
    if value is not None and not isinstance(value, bool):
        raise _refuse(name, value, "True, False or None")
    return [] if value is None else ["--uvloop" if value else "--no-uvloop"]


def _syslog(name: str, value: Any) -> list[str]:
    if value is None or value is False:
        return []
    # One argument: the value of --syslog is optional, so it must stick to it.
    return ["--syslog"] if value is True else [f"--syslog={value}"]


def _listen(name: str, value: Any) -> list[str]:
    if value is not None and not isinstance(value, Mapping):
        raise _refuse(name, value, "a mapping of names to addresses")
    flags: list[str] = []
    for key, address in dict(value or {}).items():
        flags += ["--listen", f"{key}={address}"]
    return flags


def _umask(name: str, value: Any) -> list[str]:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _refuse(name, value, "an int such as 0o022 or an octal string")
    return ["--umask", value if isinstance(value, str) else f"{value:o}"]


def _log_level(name: str, value: Any) -> list[str]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = _LEVEL_NAMES.get(value, value)
    elif isinstance(value, str):
        value = "warning" if value.lower() == "warn" else value.lower()
    return ["--log-level", str(value)]


def _control(name: str, value: Any) -> list[str]:
    if value is False:
        # Without it the kit could learn neither reload results nor addresses:
        # reload() would pass whatever the hooks did (SIGHUP tells nothing back).
        raise ValueError(
            "launch() needs the daemon's control socket: reload() reports the hooks' "
            "result and address() the bound ports through it; control=False is refused"
        )
    return _path(name, value)


def _detach(name: str, value: Any) -> list[str]:
    if value is True:
        raise ValueError("launch() cannot pass detach=True: it runs the daemon in the foreground")
    if value is not None and value is not False:
        raise _refuse(name, value, "True, False or None")
    return []


def _files_preserve(name: str, value: Any) -> list[str]:
    if value:
        raise ValueError(
            "launch() cannot pass files_preserve=: the daemon is a new program, "
            "not a fork of the test"
        )
    return []


#: Every option of ``aiodaemon.run()`` and how the command line says it.
TRANSLATORS: Mapping[str, Translator] = {
    "pidfile": _path,
    "detach": _detach,
    "workdir": _path,
    "umask": _umask,
    "stdout": _path,
    "stderr": _path,
    "log_file": _path,
    "syslog": _syslog,
    "log_level": _log_level,
    "log_format": _text,
    "listen": _listen,
    "user": _text,
    "group": _text,
    "chroot": _path,
    "prevent_core": _off_switch("--no-prevent-core"),
    "no_new_privileges": _off_switch("--allow-new-privileges"),
    "files_preserve": _files_preserve,
    "shutdown_timeout": _seconds,
    "uvloop": _uvloop,
    "ready": _text,
    "control": _control,
    "start_timeout": _seconds,
    "drain_delay": _seconds,
    "health": _text,
}


def command_flags(options: Mapping[str, Any]) -> list[str]:
    """``aiodaemon run`` flags saying what ``options`` (``run()``'s keywords) say.

    Raises:
        TypeError: an option ``run()`` does not have.
        ValueError: an option the kit cannot pass on (``detach=True``,
            ``files_preserve``, ``control=False``).
    """
    __tracebackhide__ = True  # pytest shows the test's line, not the kit's
    flags: list[str] = []
    for name, value in options.items():
        translate = TRANSLATORS.get(name)
        if translate is None:
            raise TypeError(f"launch() got an unexpected keyword argument {name!r}")
        try:
            flags += translate(name, value)
        except (TypeError, ValueError) as exc:
            # The refusal is about the test's keyword: raised from here, without
            # the translator's frame, which pytest would print with its source.
            raise exc.with_traceback(None) from None
    return flags


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")
