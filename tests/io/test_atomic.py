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
