"""Start as an upgrade's successor: adopt the old daemon's descriptors, no detach.

Loaded only by a process an upgrade started (``AIODAEMON_HANDOFF`` set): the
options are checked against the descriptors it inherits, then the run phase
begins as for any daemon (``_launch``), holding its readiness until the
hand-over (``_upgrade``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._launch import become_daemon, check_main, close_main, end_daemon
from ._prefork._config import Options, parse_options
from ._prefork._messages import say
from .exceptions import ConfigError, DaemonError, StartupError

if TYPE_CHECKING:
    from ._prefork._adopt import Handoff
    from ._run._hooks import Hooks, MainTarget

__all__ = ["INHERITED_FILES", "succeed"]

#: Options naming files the old daemon opened and the successor inherits open:
#: checked against those descriptors (see :func:`_successor_options`), never by
#: path, which after a privilege drop may lie in a directory closed to us.
INHERITED_FILES = frozenset({"pidfile", "control", "log_file", "stdout", "stderr"})


def succeed(
    hooks: Hooks,
    main: MainTarget,
    raw: Mapping[str, Any],
    handoff: Handoff,
    launch_directory: str | None,
) -> int:
    """Start as an upgrade's successor: adopt the old daemon's descriptors, no detach."""
    from ._prefork._adopt import SuccessorChannel
    from ._prefork._adopt_fds import adopt
    from ._prefork._detach import enter_workdir

    pipe = SuccessorChannel(handoff)
    try:
        options = _successor_options(raw)
        if options.identity is None:
            from ._prefork._prctl import set_dumpable

            # As dumpable as the old daemon, which kept its identity (see take_handoff).
            set_dumpable(True)
        check_main(main)
        acquired = adopt(options, handoff)
    except DaemonError as exc:
        pipe.fail(exc.exit_code, str(exc))
        say(str(exc))
        close_main(main)
        return exc.exit_code
    with acquired:
        acquired.stack.enter_context(pipe)
        enter_workdir(options.workdir, options.umask, detached=handoff.detached)
        code = become_daemon(
            hooks,
            main,
            options,
            acquired,
            pipe,
            foreground=not handoff.detached,
            handoff=handoff,
            launch_directory=launch_directory,
        )
    return end_daemon(code)


def _successor_options(raw: Mapping[str, Any]) -> Options:
    """The options, the pidfile and control paths checked against inherited fds, not by path.

    After a privilege drop their directory may be root-only: the successor
    cannot look there, but it can check the descriptors it inherits.

    Raises:
        ConfigError: an option is invalid.
        StartupError: we do not run as the configured user.
    """
    rest = dict(raw)
    pidfile = _absolute("pidfile", rest.pop("pidfile", None))
    control_raw = rest.pop("control", None)
    control = None if control_raw is False else _absolute("control", control_raw)
    if control_raw is None and pidfile is not None:
        control = pidfile + ".ctl"
    # Files the old daemon opened and we inherit (log file, fds 1 and 2): their
    # directory may be closed to us as well.
    log_file = _absolute("log_file", rest.pop("log_file", None))
    stdout = _absolute("stdout", rest.pop("stdout", None))
    stderr = _absolute("stderr", rest.pop("stderr", None))
    options = parse_options(rest)._replace(
        pidfile=pidfile, control=control, log_file=log_file, stdout=stdout, stderr=stderr
    )
    identity = options.identity
    if identity is not None:
        # The drop cannot be redone without root; it must already hold.
        if identity.uid is not None and os.getresuid() != (identity.uid,) * 3:
            raise StartupError(_identity_changed("user", os.getresuid(), identity.uid))
        if identity.gid is not None and os.getresgid() != (identity.gid,) * 3:
            raise StartupError(_identity_changed("group", os.getresgid(), identity.gid))
    return options


def _identity_changed(option: str, ids: tuple[int, int, int], wanted: int) -> str:
    """Why the new options' ``user``/``group`` cannot hold: it is the old daemon's we run as."""
    kind = "uid" if option == "user" else "gid"
    held = ", ".join(sorted({str(i) for i in ids}, key=int))
    return (
        f"upgrade: {option} changed: the old daemon runs as {kind} {held}, the new "
        f"options say {kind} {wanted}; an upgrade keeps the {option} (use restart to change it)"
    )


def _absolute(option: str, value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str | os.PathLike):
        text = os.fspath(value)
        if isinstance(text, str) and text:
            # As the old daemon made it absolute (the shell's $PWD), so the
            # names it handed over compare equal.
            from ._prefork._cwd import absolute_path

            return absolute_path(option, text)
    raise ConfigError(option, f"must be a path, not {value!r}")
