# Sourced by every script: shared paths. The build directory lives outside the clone so that warm runs
# (and CI on a machine that built before) reuse compiled burn instead of spending 15+ minutes on it.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tessera-target}"
export PATH="$HOME/.cargo/bin:$PATH"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ROOT
