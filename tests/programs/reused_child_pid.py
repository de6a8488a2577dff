"""A forced exit meets a child pid the daemon's records keep but another user's process now has.

``reused_child_pid.py USER DIR KIND HOW`` runs as the first process of a new
pid namespace (``unshare --pid --fork --mount-proc``, where nothing else takes
pids). It starts root's daemon (``aiodaemon run``, this module's :func:`main`),
which leaves a stale pid in its records and keeps a child of its own running
for ever:

- ``forkserver``: a multiprocessing child (``forkserver`` start method, not
  daemonic) that ended at once, never joined: the forkserver reaped it, its
  record says nothing; the one kept running is a forkserver child too;
- ``broken-pool``: a ``ProcessPoolExecutor`` (fork) broken by a worker's
  SIGKILL (the OOM killer): its manager thread reaped every worker, which its
  records keep; the one kept running is a multiprocessing child (fork).

A process of USER then takes the stale pid (``ns_last_pid``) and the daemon's
exit is forced, past a shutdown hook that waits a minute: ``HOW`` is
``second-sigterm`` (two SIGTERMs) or ``stop`` (a plain ``aiodaemon stop``
past ``--shutdown-timeout 1``). It prints one JSON line: the daemon's status,
the stale pid and the own child's, the uid of the process on the stale pid,
how it ended (``running`` if it had not), whether the daemon's own child is
gone, and the log's records.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import pwd
import signal
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import aiodaemon
from aiodaemon._run._forced import DUPLICATE_WINDOW
from tests.programs.recorder import until

_KEPT: list[object] = []


def _short() -> None:
    """A job that ends at once; the program never joins it."""


def _forever() -> None:
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    signal.sigwait({signal.SIGUSR1})


def _crash() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@aiodaemon.on_shutdown
async def _slow_cleanup() -> None:
    Path(os.environ["REUSED_OUT"] + ".hook").touch()
    await asyncio.sleep(60)  # cut by the forced exit


async def main(ctx: aiodaemon.Context) -> None:
    """Leave a stale pid in the records and a child of our own running; write both."""
    kind, out = os.environ["REUSED_KIND"], Path(os.environ["REUSED_OUT"])
    own: multiprocessing.process.BaseProcess
    if kind == "forkserver":
        mp = multiprocessing.get_context("forkserver")
        ended = mp.Process(target=_short)
        ended.start()
        own = mp.Process(target=_forever, name="own-child")
        own.start()
        _KEPT.extend([ended, own])
        stale = ended.pid
    else:
        pool = ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("fork"))
        _KEPT.append(pool)
        loop = asyncio.get_running_loop()
        workers = {await loop.run_in_executor(pool, os.getpid) for _ in range(4)}
        try:
            await loop.run_in_executor(pool, _crash)
        except Exception as exc:  # BrokenProcessPool: the program serves on
            _KEPT.append(exc)
        stale = max(workers)
        own = multiprocessing.get_context("fork").Process(target=_forever, name="own-child")
        own.start()
        _KEPT.append(own)
    assert stale is not None
    assert own.pid is not None
    # Reaped by the forkserver, or by the pool's manager thread: no event says so.
    while not _gone(stale):  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    out.write_text(f"{stale} {own.pid}\n")
    await ctx.wait_stopping()


def _victim(user: str, pid: int) -> tuple[int, int]:
    """A process of USER at exactly ``pid``, waiting on a pipe: its pid and the release fd."""
    entry = pwd.getpwnam(user)
    release_r, release_w = os.pipe()
    ready_r, ready_w = os.pipe()
    for _ in range(100):
        Path("/proc/sys/kernel/ns_last_pid").write_text(f"{pid - 1}")
        child = os.fork()
        if child == 0:  # pragma: no cover - the child
            if os.getpid() != pid:
                os._exit(0)
            os.setgroups([])
            os.setresgid(entry.pw_gid, entry.pw_gid, entry.pw_gid)
            os.setresuid(entry.pw_uid, entry.pw_uid, entry.pw_uid)
            os.close(release_w)
            os.write(ready_w, b"!")
            os.read(release_r, 1)  # EOF when released
            os._exit(0)
        if child == pid:
            os.close(release_r)
            os.close(ready_w)
            if os.read(ready_r, 1) != b"!":
                raise SystemExit("the victim failed to become its user")
            os.close(ready_r)
            return child, release_w
        os.waitpid(child, 0)
    raise SystemExit(f"pid {pid} never came round: {_holder(pid)}")


def _holder(pid: int) -> str:
    """What has ``pid`` now (a thread's id is a pid too): its name and thread group."""
    try:
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError as exc:
        return f"nothing seen ({exc.strerror})"
    fields = dict(line.split(":", 1) for line in status if ":" in line)
    return f"{fields['Name'].strip()} (thread group {fields['Tgid'].strip()})"


def _uid(pid: int) -> int:
    """``pid``'s real uid (``/proc/PID`` itself is root's once a process dropped from root)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise SystemExit(f"no Uid line for {pid}")


def _ended(pid: int) -> str:
    """How the victim ended; ``running`` if it has not."""
    waited, status = os.waitpid(pid, os.WNOHANG)
    if waited == 0:
        return "running"
    if os.WIFSIGNALED(status):
        return f"signal {os.WTERMSIG(status)}"
    return f"exit {os.WEXITSTATUS(status)}"


def _reap(pid: int) -> bool:
    """Whether ``pid`` (orphaned to us, the namespace's init) has ended; reaps it."""
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return _gone(pid)
    return waited == pid


def _records(log: Path) -> list[dict[str, Any]]:
    out = []
    for line in log.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def _drive(user: str, here: Path, kind: str, how: str) -> None:
    """Run the scenario as pid 1 of a pid namespace and print what happened."""
    pidfile, log, out = here / "app.pid", here / "app.log", here / "pids"
    argv = [
        sys.executable,
        "-m",
        "aiodaemon",
        "run",
        "tests.programs.reused_child_pid:main",
        "--pidfile",
        str(pidfile),
    ]
    argv += [
        "--log-file",
        str(log),
        "--no-control",
        "--shutdown-timeout",
        "1" if how == "stop" else "60",
    ]
    env = {**os.environ, "REUSED_KIND": kind, "REUSED_OUT": str(out)}
    daemon = subprocess.Popen(
        argv, env=env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    report: dict[str, Any] = {}
    release = -1
    try:
        until(lambda: out.exists() and out.read_text().endswith("\n"), "the daemon's pids")
        stale, own = map(int, out.read_text().split())
        victim, release = _victim(user, stale)
        report.update(stale=stale, own=own, victim_uid=_uid(victim))
        if how == "stop":
            stop = [sys.executable, "-m", "aiodaemon", "stop", "--pidfile", str(pidfile)]
            said = subprocess.run(stop, capture_output=True, text=True, timeout=60, check=False)
            report["stop_said"] = said.stderr
        else:
            daemon.send_signal(signal.SIGTERM)
            until(Path(f"{out}.hook").exists, "the stuck shutdown hook")
            # Not a wait for an event: past it, the same signal is a second request.
            time.sleep(DUPLICATE_WINDOW * 2)
            daemon.send_signal(signal.SIGTERM)
        report["status"] = daemon.wait(timeout=60)
        try:
            until(lambda: _reap(own), "the daemon's own child's end", 10)
            report["own_child_gone"] = True
        except SystemExit:
            report["own_child_gone"] = False
            os.kill(own, signal.SIGKILL)
        report["victim"] = _ended(victim)
        report["records"] = _records(log)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        if release >= 0:
            os.close(release)
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    _drive(sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4])
