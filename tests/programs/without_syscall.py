"""Run the command in argv[2:] where system call number argv[1] fails, as on older Linux.

A seccomp filter, inherited across exec and fork, answers that one system call
with ENOSYS, as strict container profiles (older Docker, containerd) answer
the calls they do not know; every other call is allowed. The numbers from 424
on (``pidfd_open`` 434, ``close_range`` 436) are the same on every architecture.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
import sys

PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
BPF_LD_W_ABS, BPF_JEQ_K, BPF_RET_K = 0x20, 0x15, 0x06
SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO = 0x7FFF0000, 0x00050000


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def instruction(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    """One ``struct sock_filter``."""
    return struct.pack("HBBI", code, jt, jf, k)


program = [
    instruction(BPF_LD_W_ABS, 0),  # seccomp_data.nr
    instruction(BPF_JEQ_K, int(sys.argv[1]), jt=1),
    instruction(BPF_RET_K, SECCOMP_RET_ALLOW),
    instruction(BPF_RET_K, SECCOMP_RET_ERRNO | errno.ENOSYS),
]
code = ctypes.create_string_buffer(b"".join(program))
fprog = SockFprog(len(program), ctypes.addressof(code))
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
    sys.exit(f"PR_SET_NO_NEW_PRIVS: {os.strerror(ctypes.get_errno())}")
if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
    sys.exit(f"PR_SET_SECCOMP: {os.strerror(ctypes.get_errno())}")
os.execv(sys.argv[2], sys.argv[2:])
