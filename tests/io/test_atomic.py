"""The one atomic writer: concurrent writers of one folder never fail and never leave temporaries behind."""

from __future__ import annotations

import threading
from pathlib import Path

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
