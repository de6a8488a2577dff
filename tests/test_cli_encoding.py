"""The control commands on a terminal whose encoding cannot say everything.

A reload hook's error, a path or an address may hold characters the
terminal's encoding lacks (``LANG=en_US.ISO-8859-1``, the C locale without
UTF-8 mode, ``PYTHONIOENCODING=ascii``): the command escapes them, as Python
does on stderr, and keeps its exit status.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from aiodaemon.testing import ReloadFailed, launch

from .support import REPO, aiodaemon_cli

PROGRAM = REPO / "tests" / "programs" / "kit_app.py"
ERROR = "café → naïve €"


@pytest.mark.parametrize(
    "terminal",
    [
        {"PYTHONIOENCODING": "ascii"},
        {"LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"},
    ],
)
async def test_status_shows_a_non_ascii_reload_error_escaped(
    tmp_path: Path, terminal: dict[str, str]
) -> None:
    """``status`` says running (exit 0) and the reload's error, escaped as stderr escapes it."""
    failure = tmp_path / "reload-error"
    failure.write_text(ERROR, encoding="utf-8")
    reload_error = {"KIT_RELOAD_ERROR": str(failure)}
    async with launch(PROGRAM, env=reload_error, listen={"echo": "127.0.0.1:0"}) as daemon:
        with pytest.raises(ReloadFailed):
            await daemon.reload()
        status = aiodaemon_cli("status", "--pidfile", daemon.pidfile, env=terminal)
        assert status.returncode == 0, status.stderr
        assert status.stderr == ""
        shown = f"ValueError: {ERROR}".encode("ascii", "backslashreplace").decode("ascii")
        lines = status.stdout.splitlines()
        assert lines[0] == f"running (pid {daemon.pid}, pidfile {daemon.pidfile})"
        assert any(line.endswith(shown) for line in lines)
        reload = aiodaemon_cli("reload", "--pidfile", daemon.pidfile, env=terminal)
        assert reload.returncode == 1
        assert reload.stderr.splitlines()[-1].endswith(shown)
        assert await daemon.stop() == 0
