"""The spawned worker pool whose running tasks can be ended (the demo's background lane, pretraining's field
workers)."""

from __future__ import annotations

import multiprocessing
import os
import time

from subcell.process_pool import SpawnPool


def _set_env(key: str, value: str) -> None:
    os.environ[key] = value


def test_the_callers_initializer_still_runs_in_each_worker() -> None:
    with SpawnPool(2, initializer=_set_env, initargs=("SUBCELL_POOL_TEST", "set")) as pool:
        seen = {pool.submit(os.getenv, "SUBCELL_POOL_TEST").result() for _ in range(4)}
        pid = pool.submit(os.getpid).result()
    assert seen == {"set"} and pid != os.getpid()
    assert multiprocessing.active_children() == []


def test_terminate_workers_ends_a_running_task_instead_of_waiting_for_it() -> None:
    pool = SpawnPool(1)
    assert pool.submit(os.getpid).result() != os.getpid()  # started and announced
    running = pool.submit(time.sleep, 30)
    queued = pool.submit(time.sleep, 30)
    for _ in range(1000):  # until the task is handed to the worker (then it can no longer be cancelled)
        if running.running():
            break
        time.sleep(0.01)
    assert running.running()
    pool.terminate_workers()
    # shutdown(wait=True) alone would have waited 30 s for the running task
    assert multiprocessing.active_children() == []
    assert queued.cancelled() or queued.exception() is not None
    assert running.exception() is not None  # the pool reports the worker it lost, the task never returned
