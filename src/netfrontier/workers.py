"""Worker processes that stop when the job stops: on Ctrl-C at once, and with their parent.

A terminal's Ctrl-C reaches every process of the job; workers ignore it, so the parent alone
decides: it keeps what has finished, cancels the rest and terminates the workers instead of
waiting for captures in flight (tens of seconds for the largest models). A worker whose
parent dies (even by `kill -9`) is killed by the kernel (Linux PR_SET_PDEATHSIG) or, where
that is not available, exits within a second on its own.
"""
from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

_PR_SET_PDEATHSIG = 1


def _init_worker(parent_pid: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the watchdog below still works
        pass
    if os.getppid() != parent_pid:  # the parent died before we got here
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


@contextlib.contextmanager
def worker_pool(workers: int) -> Iterator[ProcessPoolExecutor]:
    """A spawn-context process pool whose workers never outlive the job (see module doc)."""
    before = set(multiprocessing.active_children())
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(
        "spawn"), initializer=_init_worker, initargs=(os.getpid(),))
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        for p in set(multiprocessing.active_children()) - before:
            p.terminate()
        raise
    else:
        pool.shutdown(wait=True)
