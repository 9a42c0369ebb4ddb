"""ONNX Runtime (CPU execution provider) against eager PyTorch for one inference tile (issue 17).

Both networks as prediction runs them (eval, batch norm folded: ``UNet.fused``), fp32, 2 threads, one tile:
the ``fnet`` preset (random weights) and the shipped default network (``dna``). The network is exported once per
tile shape (``torch.onnx.export(dynamo=True)``), run with all graph optimisations, and compared with eager
on the same input: time (best of 3 after a warm-up), useful GFLOP/s and the largest output difference.

ONNX Runtime is not a dependency of subcell; install it beside the environment to run this:

    pip install --target /tmp/ortpkgs -c constraints.txt onnxruntime onnx onnxscript
    PYTHONPATH=/tmp/ortpkgs:src python benchmarks/labelfree/bench_onnxruntime.py 32x128x128 64x176x224

Writes ``results/onnxruntime.json``.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import _speed_child  # noqa: E402
from _flops import conv_flops  # noqa: E402


def compare(net: torch.nn.Module, shape: tuple[int, ...], work: Path, name: str) -> dict[str, Any]:
    import onnxruntime as ort

    x = torch.randn(1, 1, *shape, generator=torch.Generator().manual_seed(2))
    flops = conv_flops(net, x)
    with torch.inference_mode():
        eager_s = _speed_child._best(lambda: net(x), 3)
        ref = net(x).numpy()
    path = work / f"{name}.onnx"
    t0 = time.perf_counter()
    torch.onnx.export(net, (x,), str(path), dynamo=True, external_data=False)
    export_s = time.perf_counter() - t0
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    feed = {sess.get_inputs()[0].name: x.numpy()}
    ort_s = _speed_child._best(lambda: sess.run(None, feed), 3)
    out = sess.run(None, feed)[0]
    return {"network": name, "tile": list(shape), "gflop": flops / 1e9, "eager_s": eager_s, "ort_s": ort_s,
            "eager_gflops": flops / eager_s / 1e9, "ort_gflops": flops / ort_s / 1e9,
            "ort_speedup": eager_s / ort_s, "max_abs_diff": float(np.abs(out - ref).max()),
            "max_abs_ref": float(np.abs(ref).max()), "export_s": export_s}  # fmt: skip


def main() -> None:
    import onnxruntime as ort

    from subcell.labelfree.pretrained import load_model

    shapes = [tuple(int(s) for s in a.split("x")) for a in sys.argv[1:]] or [(32, 128, 128)]
    torch.set_num_threads(2)
    _speed_child._tune()  # the allocator setting prediction uses
    a, b = torch.randn(4096, 4096), torch.randn(4096, 4096)
    sgemm = 2 * 4096**3 / _speed_child._best(lambda: a @ b, 3) / 1e9
    nets = {"fnet": _speed_child._network("fnet", None).eval().fused(),
            "default_dna": load_model("dna").network.eval().fused()}  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for shape in shapes:
            for name, net in nets.items():
                row = compare(net, shape, Path(tmp), name)
                rows.append(row)
                print(json.dumps(row), flush=True)
    out = {"onnxruntime": ort.__version__, "torch": torch.__version__, "sgemm_gflops": sgemm, "rows": rows}
    (HERE / "results" / "onnxruntime.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
