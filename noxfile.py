"""Sessions: tests, lint, typecheck, docs, bench."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.default_venv_backend = "venv"


@nox.session(python="3.11")
def tests(session: nox.Session) -> None:
    """The whole test suite (end-to-end tests start real daemons)."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("ruff")
    session.run("ruff", "check", "aiodaemon", "tests", "benchmarks", "examples", "noxfile.py")
    session.run("ruff", "format", "--check", "aiodaemon", "tests", "benchmarks", "examples")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package and the tests."""
    session.install("-e", ".[test]", "mypy")
    session.run("mypy")


@nox.session
def docs(session: nox.Session) -> None:
    """Check that every docs page's Python snippets at least compile."""
    session.run("python", "-m", "compileall", "-q", "examples", external=True)
    session.run(
        "python",
        "-c",
        "import pathlib, re; "
        "[compile(b, str(p), 'exec') for p in pathlib.Path('docs').glob('*.md') "
        "for b in re.findall(r'```python\\n(.*?)```', p.read_text(), re.S)]",
    )


@nox.session(python="3.11")
def bench(session: nox.Session) -> None:
    """Every benchmark, each printing its comparison table."""
    session.install("-e", ".[bench]")
    for name in ("detach", "runtime", "logging"):
        session.run("python", f"benchmarks/{name}.py", *session.posargs)
