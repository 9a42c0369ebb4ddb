"""Worker processes, started with ``spawn``, whose running tasks can be ended instead of waited for.

``spawn``, not ``fork``: the processes that use a pool hold torch's thread pools, which a forked child inherits in
an undefined state. :meth:`SpawnPool.terminate_workers` is the method Python 3.14 gave ``ProcessPoolExecutor``;
Python 3.11's executor can only wait for a running task, and names its worker processes only in a private
attribute. Here each worker announces its process id as it starts, so the pool can end exactly its own workers.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

__all__ = ["SpawnPool"]


def _start(pids: Any, initializer: Callable[..., object] | None, initargs: tuple[Any, ...]) -> None:
    """Run in each worker as it starts: announce its process id, then the caller's initializer."""
    pids.put(os.getpid())
    if initializer is not None:
        initializer(*initargs)


class SpawnPool(ProcessPoolExecutor):
    """A ``ProcessPoolExecutor`` of ``workers`` spawned processes with :meth:`terminate_workers`."""

    def __init__(
        self, workers: int, initializer: Callable[..., object] | None = None, initargs: tuple[Any, ...] = ()
    ) -> None:
        context = multiprocessing.get_context("spawn")
        self._pids = context.Queue()
        self._workers = workers
        self._started = False
        super().__init__(workers, mp_context=context, initializer=_start, initargs=(self._pids, initializer, initargs))

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self._started = True  # a spawn context starts every worker with the first task
        return super().submit(fn, *args, **kwargs)

    def terminate_workers(self, *, startup_s: float = 20.0) -> None:
        """End every worker now (tasks running are lost, queued ones cancelled) and shut the pool down. A worker
        still starting up is waited for up to ``startup_s`` until it has announced itself."""
        announced = set()
        if self._started:
            deadline = time.monotonic() + startup_s
            for _ in range(self._workers):
                try:
                    announced.add(self._pids.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    break
        # only this process's children, as multiprocessing's Process objects: the executor sees them end and
        # reaps them as it shuts down (a process reaped behind multiprocessing's back stays in active_children)
        for proc in multiprocessing.active_children():
            if proc.pid in announced:
                proc.terminate()
        self.shutdown(wait=True, cancel_futures=True)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        super().shutdown(wait=wait, cancel_futures=cancel_futures)
        if wait:
            self._pids.close()
            self._pids.join_thread()
