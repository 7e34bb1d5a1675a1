#!/usr/bin/env bash
# Regenerates the fixture the EfficientNet-Lite import is tested against
# (tests/fixtures/efficientnet_lite0.json): installs numpy (PyPI) and the weights (scripts/setup.sh) if
# missing, then runs the independent numpy computation of scripts/reference/efficientnet_lite.py.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
bash scripts/setup.sh
python3 -c "import numpy" 2>/dev/null || python3 -m pip install --quiet numpy
python3 scripts/reference/efficientnet_lite.py "$TESSERA_WEIGHTS/efficientnet-lite0/efficientnet-lite0-57934424.pth" tests/fixtures/efficientnet_lite0.json
