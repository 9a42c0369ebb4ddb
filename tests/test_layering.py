"""The classical path (io, transforms, synth, CLI) never imports torch."""

from __future__ import annotations

import subprocess
import sys


def test_classical_modules_do_not_import_torch(tmp_path) -> None:  # type: ignore[no-untyped-def]
    code = (
        "import sys, numpy as np\n"
        "import subcell, subcell.io, subcell.transforms, subcell.synth, subcell.cli.main\n"
        "import subcell.segment, subcell.segment.chunked, subcell.metrics, subcell.cells, subcell.cells.placement\n"
        "from subcell import io, synth\n"
        "field = synth.synth_field(shape=(8, 96, 96), seed=1)\n"
        f"io.read(synth.write_field(field, r'{tmp_path}/t.ome.zarr')).numpy()\n"
        "from subcell.segment import load_workflow, segment_image\n"
        "segment_image(field.image, load_workflow('nucleoli'))\n"
        "print('torch' in sys.modules)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "False"
