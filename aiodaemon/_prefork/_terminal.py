"""The terminal of a foreground daemon: given up before a drop from root; its hang-up.

A foreground daemon started from root's shell shares root's terminal. After
the drop, the service account could push keystrokes into it (``TIOCSTI``),
which root's shell runs once the daemon returns, and read what root types. The
kernel allows the first only on the process's *controlling* terminal, so the
daemon gives it up, as ``su``/``runuser`` sessions do; the second needs a
readable descriptor of the terminal, so fds 0-2 keep only the writing half.
Never imports asyncio (the drop runs before any loop exists).

A terminal that hangs up (its window closed, the ssh connection lost) sends
SIGHUP, which aiodaemon otherwise takes as a reload: :func:`terminal_hung_up`
tells the two apart, so that a foreground daemon ends with its terminal, as
foreground programs do.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import signal
import stat
import termios

from ..exceptions import StartupError

__all__ = ["give_up_terminal", "terminal_hung_up"]


def give_up_terminal() -> None:
    """Stop having a controlling terminal (``TIOCNOTTY``), and keep only write access to any.

    A process that is not its session's leader only loses its own link: it
    stays in the terminal's foreground process group, so Ctrl-C still reaches
    it. A session leader makes the kernel send SIGHUP and SIGCONT to the
    foreground group; that SIGHUP is consumed here, since it announces only
    the hangup we asked for, not a reload or the end of the session.

    Call it before a chroot, which may hide ``/dev/tty``, and before the uid
    changes: :func:`_write_only` reopens the terminal as root.

    Raises:
        StartupError: the kernel would not let go of the terminal, or kept it readable.
    """
    _take_away_terminal()
    _write_only()


def _take_away_terminal() -> None:
    """``TIOCNOTTY`` on the controlling terminal, if there is one."""
    try:
        tty = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            return  # no controlling terminal: the detached and supervised case
        # No /dev/tty node (a bare container /dev): any of fds 0-2 on the
        # terminal will do; ENOTTY is "not a terminal, or not ours".
        for fd in (0, 1, 2):
            if _notty(fd, tolerate=True):
                return
        return
    try:
        _notty(tty, tolerate=False)
    finally:
        os.close(tty)


def _notty(fd: int, *, tolerate: bool) -> bool:
    """``TIOCNOTTY`` on ``fd``, its hangup swallowed for a session leader; True if it worked."""
    leader = os.getsid(0) == os.getpid()
    # Blocked so that the hangup waits to be consumed instead of ending us
    # (its default action) or reaching a handler as a reload request.
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP}) if leader else None
    # Into a SIGHUP already pending (a reload asked for while the run phase
    # held it) the kernel's merges: consumed then, that request was lost.
    asked = leader and signal.SIGHUP in signal.sigpending()
    try:
        fcntl.ioctl(fd, termios.TIOCNOTTY)
    except OSError as exc:
        if tolerate:
            return False
        raise StartupError(
            f"cannot give up the controlling terminal: {exc.strerror or exc}"
        ) from exc
    finally:
        if previous is not None:
            _consume_hangup(asked)
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    return True


def _consume_hangup(asked: bool) -> None:
    """Consume the SIGHUP the kernel sent at ``TIOCNOTTY``, and only that one.

    The kernel's is sent as by ``kill()`` from us (the ioctl's caller): its
    ``si_pid`` is our pid. A pending SIGHUP keeps the sender of the first
    one, so another ``si_pid`` is a request that came first, after ``asked``
    was looked at (or one while we were not in the terminal's foreground
    group, which the kernel does not signal): it is put back, to run as a
    reload. One sent after the kernel's, before this call, merges into it
    unseen (the kernel keeps one of each standard signal): an instant no
    system call closes, short of steering the hang-up to another process.

    Args:
        asked: a SIGHUP was pending before the ioctl: a request, kept too.
    """
    info = signal.sigtimedwait([signal.SIGHUP], 0)
    if info is not None and (asked or info.si_pid != os.getpid()):
        # Blocked still: pending again until the run phase lets it in.
        os.kill(os.getpid(), signal.SIGHUP)


def _write_only() -> None:
    """Make fds 0-2 unable to read a terminal: stdin is ``/dev/null``, stdout and stderr write-only.

    A terminal's descriptors are usually one ``O_RDWR`` open file shared by
    fds 0-2, so even stdout reads root's keystrokes. Reopened here, as root,
    write-only (the service account could not open root's terminal itself),
    the daemon's output still shows on the terminal, colours and all.
    """
    for fd in (0, 1, 2):
        if not os.isatty(fd):
            continue
        try:
            if fd == 0:
                # A daemon has no use for typed input; EOF, not a read of root's keys.
                replacement = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            else:
                replacement = os.open(os.ttyname(fd), os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC)
        except OSError as exc:
            if fd == 0:
                what = "point fd 0, root's terminal, at /dev/null"
            else:
                what = f"make fd {fd}, root's terminal, write-only"
            raise StartupError(f"cannot {what}: {exc.strerror or exc}") from exc
        try:
            os.dup2(replacement, fd)
        finally:
            os.close(replacement)


def terminal_hung_up(terminal: tuple[int, int]) -> bool:
    """Whether ``terminal`` (major, minor), the daemon's at start, is on fds 0-2, hung up.

    A hung-up terminal polls ``POLLHUP`` (its reads and ioctls fail with
    EIO); a live one, ``/dev/null``, a file or a pipe's writing end never do.
    Only the terminal the daemon started with is asked: a pipe on stdin whose
    writer left polls ``POLLHUP`` too, and a terminal that went away without
    telling the daemon (it ran in a session of its own) says nothing of why a
    later SIGHUP was sent.
    """
    poller = select.poll()
    for fd in (0, 1, 2):
        try:
            st = os.fstat(fd)
        except OSError:
            continue
        if stat.S_ISCHR(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) == terminal:
            poller.register(fd, 0)  # POLLHUP is always reported
    return any(event & select.POLLHUP for _, event in poller.poll(0))
