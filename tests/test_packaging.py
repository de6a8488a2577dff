"""aiodaemon as users get it: the sdist and the wheel, installed, run outside the checkout.

The sdist and wheel are built as ``python -m build`` builds them (hatchling,
the project's backend). The wheel is then installed into a directory of its
own and run from a directory that is not the repository, so nothing the
checkout provides (its modules on ``sys.path``, files next to the sources)
can stand in for what the wheel lacks.
"""

from __future__ import annotations

import os
import re
import subprocess
import tarfile
import zipfile
from collections.abc import Mapping
from pathlib import Path

import pytest

from .support import PYTHON, REPO, clean_env, install_program

#: What must never ship: caches, virtual environments, built docs.
NEVER_SHIPPED = (
    "__pycache__/",
    ".pyc",
    ".venv",
    ".nox/",
    ".mypy_cache/",
    ".ruff_cache/",
    ".pytest_cache/",
    ".hypothesis/",
    "site/",
    ".egg-info/",
)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The sdist and the wheel, built from the checkout by its build backend."""
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [PYTHON, "-m", "hatchling", "build", "-d", dist],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=True,
    )
    (sdist,) = dist.glob("*.tar.gz")
    (wheel,) = dist.glob("*.whl")
    return sdist, wheel


@pytest.fixture(scope="module")
def installed(built: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel installed (without its dependencies, which the test's Python has) alone."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [PYTHON, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", target,
         built[1]],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=True,
    )  # fmt: skip
    return target


def _package_modules() -> set[str]:
    """Every file of the package in the checkout, as ``aiodaemon/...`` names."""
    package = REPO / "aiodaemon"
    return {
        path.relative_to(REPO).as_posix()
        for path in package.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


def test_the_wheel_holds_the_package_its_license_and_entry_points(
    built: tuple[Path, Path],
) -> None:
    """Every module and py.typed, the license text, the console script and the pytest plugin."""
    with zipfile.ZipFile(built[1]) as wheel:
        names = set(wheel.namelist())
        info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        entry_points = wheel.read(f"{info}/entry_points.txt").decode()
        metadata = wheel.read(f"{info}/METADATA").decode()
    package = {n for n in names if not n.startswith(info)}
    assert package == _package_modules()
    assert "aiodaemon/py.typed" in package
    assert f"{info}/licenses/LICENSE" in names
    assert "License-File: LICENSE" in metadata.splitlines()
    assert "aiodaemon = aiodaemon._cli._main:main" in entry_points.splitlines()
    assert "aiodaemon = aiodaemon._kit._pytest_plugin" in entry_points.splitlines()
    assert [n for n in names if any(bad in n for bad in NEVER_SHIPPED)] == []
    # PyPI shows the README with no repository around it: a relative link leads nowhere.
    description = metadata.split("\n\n", 1)[1]
    targets = re.findall(r"\]\(([^)]*)\)", description)
    assert targets, "the README's links"
    relative = [t for t in targets if not t.startswith(("https://", "http://", "#"))]
    assert relative == []
    # Nor can its reader, who ran `pip install aiodaemon`, use the checkout's
    # commands the README opens with: the page starts with the install instead.
    assert description.startswith("# aiodaemon\n\n```sh\npip install aiodaemon\n```\n")
    assert "examples.echo:main" not in description
    assert "aiodaemon turns an asyncio program into a well-behaved Unix service" in description


def test_the_sdist_holds_sources_tests_docs_and_license_but_no_caches(
    built: tuple[Path, Path],
) -> None:
    """Enough to build, test and read it (downstream packagers run the tests); no local debris."""
    with tarfile.open(built[0]) as sdist:
        names = {name.partition("/")[2] for name in sdist.getnames()}
    for needed in (
        "LICENSE",
        "README.md",
        "CHANGELOG.md",
        "pyproject.toml",
        "tests/conftest.py",
        "tests/programs/installed_app.py",
        "docs/testing.md",
        "examples/greeter.py",
    ):
        assert needed in names
    assert {n for n in names if n.startswith("aiodaemon/")} >= _package_modules()
    assert [n for n in names if any(bad in n for bad in NEVER_SHIPPED)] == []


def _run(
    args: list[str | os.PathLike[str]], *, cwd: Path, env: Mapping[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(map(str, args)),
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def _only(installed: Path) -> dict[str, str]:
    """An environment whose ``aiodaemon`` is the installed wheel's, not the checkout's."""
    env = clean_env()
    env["PYTHONPATH"] = str(installed)
    return env


def test_the_installed_wheel_runs_a_daemon_outside_the_checkout(
    built: tuple[Path, Path], installed: Path, tmp_path: Path
) -> None:
    """Its console script and ``python -OO -m aiodaemon`` start, reload and stop a daemon."""
    env = _only(installed)
    script = installed / "bin" / "aiodaemon"
    version = _run([script, "--version"], cwd=tmp_path, env=env)
    assert version.returncode == 0, version.stderr
    # The wheel's name carries the version its metadata says.
    assert version.stdout == f"aiodaemon {built[1].name.split('-')[1]}\n"
    install_program("installed_app", tmp_path)
    pidfile = tmp_path / "app.pid"
    command = [PYTHON, "-OO", "-m", "aiodaemon"]
    started = _run(
        [*command, "start", "app:main", "--pidfile", pidfile, "--log-file", tmp_path / "log"],
        cwd=tmp_path,
        env=env,
    )
    assert started.returncode == 0, started.stderr
    try:
        assert Path((tmp_path / "aiodaemon_file").read_text(encoding="utf-8")).is_relative_to(
            installed
        )
        status = _run([script, "status", "--pidfile", pidfile], cwd=tmp_path, env=env)
        assert status.returncode == 0, status.stderr
        assert status.stdout.startswith(f"running (pid {int(started.stdout)}")
        reloaded = _run([*command, "reload", "--pidfile", pidfile], cwd=tmp_path, env=env)
        assert reloaded.returncode == 0, reloaded.stderr
        assert (tmp_path / "reloads").read_text(encoding="utf-8") == "reload\n"
    finally:
        stopped = _run([script, "stop", "--pidfile", pidfile], cwd=tmp_path, env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert not pidfile.exists()


def test_the_installed_testing_kit_under_dev_mode_and_warnings_as_errors(
    installed: Path, tmp_path: Path
) -> None:
    """``aiodaemon.testing.launch`` from the wheel, with every warning an error, in -X dev."""
    install_program("installed_app", tmp_path)
    kit = tmp_path / "kit_run.py"
    kit.write_text(
        "import asyncio\n"
        "from aiodaemon.testing import launch\n"
        "async def main() -> None:\n"
        "    async with launch('app:main') as daemon:\n"
        "        await daemon.reload()\n"
        "        print(await daemon.stop())\n"
        "asyncio.run(main())\n",
        encoding="utf-8",
    )
    ran = _run([PYTHON, "-X", "dev", "-W", "error", kit], cwd=tmp_path, env=_only(installed))
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "0\n"
    assert Path((tmp_path / "aiodaemon_file").read_text(encoding="utf-8")).is_relative_to(installed)
