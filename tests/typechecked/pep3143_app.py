"""A python-daemon program after changing only its import."""

from __future__ import annotations

import logging
import signal
import sys
from types import FrameType
from typing import assert_type

from aiodaemon import pep3143 as daemon
from aiodaemon.pep3143 import DaemonContext, DaemonError, PidFile

handler = logging.FileHandler("/var/log/foo.log")


def reload_program_config(signum: int, frame: FrameType | None) -> None: ...


def program_cleanup(signum: int, frame: FrameType | None) -> None: ...


def serve_forever() -> None: ...


context = daemon.DaemonContext(
    working_directory="/var/lib/foo",
    umask=0o002,
    pidfile=daemon.pidfile.TimeoutPIDLockFile("/run/foo.pid", 5),
    files_preserve=[handler.stream, 5],
    stdout=open("/var/log/foo.out", "a"),  # noqa: SIM115 (kept open for the daemon)
    stderr=sys.stderr,
    signal_map={signal.SIGTERM: "terminate", signal.SIGHUP: reload_program_config},
    uid=1000,
    gid=1000,
    initgroups=True,
    detach_process=daemon.is_detach_process_context_required(),
)
context.signal_map = {
    signal.SIGTERM: program_cleanup,
    signal.SIGHUP: "terminate",
    signal.SIGUSR1: reload_program_config,
}
context.signal_map[signal.SIGUSR2] = signal.SIG_IGN
prepared = {signal.SIGHUP: reload_program_config}
context.signal_map = prepared
context.files_preserve = [handler.stream]
context.pidfile = daemon.pidfile.PIDLockFile("/run/foo.pid")
try:
    with context as opened:
        assert opened.is_open
        serve_forever()
except DaemonError as exc:
    print(exc)

other = DaemonContext(pidfile=PidFile("/run/bar.pid"), detach_process=False)
other.open()
other.terminate(signal.SIGTERM, None)
other.close()


class AppContext(DaemonContext):
    """python-daemon programs subclass the context (to end otherwise, say)."""

    def terminate(self, signal_number: int, stack_frame: FrameType | None) -> None:
        self.flush_queues()
        super().terminate(signal_number, stack_frame)

    def flush_queues(self) -> None: ...


class AppPidFile(PidFile):
    def holder(self) -> int | None:
        return self.read_pid()


with AppContext(pidfile=AppPidFile("/run/app.pid")) as app_context:
    app_context.flush_queues()
with AppPidFile("/run/app.pid") as lock:
    assert_type(lock.holder(), int | None)


class AcquiredLock:
    """pep3143daemon's pidfile protocol: acquire() and release()."""

    def acquire(self) -> None: ...

    def release(self) -> None: ...


third = DaemonContext(pidfile=AcquiredLock(), detach_process=False)
third.pidfile = None
