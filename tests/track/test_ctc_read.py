"""Reading a CTC folder: frames checked from their metadata, pixels read frame by frame when computed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from subcell.errors import InputFileError
from subcell.image import materialize
from subcell.io.ctc import read_ctc
from tests.conftest import cli_user_error, garble_tiff_pixels


def _folder(tmp_path: Path, frames: list[np.ndarray]) -> Path:
    ctc = tmp_path / "ctc"
    ctc.mkdir()
    (ctc / "res_track.txt").write_text("1 0 2 0\n")
    for t, frame in enumerate(frames):
        tifffile.imwrite(ctc / f"mask{t:03d}.tif", frame, photometric="minisblack", compression="zlib")
    return ctc


def _frames() -> np.ndarray:
    lab = np.zeros((3, 4, 32, 32), np.uint16)
    for t in range(3):
        lab[t, 1:3, 4 + 2 * t : 10 + 2 * t, 6:12] = 1
    return lab


def test_no_pixel_is_read_until_a_frame_is_computed_and_then_only_that_frame(tmp_path: Path) -> None:
    # frames 0 and 2 keep their metadata but cannot be decoded: any read of their pixels fails
    lab = _frames()
    ctc = _folder(tmp_path, list(lab))
    for t in (0, 2):
        garble_tiff_pixels(ctc / f"mask{t:03d}.tif")
    masks, rows = read_ctc(ctc)
    assert masks.shape == (3, 4, 32, 32) and masks.dtype == np.uint16 and list(rows.L) == [1]
    np.testing.assert_array_equal(materialize(masks[1]), lab[1])
    with pytest.raises(
        InputFileError, match=r"mask00[02]\.tif: unreadable"
    ):  # whichever garbled frame Dask reads first
        materialize(masks)


def test_frames_of_mixed_integer_types_stack_as_numpy_would(tmp_path: Path) -> None:
    lab = _frames()
    ctc = _folder(tmp_path, [lab[0].astype(np.uint8), lab[1], lab[2].astype(np.uint8)])
    masks, _ = read_ctc(ctc)
    assert masks.dtype == np.uint16
    np.testing.assert_array_equal(materialize(masks), lab)


def test_a_frame_whose_pixels_cannot_be_read_fails_track_naming_it(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    ctc = _folder(tmp_path, list(_frames()))
    garble_tiff_pixels(ctc / "mask002.tif")
    out = tmp_path / "out"
    msg = cli_user_error(capsys, "track", str(ctc), str(out), "--time-interval", "60", "--voxel-size", "1", "0.5",
                         "0.5")  # fmt: skip
    assert "mask002.tif" in msg and "unreadable" in msg
    assert not out.exists() and not list(tmp_path.glob(".out*"))
