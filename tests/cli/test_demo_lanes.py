"""The demo's background process: its results come back, its failure is the demo's failure, and nothing of it
keeps running after one."""

from __future__ import annotations

import time

import pytest

from subcell.cli import demo


def test_background_results_come_back_in_a_one_thread_process() -> None:
    import os

    with demo._background() as pool:
        pid = pool.submit(os.getpid).result()
        threads = pool.submit(os.getenv, "OMP_NUM_THREADS").result()
    assert pid != os.getpid() and threads == "1"


def test_a_failure_in_the_background_stops_it_and_reaches_the_caller() -> None:
    import os

    import psutil

    with pytest.raises(ValueError, match="invalid literal"), demo._background() as pool:
        worker = psutil.Process(pool.submit(os.getpid).result())
        bad = pool.submit(int, "x")
        pool.submit(time.sleep, 600)  # handed to the worker already or still queued: it must not run on
        bad.result()
    worker.wait(timeout=60)  # raises if the worker process is still alive
