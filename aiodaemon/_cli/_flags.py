"""The daemon commands' options: the command line as ``run()``'s keywords, errors as flags.

``run``, ``start`` and ``restart`` take ``run()``'s options as flags
(``--log-file`` for ``log_file``), which ``run()``'s own parser checks; its
errors name the keyword, so they are worded again with the flag the user typed
(:func:`flag_message`, :func:`in_flags`).
"""

from __future__ import annotations

import argparse

from ..exceptions import ConfigError, DaemonError
from ._args import UsageError

TYPE_CHECKING = False  # not typing's: see aiodaemon/__init__.py
if TYPE_CHECKING:
    from typing import Any

__all__ = ["daemon_options", "flag_message", "in_flags", "keywords_as_flags"]


def daemon_options(
    args: argparse.Namespace, *, detach: bool, successor: bool = False
) -> dict[str, Any]:
    """Keyword options for ``run()`` from the command line, validated here.

    Args:
        args: the parsed command line.
        detach: the command's ``detach``.
        successor: this process was started by an upgrade: the files the old
            daemon opened are checked by the start, against the descriptors
            handed over, not here by path (a daemon dropped to ``--user`` may
            keep its log or pidfile in a directory that user cannot enter).

    Raises:
        UsageError: a malformed ``--listen``.
        ConfigError: an option ``run()`` refuses (:func:`flag_message` words it).
    """
    raw: dict[str, Any] = {"detach": detach, "listen": _listen(args.listen)}
    for name in (
        "pidfile", "log_file", "syslog", "log_level", "log_format", "user", "group",
        "workdir", "umask", "stdout", "stderr", "shutdown_timeout", "chroot", "uvloop",
        "ready", "drain_delay", "health", "start_timeout", "control",
    ):  # fmt: skip
        value = getattr(args, name)
        if value is not None:
            raw[name] = value
    if args.no_prevent_core:
        raw["prevent_core"] = False
    if args.no_control:
        raw["control"] = False
    if args.allow_new_privileges:
        raw["no_new_privileges"] = False
    from .._prefork._config import parse_options

    if successor:
        from .._successor import INHERITED_FILES

        parse_options({key: value for key, value in raw.items() if key not in INHERITED_FILES})
    else:
        parse_options(raw)
    return raw


def flag_message(exc: ConfigError) -> str:
    """Name the command-line flag rather than the keyword: ``--log-file`` for ``log_file``."""
    message = _listen_form(exc.option, str(exc).removeprefix(f"{exc.option}: "))
    return keywords_as_flags(f"{_flag(exc.option)}: {message}")


def _listen_form(option: str, message: str) -> str:
    """A ``listen[http]`` message's address examples as ``--listen`` takes them: ``http=:8080``.

    ``run()``'s form (``write HOST:PORT, e.g. ':8080'``) would have the user
    type ``--listen :8080``, refused for lacking its NAME.
    """
    name = option.removeprefix("listen[").removesuffix("]")
    head, sep, hint = message.partition("; write HOST:PORT")
    if not sep or not option.startswith("listen[") or name == option:
        return message
    import re

    hint = re.sub(r"'([^']*)'", lambda m: f"{name}={m[1]}", hint)
    return f"{head}; write NAME=HOST:PORT{hint}"


def _flag(option: str) -> str:
    """``--listen http`` for ``listen[http]``, ``--log-file`` for ``log_file``."""
    name, _, key = option.partition("[")
    flag = "--" + name.replace("_", "-")
    return f"{flag} {key.rstrip(']')}" if key else flag


def keywords_as_flags(text: str) -> str:
    """``--group`` for a ``group=`` a message suggests (``give group= too``)."""
    if "=" not in text:
        return text
    import re

    from .._prefork._config import OPTION_NAMES

    return re.sub(
        r"(?<![\w-])([a-z_]+)=(?=[\s;,.)]|$)",
        lambda m: _flag(m[1]) if m[1] in OPTION_NAMES else m[0],
        text,
    )


def in_flags(exc: DaemonError) -> str:
    """An error of the configure or acquire phase, worded with the flag the user typed.

    ``run()`` names its keyword options (``cannot open log_file PATH: ...``,
    ``listen[http]: ...``); the CLI says ``--log-file: cannot open PATH: ...``
    and ``--listen http: ...``, as it does for the options it validates itself.

    Args:
        exc: the error ``launch`` reports.
    """
    from .._prefork._config import OPTION_NAMES

    if isinstance(exc, ConfigError):
        return flag_message(exc)
    text = str(exc)
    option = getattr(exc, "option", None)
    if option is not None:
        # The message names the option before its path: "cannot open log_file PATH: ...".
        before, sep, after = text.partition(f"{option} ")
        if sep:
            return keywords_as_flags(f"{_flag(option)}: {before}{after}")
    option, sep, message = text.partition(": ")
    if sep and option.partition("[")[0] in OPTION_NAMES:
        return keywords_as_flags(f"{_flag(option)}: {_listen_form(option, message)}")
    return keywords_as_flags(text)


def _listen(values: list[str] | None) -> dict[str, str]:
    result: dict[str, str] = {}
    for value in values or ():
        name, sep, address = value.partition("=")
        if not sep or not name or not address:
            raise UsageError(
                f"--listen: expected NAME=ADDRESS (e.g. http=127.0.0.1:8080), not {value!r}"
            )
        if name in result:
            raise UsageError(f"--listen: name {name!r} given twice")
        result[name] = address
    return result
