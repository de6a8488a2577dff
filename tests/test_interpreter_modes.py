"""Daemons run under the interpreter's checking modes a user may turn on.

``python -X dev`` (or ``PYTHONDEVMODE=1``) shows every ``ResourceWarning``;
``-W error`` turns warnings into errors; ``-X warn_default_encoding``
(``PYTHONWARNDEFAULTENCODING=1``) warns about every text file opened without an
encoding. A daemon run so must not trip over, or log, warnings of aiodaemon's
own making, and what it reports must stay the real error.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from .support import (
    aiodaemon_cli,
    install_program,
    program,
    python,
    read_json_lines,
    read_pid,
    wait_gone,
)

#: Every warning an encoding-less text open would raise, as an error.
ENCODING_ERRORS = ["-X", "warn_default_encoding", "-W", "error::EncodingWarning"]


def _start(tmp_path: Path, *flags: str) -> tuple[Path, Path, int]:
    """``python FLAGS -m aiodaemon start app:main`` of cli_app.py; (pidfile, log, pid)."""
    install_program("cli_app", tmp_path)
    pidfile, log = tmp_path / "app.pid", tmp_path / "app.jsonl"
    started = python(
        [*flags, "-m", "aiodaemon", "start", "app:main", "--pidfile", pidfile, "--log-file", log],
        cwd=tmp_path,
    )
    assert started.returncode == 0, started.stderr
    return pidfile, log, int(started.stdout)


def _stop(pidfile: Path) -> None:
    """``aiodaemon stop``: whichever process holds the pidfile now is gone afterwards."""
    stopped = aiodaemon_cli("stop", "--pidfile", pidfile)
    assert stopped.returncode == 0, stopped.stderr


def test_an_upgrade_under_dev_mode_logs_no_warning_of_ours(tmp_path: Path) -> None:
    """Under -X dev the old daemon hands over without a 'subprocess still running' warning."""
    pidfile, log, old = _start(tmp_path, "-X", "dev")
    try:
        upgraded = aiodaemon_cli("upgrade", "--pidfile", pidfile)
        assert upgraded.returncode == 0, upgraded.stderr
        wait_gone(old, 30)
    finally:
        _stop(pidfile)
    exits = [r for r in read_json_lines(log) if r["event"] == "exit"]
    assert [r["pid"] for r in exits] == [old, int(upgraded.stdout)]
    warnings = [r for r in read_json_lines(log) if r["level"] not in ("debug", "info")]
    assert warnings == []


def test_a_failed_upgrade_under_dev_mode_names_the_new_code_s_error(tmp_path: Path) -> None:
    """Under -X dev a successor whose import fails is reported with that error, not a warning."""
    pidfile, _, old = _start(tmp_path, "-X", "dev")
    try:
        app = tmp_path / "app.py"
        line = len(app.read_text(encoding="utf-8").splitlines()) + 2
        with open(app, "a", encoding="utf-8") as f:
            f.write('\nraise RuntimeError("the new code is broken")\n')
        upgraded = aiodaemon_cli("upgrade", "--pidfile", pidfile)
        assert upgraded.returncode == 1
        assert upgraded.stderr.splitlines() == [
            "aiodaemon: upgrade failed: importing 'app' failed: RuntimeError: "
            f"the new code is broken ({app}:{line})"
        ]
        assert read_pid(pidfile) == old
    finally:
        _stop(pidfile)


def test_an_upgrade_with_encoding_warnings_as_errors(tmp_path: Path) -> None:
    """Under -X warn_default_encoding -W error the successor adopts what it inherits."""
    pidfile, _, old = _start(tmp_path, *ENCODING_ERRORS)
    try:
        upgraded = python([*ENCODING_ERRORS, "-m", "aiodaemon", "upgrade", "--pidfile", pidfile])
        assert upgraded.returncode == 0, upgraded.stderr
        wait_gone(old, 30)
        assert read_pid(pidfile) == int(upgraded.stdout)
    finally:
        _stop(pidfile)


def test_the_kit_s_stderr_with_encoding_warnings_as_errors(tmp_path: Path) -> None:
    """A test suite run with -X warn_default_encoding -W error reads a daemon's stderr."""
    install_program("kit_app", tmp_path)
    script = tmp_path / "kit_run.py"
    script.write_text(
        textwrap.dedent(
            """
            import asyncio

            from aiodaemon.testing import launch


            async def main() -> None:
                async with launch("app:main", listen={"echo": "127.0.0.1:0"}) as daemon:
                    print(repr(daemon.stderr))
                    print(await daemon.stop())


            asyncio.run(main())
            """
        ),
        encoding="utf-8",
    )
    ran = python([*ENCODING_ERRORS, script], cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines()[-1] == "0"


def test_a_kit_user_s_forked_copy_with_warnings_as_errors() -> None:
    """A test process forked while its daemon runs (a multiprocessing worker) warns nothing.

    The copy let go of the kit's watchdog by dropping its ``Popen``, whose child
    still ran: "Exception ignored in Popen.__del__ ... ResourceWarning: subprocess
    N is still running" under ``-W error``, in every such copy.
    """
    ran = python(["-W", "error", program("kit_forked_copy")])
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == ["0", "0"]
    assert ran.stderr == ""


def test_a_kit_user_s_forked_copy_ending_through_the_exit_handlers() -> None:
    """A forked copy that leaves through the interpreter's exit leaves the daemon running.

    The kit's exit handler, inherited by the copy, killed the daemons its test
    process had launched: the copy's exit stopped the runner's daemon (-9).
    """
    ran = python(["-W", "error", program("kit_forked_copy"), "atexit"])
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == ["0", "0"]
    assert ran.stderr == ""
