"""Whether a process's cgroup is frozen: cgroup v2's ``cgroup.freeze``, v1's freezer.

A frozen process (``docker pause``, ``podman pause``, ``systemctl freeze``)
runs no code, as one stopped by SIGSTOP does, but its state is ``D`` (v1) or
``S`` (v2), not ``T``; SIGCONT does not thaw it, and the signals sent to it
wait until it is thawed (under v1 even SIGKILL). The hierarchies are found in
``/proc/self/mountinfo``, not assumed at ``/sys/fs/cgroup``: the paths in
``/proc/PID/cgroup`` are the ones this process sees (its cgroup namespace),
and so are its mounts. Read by the commands only, when a daemon does not answer.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: see aiodaemon/__init__.py
if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["Frozen", "frozen_cgroup"]

#: v1 freezer states of a cgroup that runs nothing (FREEZING: on its way there).
_V1_FROZEN = (b"FROZEN", b"FREEZING")


class Frozen:
    """A frozen cgroup: its directory, and the shell command that thaws it.

    Attributes:
        cgroup: the directory of the cgroup frozen (the process's own, or the
            nearest ancestor frozen itself, whose thaw thaws the process).
        thaw: e.g. ``echo 0 > /sys/fs/cgroup/app/cgroup.freeze``.
    """

    __slots__ = ("cgroup", "thaw")

    def __init__(self, cgroup: str, thaw: str) -> None:
        self.cgroup = cgroup
        self.thaw = thaw


def frozen_cgroup(pid: int) -> Frozen | None:
    """The frozen cgroup ``pid`` is in, v1's freezer or v2's; None if none (or unknown).

    None too when ``/proc`` will not tell (the process gone, hidden) or no
    freezer is mounted where this process can see it.
    """
    try:
        with open(f"/proc/{pid}/cgroup", "rb") as f:
            memberships = f.read().splitlines()
        with open("/proc/self/mountinfo", "rb") as f:
            mounts = f.read().splitlines()
    except OSError:
        return None
    for line in memberships:
        hierarchy, _, rest = line.partition(b":")
        controllers, _, path = rest.partition(b":")
        if hierarchy == b"0" and not controllers:
            frozen = _frozen_v2(_directories(mounts, path, b"cgroup2", None))
        elif b"freezer" in controllers.split(b","):
            frozen = _frozen_v1(_directories(mounts, path, b"cgroup", b"freezer"))
        else:
            continue
        if frozen is not None:
            return frozen
    return None


def _directories(
    mounts: list[bytes], path: bytes, fstype: bytes, controller: bytes | None
) -> Iterator[tuple[str, str]]:
    """``(cgroup directory, mount point)`` of ``path`` in each mount of the hierarchy that shows it.

    A mount may show a subtree only (its root, field 4 of mountinfo, as in a
    container): ``path`` is then found under it only if it lies in that subtree.
    """
    for line in mounts:
        fields = line.split(b" ")
        try:
            separator = fields.index(b"-", 6)
            kind, options = fields[separator + 1], fields[separator + 3]
            root, point = fields[3], fields[4]
        except (ValueError, IndexError):
            continue
        if kind != fstype or (controller is not None and controller not in options.split(b",")):
            continue
        if root == b"/":
            inside = path
        elif path == root or path.startswith(root + b"/"):
            inside = path[len(root) :]
        else:
            continue
        mount_point = _unescape(point)
        yield mount_point + _unescape(inside).rstrip("/"), mount_point


def _unescape(field: bytes) -> str:
    r"""A mountinfo field as a path: ``\040`` (space), ``\011``, ``\012`` and ``\134`` decoded."""
    out = bytearray()
    index = 0
    while index < len(field):
        octal = field[index + 1 : index + 4]
        if field[index] == 0x5C and len(octal) == 3 and all(0x30 <= c <= 0x37 for c in octal):
            out.append(int(octal, 8))
            index += 4
        else:
            out.append(field[index])
            index += 1
    return out.decode("utf-8", "surrogateescape")


def _frozen_v2(directories: Iterator[tuple[str, str]]) -> Frozen | None:
    """The nearest cgroup from the process's own up that asks to be frozen (``cgroup.freeze``)."""
    for directory, mount_point in directories:
        current = directory
        # The root cgroup cannot be frozen (it has no cgroup.freeze).
        while len(current) > len(mount_point):
            if _read(f"{current}/cgroup.freeze") == b"1":
                return Frozen(current, f"echo 0 > {_quoted(current + '/cgroup.freeze')}")
            current = current.rpartition("/")[0]
    return None


def _frozen_v1(directories: Iterator[tuple[str, str]]) -> Frozen | None:
    """The v1 freezer cgroup that freezes the process: itself, or an ancestor frozen itself.

    A child of a frozen cgroup says FROZEN too; its ``freezer.self_freezing``
    tells whether it was frozen itself, and only that one's thaw helps.
    """
    for directory, mount_point in directories:
        if _read(f"{directory}/freezer.state") not in _V1_FROZEN:
            continue
        current = directory
        while len(current) > len(mount_point):
            if _read(f"{current}/freezer.self_freezing") == b"1":
                break
            current = current.rpartition("/")[0]
        else:
            current = directory  # no self_freezing (an old kernel): its own, then
        return Frozen(current, f"echo THAWED > {_quoted(current + '/freezer.state')}")
    return None


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read().strip()
    except OSError:
        return None


def _quoted(path: str) -> str:
    """``path`` as a shell word: as it is unless it holds what the shell would split or expand."""
    if path and all(c.isalnum() or c in "/._-+:@%,=" for c in path):
        return path
    import shlex  # only for an unusual path: the commands need it for nothing else

    return shlex.quote(path)
