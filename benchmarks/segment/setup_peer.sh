#!/usr/bin/env bash
# Install the peer (aicssegmentation, Allen Cell & Structure Segmenter) in its own virtual environment.
# It is never a dependency of subcell: it is only imported by benchmarks/segment/peer_*.py run with that venv.
set -euo pipefail
cd "$(dirname "$0")"
VENV=${PEER_VENV:-../../.peer-venv/aicssegmentation}
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
# numcodecs<0.16 keeps its workflows importable; the torch pin avoids a multi-GB CUDA build
"$VENV/bin/python" -m pip install --quiet -c ../../constraints.txt aicssegmentation "numcodecs<0.16"
"$VENV/bin/python" -c "import aicssegmentation; print('aicssegmentation', aicssegmentation.__version__ if hasattr(aicssegmentation, '__version__') else 'installed')"
