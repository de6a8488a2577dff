"""Public exceptions survive pickling: a process pool's worker that raises one reaches its caller.

``concurrent.futures`` and ``multiprocessing`` send a worker's exception back
pickled; one that cannot be rebuilt from its pickle broke the whole pool
(``BrokenProcessPool``) instead of reaching the caller.
"""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

import pytest

import aiodaemon
from aiodaemon import pep3143, testing

from .support import python

#: One instance of every public exception, built as aiodaemon builds them.
EXAMPLES: list[BaseException] = [
    aiodaemon.DaemonError("something failed"),
    aiodaemon.ConfigError("umask", "must be an octal number like 0o022, not 'x'"),
    aiodaemon.StartupError("cannot open log_file /x: Permission denied", option="log_file"),
    aiodaemon.AlreadyRunningError("/run/app.pid", 4242),
    aiodaemon.AlreadyRunningError("/run/app.pid", None),
    pep3143.DaemonOSEnvironmentError("cannot chdir to /nowhere"),
    pep3143.DaemonProcessDetachError("fork failed"),
    testing.LaunchError("no such script"),
    testing.StartFailed("startup hook app.connect failed: KeyError: 'X'", 1, "aiodaemon: ...\n"),
    testing.StartFailed("not ready after 5 s", None, ""),
    testing.ReloadFailed("ValueError: bad port"),
]


def _same(a: BaseException, b: BaseException) -> None:
    assert type(b) is type(a)
    assert str(b) == str(a)
    assert b.args == a.args
    assert vars(b) == vars(a)


@pytest.mark.parametrize("error", EXAMPLES, ids=lambda e: type(e).__name__)
def test_every_public_exception_pickles_and_copies(error: BaseException) -> None:
    """pickle, copy and deepcopy give the same exception: type, message, attributes."""
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        _same(error, pickle.loads(pickle.dumps(error, protocol)))
    _same(error, copy.copy(error))
    _same(error, copy.deepcopy(error))


#: A program whose process pool's worker is refused a pidfile the program holds.
_POOL_PROGRAM = """
import concurrent.futures, multiprocessing, sys
import aiodaemon
from aiodaemon import pep3143

def take(path):
    with pep3143.PidFile(path):
        pass

if __name__ == "__main__":
    path, method = sys.argv[1:]
    context = multiprocessing.get_context(method)
    pool = concurrent.futures.ProcessPoolExecutor(1, mp_context=context)
    with pep3143.PidFile(path), pool:
        try:
            pool.submit(take, path).result(timeout=60)
        except aiodaemon.AlreadyRunningError as exc:
            said = str(exc).startswith("already running (pid ")
            print(type(exc).__name__, exc.path == path, said)
        # The pool is not broken: the same worker takes the next job.
        print(pool.submit(abs, -3).result(timeout=60))
"""


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_already_running_in_a_pool_worker_reaches_the_caller(tmp_path: Path, method: str) -> None:
    """A worker refused a held pidfile: the caller gets AlreadyRunningError, the pool lives on."""
    program = tmp_path / "pool.py"
    program.write_text(_POOL_PROGRAM)
    result = python([program, tmp_path / "app.pid", method])
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == "AlreadyRunningError True True\n3\n"
