#!/usr/bin/env bash
# Speed and size figures -> docs/bench.json + docs/bench.md. Ratios are taken between peers
# measured in this same run (the machine's load changes absolute figures).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
bash scripts/setup.sh
# burn wgpu natively needs a Vulkan driver; on a machine without a GPU, Mesa's lavapipe (CPU).
dpkg -s mesa-vulkan-drivers >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mesa-vulkan-drivers libvulkan1 >/dev/null; }
bash scripts/build-web.sh
cargo build --release -p tessera-train
BIN="$CARGO_TARGET_DIR/release/tessera-train"
B=models/fmnist-vqkd
COUNT="${BENCH_COUNT:-8}"
mkdir -p docs
flex=$("$BIN" --device flex bench --bundle $B --count "$COUNT" --runs 3)
flex_nar=$("$BIN" --device flex bench --bundle $B --proposal nar --count "$COUNT" --runs 3)
wgpu=$("$BIN" --device wgpu bench --bundle $B --count "$COUNT" --runs 3 2>/dev/null || echo '{"error":"wgpu bench failed"}')
browser=$(cd tests/browser && BENCH_COUNT="$COUNT" node bench.mjs)
gpu_calls=$(cd tests/browser && node gpu-calls.mjs)
threads=$(cd tests/browser && node threads.mjs | tail -n 1)   # (the pool helper logs a warning first)
wasm=web/package/dist/tessera_wasm_bg.wasm
wasm_cpu=web/package/dist/tessera_wasm_cpu_bg.wasm
wasm_mt=web/package/dist/tessera_wasm_cpu_mt_bg.wasm
# ONNX Runtime on the same weights, natively and in the browser: docs/onnx/*.json -> docs/bench-onnx.md
bash scripts/onnx/setup.sh --web
PY="$TESSERA_ONNX_VENV/bin/python"
onnx_out=$(mktemp -d)
mkdir -p docs/onnx
"$PY" scripts/onnx/export.py "$B" "$onnx_out/$(basename $B)"
"$PY" scripts/onnx/peer.py check "$B" "$onnx_out/$(basename $B)" "$BIN" docs/onnx/check.json
"$PY" scripts/onnx/peer.py bench "$B" "$onnx_out/$(basename $B)" "$BIN" docs/onnx/native.json --threads 1 --rounds "${BENCH_ROUNDS:-3}"
node scripts/onnx/web/peer.mjs "$(basename $B)" "$onnx_out" docs/onnx/browser.json "${BENCH_ROUNDS:-3}"
"$PY" scripts/onnx/report.py docs >/dev/null
rm -rf "$onnx_out"
python3 - "$flex" "$wgpu" "$browser" "$wasm" "$B" "$flex_nar" "$wasm_cpu" "$gpu_calls" "$threads" "$wasm_mt" <<'PY'
import gzip, json, os, sys, platform, datetime
flex, wgpu, browser = (json.loads(a) for a in sys.argv[1:4])
wasm, bundle = sys.argv[4], sys.argv[5]
flex_nar = json.loads(sys.argv[6])
raw = open(wasm, 'rb').read()
raw_cpu = open(sys.argv[7], 'rb').read()
gpu_calls = json.loads(sys.argv[8])
threads = json.loads(sys.argv[9])
raw_mt = open(sys.argv[10], 'rb').read()
model_files = {f: os.path.getsize(os.path.join(bundle, f)) for f in sorted(os.listdir(bundle)) if f.endswith('.safetensors')}
shipped = sum(model_files.values())
# Every shipped bundle's files, and models/ as a whole (what a clone carries).
bundles = {}
for d in sorted(os.listdir('models')):
    p = os.path.join('models', d, 'manifest.json')
    if os.path.exists(p):
        m = json.load(open(p))
        bundles[d] = {role: f['bytes'] for role, f in m['files'].items()}
