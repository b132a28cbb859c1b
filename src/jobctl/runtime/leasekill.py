"""Processes the kernel kills for jobctl. A worker's lease enforced by the kernel: a POSIX timer
that sends the worker SIGKILL just before its lease can lapse, pushed back at each renewal; and
a worker (or an RQ work horse) that dies with the process that started it (die_with_parent).

A worker frozen past its lease (SIGSTOP, a paused VM or container) must not run one more
instruction of a job that may already run elsewhere. Checking the lease's age in Python cannot
promise that: when the process is continued every thread resumes at once, and a job's thread may
hold the GIL before any check runs. SIGKILL is delivered to a stopped process too, so the kernel
ends it while it is still frozen, just before the lease can lapse in Redis (worker.py,
KILL_EARLY); a worker cut off from Redis dies the same way (it fences itself a little earlier,
with a log line, when it can).

Linux only (timer_create with a signal of one's choice); elsewhere `arm` does nothing and the
worker's own checks remain (worker.py: the control thread, SIGCONT, before each reserved job).
"""

from __future__ import annotations

import ctypes
import os
import signal
import time

_SIGEV_SIGNAL = 0


class _Sigevent(ctypes.Structure):
    # struct sigevent on Linux: sigval, signo, notify, then a 48-byte union (64 bytes in all)
    _fields_ = [
        ("sigev_value", ctypes.c_void_p),
        ("sigev_signo", ctypes.c_int),
        ("sigev_notify", ctypes.c_int),
        ("_union", ctypes.c_int * 12),
    ]


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


class LeaseKill:
    """The kernel timer of one process; create it in the process it is to kill (timers are not
    inherited across fork)."""

    def __init__(self) -> None:
        self._timer: ctypes.c_void_p | None = None
        self._libc: ctypes.CDLL | None = None
        event = _Sigevent(sigev_signo=signal.SIGKILL, sigev_notify=_SIGEV_SIGNAL)
        timer = ctypes.c_void_p()
        # timer_create is in libc since glibc 2.34, in librt before (Debian 11, RHEL 8, Ubuntu
        # 20.04): a lookup that fails must leave the worker its own checks, not stop it starting
        for library in (None, "librt.so.1"):
            try:
                libc = ctypes.CDLL(library, use_errno=True)
                created = libc.timer_create(time.CLOCK_BOOTTIME, ctypes.byref(event), ctypes.byref(timer))
            except (OSError, AttributeError):  # no such library or function, or not Linux
                continue
            if created == 0:
                self._timer, self._libc = timer, libc
            return

    def arm(self, seconds: float) -> None:
        """SIGKILL this process `seconds` from now, unless armed again before."""
        if self._timer is None or self._libc is None:
            return
        seconds = max(seconds, 0.001)  # 0 would disarm it
        whole = int(seconds)
        spec = _Itimerspec(it_value=_Timespec(whole, int((seconds - whole) * 1e9)))
        self._libc.timer_settime(self._timer, 0, ctypes.byref(spec), None)


PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent dies


def die_with_parent(parent: int) -> None:
    """Linux: the kernel kills this process when `parent` dies, even by kill -9: a worker when its
    supervisor dies (so no worker goes on unsupervised beside a restarted supervisor's), an RQ work
    horse when its worker dies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the lease still fences such a worker
        return
    if os.getppid() != parent:  # it died before the request took effect
        os._exit(1)
