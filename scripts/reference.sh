#!/usr/bin/env bash
# Regenerates the fixtures the pretrained imports are tested against: EfficientNet-Lite0
# (tests/fixtures/efficientnet_lite0.json) and all-MiniLM-L6-v2 (tests/fixtures/minilm.json): installs numpy (PyPI) and the weights (scripts/setup.sh) if
# missing, then runs the independent numpy computations of scripts/reference/{efficientnet_lite,minilm}.py.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
bash scripts/setup.sh
python3 -c "import numpy" 2>/dev/null || python3 -m pip install --quiet numpy
python3 scripts/reference/efficientnet_lite.py "$TESSERA_WEIGHTS/efficientnet-lite0/efficientnet-lite0-57934424.pth" tests/fixtures/efficientnet_lite0.json
python3 scripts/reference/minilm.py "$TESSERA_WEIGHTS/all-minilm-l6-v2" tests/fixtures/minilm.json
