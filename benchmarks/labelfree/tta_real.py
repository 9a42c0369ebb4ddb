"""Test-time augmentation on the Allen stacks: does averaging a model over the symmetries it was trained with help?

    SUBCELL_TEST_DATA=../shared/data python benchmarks/labelfree/tta_real.py [MODEL]

The shipped 3D models are pretrained with flips in z, y and x and with the input's sign inverted (``augment:
{flip_z: true, invert_input: true}``), so each of the 16 transforms (flip z / y / x, invert) gives a prediction the
model was trained to make equally well. Each is predicted whole (``predict_image``), transformed back and scored
inside the segmented cells of the stack exactly as ``pretrained_real.py`` scores the zero-shot arm (Pearson r with
the nucleus mask, Dice of its Otsu threshold). Rows: the identity, the existing ``--tta`` (flips in y and x), + z,
the input's sign, and all 16; each transform alone is kept in the JSON (``single``).
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from real_data import ALLEN  # noqa: E402

from subcell import io  # noqa: E402
from subcell.image import Image  # noqa: E402
from subcell.labelfree import PredictConfig, predict_image  # noqa: E402
from subcell.labelfree.evaluate import mask_scores  # noqa: E402
from subcell.labelfree.pretrained import load_model  # noqa: E402
from subcell.metrics.intensity import pearson  # noqa: E402
from subcell.transforms.align import align_to  # noqa: E402

Transform = tuple[int, int, int, int]  # flip z, flip y, flip x, invert (0/1 each)
SETS: dict[str, list[Transform]] = {
    "none": [(0, 0, 0, 0)],
    "yx (--tta)": [(0, y, x, 0) for y in (0, 1) for x in (0, 1)],
    "zyx": [(z, y, x, 0) for z in (0, 1) for y in (0, 1) for x in (0, 1)],
    "invert": [(0, 0, 0, 0), (0, 0, 0, 1)],
    "yx + invert": [(0, y, x, i) for y in (0, 1) for x in (0, 1) for i in (0, 1)],
    "all 16": list(itertools.product((0, 1), repeat=4)),  # type: ignore[arg-type]
}


def _predict(model: object, image: Image, t: Transform) -> np.ndarray:
    axes = tuple(a for a, f in zip((2, 3, 4), t[:3], strict=True) if f)
    arr = image.numpy().astype(np.float32)
    arr = np.flip(arr, axes) if axes else arr
    arr = -arr if t[3] else arr
    moved = Image(np.ascontiguousarray(arr), voxel_size=image.voxel_size, channel_names=image.channel_names)
    pred = predict_image(model, moved, PredictConfig()).numpy()[0, 0]  # type: ignore[arg-type]
    return np.flip(pred, tuple(a - 2 for a in axes)) if axes else pred


def _score(preds: dict[Transform, np.ndarray], ts: list[Transform], nuc: np.ndarray, cells: np.ndarray) -> list[float]:
    """r and Dice inside the cells of the mean of the predictions of transforms ``ts``."""
    p = np.mean([preds[t] for t in ts], axis=0)
    return [pearson(p, nuc.astype(np.float32), mask=cells), mask_scores(p, nuc, cells)["dice_otsu"]]


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else "nucleus"
    data = Path(os.environ.get("SUBCELL_TEST_DATA", "../shared/data")).resolve()
    model = load_model(name)
    out: dict[str, object] = {"model": name}
    for test, (folder, bf, dna, cell, vs) in ALLEN.items():
        t0 = time.perf_counter()
        image = io.read(data / folder / bf, voxel_size=vs)
        ref = predict_image(model, image, PredictConfig())  # the grid the scores are taken on
        preds = {t: _predict(model, image, t) for t in itertools.product((0, 1), repeat=4)}
        nuc = align_to(io.read(data / folder / dna, voxel_size=vs), ref, labels=True)[0, 0] > 0
        cells = align_to(io.read(data / folder / cell, voxel_size=vs), ref, labels=True)[0, 0] > 0

        out[test] = {
            **{k: _score(preds, v, nuc, cells) for k, v in SETS.items()},
            "single": {"".join(map(str, t)): _score(preds, [t], nuc, cells) for t in preds},  # type: ignore[arg-type]
            "wall_s": time.perf_counter() - t0,
        }
        print(test, {k: [round(v, 3) for v in out[test][k]] for k in SETS}, flush=True)  # type: ignore[index]
    out["mean"] = {k: np.mean([out[t][k] for t in ALLEN], axis=0).tolist() for k in SETS}  # type: ignore[index]
    (HERE / "results" / f"tta_allen_{name}.json").write_text(json.dumps(out, indent=1, default=float))
    print(json.dumps(out["mean"], indent=1))


if __name__ == "__main__":
    main()
