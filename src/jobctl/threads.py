"""Threads of a worker process other than its main thread."""

from __future__ import annotations

import signal

# the signals whose Python handlers the worker installs (runtime/worker.py: stop, and the lease's
# check on waking)
_MAIN_THREAD_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGCONT}


def leave_signals_to_the_main_thread() -> None:
    """Run first in a thread: the kernel then delivers the worker's signals to its main thread.
    CPython runs a handler only in the main thread, and a signal the kernel hands to another
    thread is noticed by the main thread only at its next switch of the interpreter lock: after a
    freeze (SIGSTOP, then SIGTERM and SIGCONT), the main thread could start its next job before
    it saw the stop (test_a_stop_gives_every_prefetched_job_back_to_the_front_in_order)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, _MAIN_THREAD_SIGNALS)
