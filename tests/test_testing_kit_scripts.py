"""aiodaemon.testing with a script path: the script given runs, or launch() says why not."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from aiodaemon.testing import StartFailed, launch

from .support import REPO

PROGRAM = REPO / "tests" / "programs" / "kit_app.py"

#: A daemon that says it is the wrong one: the module of the script's name in the cwd.
IMPOSTOR = """\
import pathlib

import aiodaemon

pathlib.Path("imported").write_text("the module in the daemon's directory ran")


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.wait_stopping()
"""


async def test_a_script_that_a_module_in_cwd_would_shadow_is_refused(tmp_path: Path) -> None:
    """``launch(elsewhere/app.py)`` in a directory holding its own app.py: refused, nothing runs.

    The daemon imports the script as module ``app`` with its own directory first
    on ``sys.path``: it once ran the other ``app.py``, and the test passed against
    a program it never named.
    """
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    shutil.copyfile(PROGRAM, scripts / "app.py")
    project = tmp_path / "project"
    project.mkdir()
    (project / "app.py").write_text(IMPOSTOR)
    with pytest.raises(StartFailed) as failed:
        async with launch(scripts / "app.py", cwd=project, listen={"echo": "127.0.0.1:0"}):
            pytest.fail("the block must not run")
    assert failed.value.message == (
        f"script {scripts / 'app.py'} cannot run in {project}: the daemon imports it as module"
        f" 'app', and {project / 'app.py'} would be imported instead (launch it with cwd= its"
        " directory, or rename one of them)"
    )
    assert failed.value.status is None
    assert not (project / "imported").exists()


async def test_the_script_runs_beside_a_module_of_another_name(tmp_path: Path) -> None:
    """A directory of the script's own, or modules of other names in cwd, change nothing."""
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    shutil.copyfile(PROGRAM, scripts / "app.py")
    (scripts / "imported").mkdir()  # a name the impostor would write: not a module
    project = tmp_path / "project"
    project.mkdir()
    (project / "other.py").write_text(IMPOSTOR)
    (project / "app").mkdir()  # a namespace directory does not shadow a module
    async with launch(scripts / "app.py", cwd=project, listen={"echo": "127.0.0.1:0"}) as daemon:
        assert (await daemon.wait_for_record("ready"))["pid"] == daemon.pid
    assert daemon.returncode == 0


async def test_a_script_whose_name_is_no_module_name_is_refused(tmp_path: Path) -> None:
    """``my-app.py`` is refused naming the script, not as a ``my-app:main`` the user never wrote."""
    shutil.copyfile(PROGRAM, tmp_path / "my-app.py")
    with pytest.raises(StartFailed) as failed:
        async with launch("my-app.py", cwd=tmp_path):
            pytest.fail("the block must not run")
    assert failed.value.message == (
        "script my-app.py cannot be imported: 'my-app' is not a module name"
        " (the daemon imports the script as a module; rename it, e.g. my_app.py)"
    )
    assert failed.value.status is None


@pytest.mark.parametrize(
    ("name", "owner"),
    [
        ("json", "the standard library's"),  # would shadow it for the whole daemon
        ("time", "the standard library's"),  # built in: would run instead of the script
        ("structlog", "a module aiodaemon itself imports:"),
    ],
)
async def test_a_script_named_like_a_module_the_daemon_imports_is_refused(
    tmp_path: Path, name: str, owner: str
) -> None:
    """``json.py`` is refused naming the clash; neither it nor the standard module runs as it.

    The daemon imports the script as module ``json``: the standard library's
    ran instead (``module 'time' has no attribute 'main'``), or the script took
    its place for the whole daemon (``module 'json' has no attribute 'dumps'``).
    """
    shutil.copyfile(PROGRAM, tmp_path / f"{name}.py")
    with pytest.raises(StartFailed) as failed:
        async with launch(tmp_path / f"{name}.py", listen={"echo": "127.0.0.1:0"}):
            pytest.fail("the block must not run")
    assert failed.value.message == (
        f"script {tmp_path / name}.py cannot be imported as itself: its module name {name!r}"
        f" is {owner} {name} (rename it, e.g. {name}_app.py)"
    )
    assert failed.value.status is None
