"""The one atomic writer: concurrent writers of one folder never fail and never leave temporaries behind."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from subcell.io._atomic import atomic_output


def test_concurrent_folder_writers_all_succeed_and_the_last_one_wins(tmp_path: Path) -> None:
    # many writers replacing one folder: each moves the old one aside and its own in; another writer can move
    # the path aside between any two of those steps (this raised "Directory not empty" before the fix)
    target = tmp_path / "m"
    errors: list[BaseException] = []

    def work(k: int) -> None:
        for i in range(25):
            try:
                with atomic_output(target, overwrite=True) as tmp:
                    tmp.mkdir()
                    (tmp / "who").write_text(f"{k}-{i}")
            except BaseException as exc:  # pragma: no cover - what the test guards against
                errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no temporary or backup folder left
    assert (target / "who").read_text().split("-")[1] == "24"  # a complete output of some writer's last save


def test_a_scratch_folder_is_removed_at_the_end_on_error_and_by_the_cleanup_of_a_killed_run(tmp_path: Path) -> None:
    import pytest

    from subcell.io._atomic import remove_temporaries, scratch_beside

    out = tmp_path / "n.ome.zarr"
    with scratch_beside(out) as scratch:
        (scratch / "prediction.ome.zarr").mkdir()
        assert scratch.parent == tmp_path and scratch.name.startswith(".n.ome.zarr.")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError), scratch_beside(out) as scratch:
        raise RuntimeError("a frame failed")
    assert list(tmp_path.iterdir()) == []
    block = scratch_beside(out)  # a process killed inside the block never reaches its end
    killed = block.__enter__()
    assert killed.exists() and remove_temporaries(tmp_path) == 1 and list(tmp_path.iterdir()) == []


def test_scratch_arrays_start_as_zeros_clip_their_chunks_refuse_path_names_and_go_with_their_folder(
    tmp_path: Path,
) -> None:
    import numpy as np
    import pytest

    from subcell.errors import ValueRangeError
    from subcell.io import OmeZarrWriter
    from subcell.io._atomic import scratch_array, scratch_beside

    out = tmp_path / "n.ome.zarr"
    with scratch_beside(out) as scratch:
        arr = scratch_array(scratch, "cells", shape=(3, 40, 50), dtype=np.int32, chunks=(8, 128, 16))
        assert arr.chunks == (3, 40, 16) and arr.dtype == np.int32 and not np.asarray(arr[:]).any()
        arr[1:2, 5:9, 20:40] = 7
        assert int(np.asarray(scratch_array(scratch, "other", shape=(2, 2), dtype=np.uint8, chunks=(1, 1))).sum()) == 0
        assert int(np.asarray(arr[:]).sum()) == 7 * 4 * 20 and (scratch / "cells.zarr").is_dir()
        for bad in ("", "a/b", ".hidden"):
            with pytest.raises(ValueRangeError, match="plain names"):
                scratch_array(scratch, bad, shape=(2,), dtype=np.uint8, chunks=(2,))
    assert list(tmp_path.iterdir()) == []
    # the writer's scratch arrays live in its unfinished store and never appear in the output
    writer = OmeZarrWriter(out, shape=(1, 1, 2, 8, 8), dtype=np.uint8, voxel_size=(1.0, 0.5, 0.5))
    tmp = writer.scratch_array("relabel", shape=(2, 8, 8), dtype=np.int32, chunks=(2, 4, 4))
    tmp[:] = 3
    writer.write_region((slice(0, 1), slice(0, 1), slice(0, 2), slice(0, 8), slice(0, 8)), np.ones((1, 1, 2, 8, 8)))
    writer.close()
    assert not [p for p in out.rglob("*") if "scratch" in p.name or "relabel" in p.name]


def test_a_later_writer_removes_what_killed_writers_on_this_machine_left(tmp_path: Path) -> None:
    """SIGKILL, an out-of-memory kill or a node's crash leave a whole output's temporary behind; the next writer of
    that output removes those whose writer (named in them) is dead, and nothing a live one still writes."""
    import subprocess
    import sys

    from subcell.io._atomic import _HOST, atomic_output, temporary_sibling

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)  # finished: no process has that id now (ids are not reused this soon)
    out = tmp_path / "f.ome.zarr"
    left = {
        "killed": tmp_path / f".f.ome.zarr.partial-{_HOST}-{dead_pid}-0123abcd",
        "killed scratch": tmp_path / f".f.ome.zarr.scratch-{_HOST}-{dead_pid}-4567abcd",
        "live": temporary_sibling(out),  # this process, writing
        "other machine": tmp_path
        / f".f.ome.zarr.partial-{'0' * 6 if _HOST != '0' * 6 else '1' * 6}-{dead_pid}-89abcdef",
        "another output": tmp_path / f".g.ome.zarr.partial-{_HOST}-{dead_pid}-0123abcd",
        "unnamed writer": tmp_path / ".f.ome.zarr.partial-0123456789ab",
    }
    for p in left.values():
        p.mkdir()
        (p / "chunk").write_bytes(b"0" * 1000)
    with atomic_output(out, overwrite=False) as tmp:
        tmp.mkdir()
    kept = {k for k, p in left.items() if p.exists()}
    assert kept == {"live", "other machine", "another output", "unnamed writer"}
    assert out.is_dir()


def test_a_full_disk_is_one_line_naming_the_output(tmp_path: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """No space left (or a quota, a read-only folder) while a command writes: one line naming the output, status 1,
    nothing left behind (it was the writer's traceback, naming a chunk of a hidden temporary at best)."""
    import errno

    import numpy as np

    from subcell import Image, io
    from subcell.cli.main import run
    from subcell.io.ome_zarr_writer import OmeZarrWriter

    src = io.write(Image(np.ones((4, 16, 16), np.uint16), voxel_size=(1, 0.5, 0.5), dims="ZYX"), tmp_path / "a.ome.tif")
    out = tmp_path / "out" / "a.ome.zarr"
    out.parent.mkdir()

    def full(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(OmeZarrWriter, "write", full)
    capsys.readouterr()
    assert run(["convert", str(src), str(out)]) == 1
    err = capsys.readouterr().err
    assert err == f"error: {out}: No space left on device (writing it); nothing unfinished was left\n"
    assert list(out.parent.iterdir()) == []

    def refused(self, *args, **kwargs):  # type: ignore[no-untyped-def]  # an input the storage will not read
        raise PermissionError(errno.EACCES, "Permission denied", str(src))

    monkeypatch.setattr(OmeZarrWriter, "write", refused)
    assert run(["convert", str(src), str(out)]) == 1
    assert capsys.readouterr().err == f"error: {src}: Permission denied\n"  # not "writing" the output
    assert list(out.parent.iterdir()) == []

    def bug(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError(errno.EBADF, "Bad file descriptor")

    monkeypatch.setattr(OmeZarrWriter, "write", bug)
    with pytest.raises(OSError, match="Bad file descriptor"):  # not the storage's refusal: a bug keeps its traceback
        run(["convert", str(src), str(out)])


def test_sigterm_removes_the_unfinished_output_and_exits_143(tmp_path: Path) -> None:
    """A batch system's time limit (SIGTERM) in the middle of a conversion to OME-Zarr: one line, status 143, and
    no hidden temporary left (by default SIGTERM ended Python at once and left it; and writes Zarr's I/O thread
    still had queued made its folder again after the writer removed it)."""
    import signal
    import subprocess
    import sys
    import time

    import numpy as np

    from subcell import Image, io

    src = io.write(
        Image(np.ones((40, 16, 256, 256), np.uint16), voxel_size=(1, 0.5, 0.5), dims="TZYX"), tmp_path / "movie.ome.tif"
    )  # fmt: skip (2 MB a frame: read a few frames at a time)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    slow_reads = (  # each frame read slowly, so the signal arrives while the output is being written
        "import time, subcell.io._tiff as t, sys; get = t._TiffPages.__getitem__; "
        "t._TiffPages.__getitem__ = lambda self, key: (time.sleep(0.1), get(self, key))[1]; "
        "from subcell.cli.main import run; sys.exit(run(sys.argv[1:]))"
    )
    proc = subprocess.Popen([sys.executable, "-c", slow_reads, "convert", str(src), str(out_dir / "m.ome.zarr")],
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while not list(out_dir.glob(".m.ome.zarr.partial-*/0/*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()[1]
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 143 and err == "error: terminated (SIGTERM); its unfinished outputs were removed\n", err
    assert list(out_dir.iterdir()) == []


def test_writes_zarr_still_has_queued_are_cancelled(tmp_path: Path) -> None:
    """An interrupted command stops waiting for its Zarr write, not the write: Zarr's I/O thread goes on writing
    chunk after chunk (into a folder being removed). :func:`_cancel_zarr_writes` ends them."""
    import time

    import numpy as np
    import zarr

    from subcell.io._atomic import _cancel_zarr_writes

    arr = zarr.create_array(str(tmp_path / "a.zarr"), shape=(4000, 64), chunks=(1, 64), dtype="f8", compressors=None)
    done: list[BaseException | None] = []

    def write() -> None:
        try:
            arr[:] = np.random.default_rng(0).random((4000, 64))
            done.append(None)
        except BaseException as e:  # the cancelled write's wait ends with its cancellation
            done.append(e)

    import threading

    writer = threading.Thread(target=write)
    writer.start()
    chunks = tmp_path / "a.zarr" / "c"
    while not (chunks.exists() and any(chunks.iterdir())):
        time.sleep(0.001)
    _cancel_zarr_writes(5.0)
    writer.join(10)
    written = len(list(chunks.iterdir()))
    time.sleep(0.3)
    assert len(list(chunks.iterdir())) == written < 4000  # nothing written after the cancellation
    assert done and done[0] is not None
