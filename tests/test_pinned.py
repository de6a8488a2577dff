"""Pinned modules: read at pin(), run at their import, whatever the disk holds by then."""

from __future__ import annotations

import os
import textwrap
import zipfile
from pathlib import Path

from .support import REPO, python


def _run(tmp_path: Path, script: str) -> str:
    """Run ``script`` with ``tmp_path`` importable; its stdout."""
    done = python(
        ["-c", textwrap.dedent(script)],
        cwd=tmp_path,
        env={"PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}"},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_pinned_module_runs_the_code_read_at_pin(tmp_path: Path) -> None:
    """Edited, then deleted after pin(): the import still runs the version pinned."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "mod.py").write_text("VERSION = 'old'\n")
    out = _run(
        tmp_path,
        """
        import os, pkg
        from aiodaemon._prefork._pinned import pin
        pin(["pkg.mod"])
        with open("pkg/mod.py", "w") as f:
            f.write("VERSION = 'new'\\n")
        os.remove("pkg/mod.py")
        import pkg.mod
        print(pkg.mod.VERSION, os.path.basename(pkg.mod.__file__))
        """,
    )
    assert out.split() == ["old", "mod.py"]


def test_what_cannot_be_pinned_is_left_to_its_import(tmp_path: Path) -> None:
    """A missing module, a missing package, a syntax error: pin() says nothing; import does."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "bad.py").write_text("def (\n")
    out = _run(
        tmp_path,
        """
        import pkg
        from aiodaemon._prefork._pinned import pin
        pin(["pkg.bad", "pkg.missing", "nopkg.mod"])
        for name in ("pkg.bad", "pkg.missing"):
            try:
                __import__(name)
            except (ImportError, SyntaxError) as exc:
                print(type(exc).__name__)
        """,
    )
    assert out.split() == ["SyntaxError", "ModuleNotFoundError"]


def test_a_module_in_a_zip_archive_is_pinned(tmp_path: Path) -> None:
    """A module zipimport loads (aiodaemon in a zipapp): the archive removed, it still imports."""
    with zipfile.ZipFile(tmp_path / "app.zip", "w") as archive:
        archive.writestr("pkg/__init__.py", "")
        archive.writestr("pkg/mod.py", "VERSION = 'old'\n")
    out = _run(
        tmp_path,
        """
        import os, sys
        sys.path.insert(0, "app.zip")
        import pkg
        from aiodaemon._prefork._pinned import pin
        pin(["pkg.mod"])
        os.remove("app.zip")
        import pkg.mod
        print(pkg.mod.VERSION, pkg.mod.__file__.endswith(os.path.join("app.zip", "pkg", "mod.py")))
        """,
    )
    assert out.split() == ["old", "True"]
