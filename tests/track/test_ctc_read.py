"""Reading a CTC folder: frames checked from their headers, pixels read frame by frame when computed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from subcell.errors import InputFileError
from subcell.image import materialize
from subcell.io.ctc import read_ctc
from tests.conftest import cli_user_error


def _folder(tmp_path: Path, frames: np.ndarray) -> Path:
    ctc = tmp_path / "ctc"
    ctc.mkdir()
    (ctc / "res_track.txt").write_text("1 0 2 0\n")
    for t, frame in enumerate(frames):
        tifffile.imwrite(ctc / f"mask{t:03d}.tif", frame, photometric="minisblack")
    return ctc


def _frames() -> np.ndarray:
    lab = np.zeros((3, 4, 32, 32), np.uint16)
    for t in range(3):
        lab[t, 1:3, 4 + 2 * t : 10 + 2 * t, 6:12] = 1
    return lab


def test_frames_are_read_when_computed_one_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lab = _frames()
    ctc = _folder(tmp_path, lab)
    reads: list[str] = []
    real = tifffile.imread
    monkeypatch.setattr(tifffile, "imread", lambda f, *a, **k: reads.append(Path(f).name) or real(f, *a, **k))
    masks, rows = read_ctc(ctc)
    assert masks.shape == (3, 4, 32, 32) and masks.dtype == np.uint16 and list(rows.L) == [1]
    assert reads == []  # shapes and types came from the headers
    np.testing.assert_array_equal(materialize(masks[1]), lab[1])
    assert reads == ["mask001.tif"]
    np.testing.assert_array_equal(materialize(masks), lab)


def test_a_frame_whose_pixels_cannot_be_read_fails_naming_it(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    lab = _frames()
    ctc = _folder(tmp_path, lab)
    bad = ctc / "mask002.tif"
    tifffile.imwrite(bad, lab[2], photometric="minisblack", compression="zlib")
    data = bad.read_bytes()
    with tifffile.TiffFile(bad) as tif:  # keep the header, garble the compressed pixels
        page = tif.pages[0]
        start = page.dataoffsets[0]
        length = page.databytecounts[0]
    bad.write_bytes(data[:start] + b"\xff" * length + data[start + length :])
    masks, _ = read_ctc(ctc)  # the header is intact
    materialize(masks[:2])
    with pytest.raises(InputFileError, match=r"mask002\.tif"):
        materialize(masks)
    out = tmp_path / "out"
    msg = cli_user_error(capsys, "track", str(ctc), str(out), "--time-interval", "60", "--voxel-size", "1", "0.5",
                         "0.5")  # fmt: skip
    assert "mask002.tif" in msg and "unreadable" in msg
    assert not out.exists() and not list(tmp_path.glob(".out*"))
