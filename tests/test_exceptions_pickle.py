"""Public exceptions survive pickling: a process pool's worker that raises one reaches its caller.

``concurrent.futures`` and ``multiprocessing`` send a worker's exception back
pickled; one that cannot be rebuilt from its pickle broke the whole pool
(``BrokenProcessPool``) instead of reaching the caller.
"""

from __future__ import annotations

import concurrent.futures
import copy
import multiprocessing
import pickle
from pathlib import Path

import pytest

import aiodaemon
from aiodaemon import pep3143, testing

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


def _take(path: str) -> None:
    """In a pool's worker: take a pidfile another process holds."""
    with pep3143.PidFile(path):
        pass


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_already_running_in_a_pool_worker_reaches_the_caller(tmp_path: Path, method: str) -> None:
    """A worker refused a held pidfile: the caller gets AlreadyRunningError, the pool lives on."""
    path = str(tmp_path / "app.pid")
    context = multiprocessing.get_context(method)
    with (
        pep3143.PidFile(path),
        concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool,
    ):
        with pytest.raises(aiodaemon.AlreadyRunningError) as raised:
            pool.submit(_take, path).result(timeout=60)
        assert raised.value.path == path
        assert str(raised.value).startswith("already running (pid ")
        # The pool is not broken: the same worker takes the next job.
        assert pool.submit(abs, -3).result(timeout=60) == 3
