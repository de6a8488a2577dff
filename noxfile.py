"""Sessions: tests, lint, typecheck, docs, bench."""

from __future__ import annotations

from pathlib import Path

import nox

#: The Pythons the whole suite passes on (CI runs the first; ``nox -s tests`` runs all).
PYTHONS = ["3.11", "3.12", "3.13"]

# The default run stays quick: the suite on one Python, then lint and types.
nox.options.sessions = [f"tests-{PYTHONS[0]}", "lint", "typecheck"]
nox.options.default_venv_backend = "venv"


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The whole test suite (end-to-end tests start real daemons), once per Python.

    Needs ``python3.X`` on PATH for each (with pyenv: ``PYENV_VERSION=3.11.7:3.12.1:3.13.0``).
    About thirty tests run the interpreter as another account (the CLI as an
    unprivileged user, daemons that drop privileges and their upgrades): where it
    is unreadable to others (pyenv under /root) they are skipped, saying so,
    unless ``AIODAEMON_TEST_SHARED_PYTHON`` names one.
    """
    session.install("-e", ".[test]")
    # As .ci/run: in parallel, each module's tests on one worker.
    session.run("pytest", "-n", "auto", "--dist", "loadfile", *session.posargs)


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
    """Build the documentation site in strict mode (a warning fails) and check its tables."""
    session.install("-e", ".[test,docs]")
    session.run("mkdocs", "build", "--strict", env={"NO_MKDOCS_2_WARNING": "1"})
    # Every test_docs*.py: the tables, flags and events checks live beside test_docs.py.
    session.run("pytest", *sorted(str(path) for path in Path("tests").glob("test_docs*.py")))


@nox.session(python="3.11")
def bench(session: nox.Session) -> None:
    """Every benchmark, each printing its comparison table."""
    session.install("-e", ".[bench]")
    for name in ("detach", "runtime", "logging", "serving", "control", "upgrade"):
        session.run("python", f"benchmarks/{name}.py", *session.posargs)