models_total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk('models') for f in fs)
r = {
  'date': datetime.datetime.utcnow().strftime('%Y-%m-%dT%H:%M:%SZ'), 'machine': f'{os.cpu_count()} cores, {platform.machine()}, no GPU',
  'native_flex': flex, 'native_flex_nar': flex_nar, 'webgpu_calls': gpu_calls, 'native_wgpu': wgpu, 'browser': browser,
  'wasm_bytes': len(raw), 'wasm_gzip_bytes': len(gzip.compress(raw, 9)),
  'wasm_cpu_bytes': len(raw_cpu), 'wasm_cpu_gzip_bytes': len(gzip.compress(raw_cpu, 9)),
  'wasm_cpu_mt_bytes': len(raw_mt), 'wasm_cpu_mt_gzip_bytes': len(gzip.compress(raw_mt, 9)), 'browser_threads': threads,
  'model_files_bytes': model_files, 'browser_download_bytes': shipped,
  'bundles_bytes': bundles, 'models_dir_bytes': models_total,
}
r['ratios'] = {
  'native_flex_over_wgpu_images_per_s': flex['images_per_s'] / wgpu['images_per_s'] if 'images_per_s' in wgpu else None,
  'browser_cpu_ms_per_image_over_native_flex': browser['cpu']['ms_per_image_warm_median'] / flex['ms_per_image'],
  'browser_webgpu_ms_per_image_over_browser_cpu': browser['webgpu']['ms_per_image_warm_median'] / browser['cpu']['ms_per_image_warm_median'],
  'native_flex_ar_ms_per_image_over_nar': flex['ms_per_image'] / flex_nar['ms_per_image'],
}
json.dump(r, open('docs/bench.json', 'w'), indent=2)
mb = lambda b: f'{b / 1e6:.2f} MB'
lines = [
  '# Benchmarks', '', f"Measured {r['date']} on {r['machine']} by `scripts/bench.sh` ({flex['count']} images per call; median of warm runs).", '',
  '| what | figure |', '|---|---|',
  f"| native flex (CPU), AR | {flex['images_per_s']:.1f} images/s ({flex['ms_per_image']:.1f} ms/image) |",
  f"| native flex (CPU), NAR ({flex_nar.get('steps', 10)} steps) | {flex_nar['images_per_s']:.1f} images/s ({flex_nar['ms_per_image']:.1f} ms/image) |",
  f"| native wgpu | {wgpu['images_per_s']:.2f} images/s ({wgpu['ms_per_image']:.1f} ms/image) |" if 'images_per_s' in wgpu else f"| native wgpu | {wgpu.get('error')} |",
  f"| browser CPU (wasm simd128) | {browser['cpu']['images_per_s']:.1f} images/s ({browser['cpu']['ms_per_image_warm_median']:.1f} ms/image) |",
  f"| browser WebGPU ({browser['webgpu']['adapter']}) | {browser['webgpu']['images_per_s']:.2f} images/s ({browser['webgpu']['ms_per_image_warm_median']:.1f} ms/image) |",
  f"| page load to first image, CPU | {browser['cpu']['first_image_ms_after_load'] / 1000:.2f} s (a grid of {browser['cpu']['first_grid_images']}) |",
  f"| page load to first image, WebGPU | {browser['webgpu']['first_image_ms_after_load'] / 1000:.2f} s (a grid of {browser['webgpu']['first_grid_images']}) |",
  f"| wasm module, full engine (WebGPU + CPU) | {mb(r['wasm_bytes'])} raw, {mb(r['wasm_gzip_bytes'])} gzip -9 |",
  f"| wasm module, CPU-only engine (`device: 'cpu'`, or no WebGPU adapter) | {mb(r['wasm_cpu_bytes'])} raw, {mb(r['wasm_cpu_gzip_bytes'])} gzip -9 |",
  f"| wasm module, threaded CPU engine (cross-origin isolated pages) | {mb(r['wasm_cpu_mt_bytes'])} raw, {mb(r['wasm_cpu_mt_gzip_bytes'])} gzip -9 |",
  f"| model download (tokenizer + proposal) | {mb(shipped)} |",
  '', '## Browser ms per image: every shipped tokenizer x proposal network (warm, same run)', '',
  '| bundle/proposal | CPU | WebGPU |', '|---|---|---|',
  *(f"| {k} | {v:.1f} | {browser['webgpu']['ms_per_image_by_tokenizer_and_proposal'].get(k, float('nan')):.1f} |" for k, v in browser['cpu']['ms_per_image_by_tokenizer_and_proposal'].items()),
  '', '| bundle | AR / NAR ms per image, CPU | AR / NAR, WebGPU |', '|---|---|---|',
  *(f"| {n} | {z['cpu'][n + '/ar'] / z['cpu'][n + '/nar']:.2f} | {z['webgpu'][n + '/ar'] / z['webgpu'][n + '/nar']:.2f} |"
    for z in [{d: browser[d]['ms_per_image_by_tokenizer_and_proposal'] for d in ('cpu', 'webgpu')}]
    for n in sorted({k.rsplit('/', 1)[0] for k in z['cpu']}) if n + '/nar' in z['cpu'] and n + '/ar' in z['cpu']),
  '', f"WebGPU rows time a batch of 2, CPU rows a batch of {browser['count']} (SwiftShader costs seconds per step).", '',
  f"## Browser CPU on {threads['cores']} threads (threaded engine) vs 1 ({threads['bundle']}, ms per image, same run)", '',
  f"| row | 1 thread | {threads['cores']} threads | speed-up |", '|---|---|---|---|',
  *(f"| {k} | {v['1']:.1f} | {v[str(threads['cores'])]:.1f} | {v['speedup']:.2f}x |" for k, v in threads['ms_per_image'].items()),
  '',
  '## WebGPU calls per sampling step', '',
  'Counted by the worker (`Generator.gpuCounters()`: it wraps the WebGPU methods the engine calls), one image, no previews, '
  'after a warm-up call (pipelines compiled); the decoder\'s calls, measured alone, are taken off. AR: per token; NAR: per MaskGIT step '
  '(both with classifier-free guidance, conditional and unconditional rows in one batch).', '',
  '| bundle | proposal | steps | dispatches / step | submits / step | read-backs / step | buffer writes / step | decode: dispatches, read-backs |', '|---|---|---|---|---|---|---|---|',
  *(f"| {b} | {p} | {c['steps']} | {c['per_step']['dispatches']:.1f} | {c['per_step']['submits']:.1f} | {c['per_step']['readbacks']:.2f} | {c['per_step']['bufferWrites']:.1f} | {c['decode']['dispatches']}, {c['decode']['readbacks']} |"
    for b, row in gpu_calls.items() for p, c in row.items() if isinstance(c, dict)),
  '',
  '## Sizes', '', '| bundle | tokenizer | ar | nar | browser download (tokenizer + ar + nar) |', '|---|---|---|---|---|',
  *(f"| {k} | {mb(v.get('tokenizer', 0))} | {mb(v.get('ar', 0))} | {mb(v.get('nar', 0))} | {mb(sum(v.values()))} |" for k, v in bundles.items()),
  '', f"`models/` in total (bundles, cards, sample grids, the evaluator): {mb(models_total)}.",
  '', '## Ratios (same run)', '',
  *(f"- {k}: {v:.2f}" for k, v in r['ratios'].items() if v is not None),
  '', 'Against ONNX Runtime (native and Web) on the same weights, same tokens: `docs/bench-onnx.md`; where the time goes: `docs/perf.md`.',
  '', 'WebGPU here is Chromium\'s SwiftShader (a CPU emulation of a GPU): it proves the WebGPU path correct, not GPU speed.',
]
open('docs/bench.md', 'w').write('\n'.join(lines) + '\n')
print('\n'.join(lines))
PY
