"""docs/bench-onnx.md from the peer's JSON (docs/onnx/check.json, native.json, browser.json), with
the issue's targets beside each ratio. Run by scripts/bench.sh; any file may be missing (a part that
did not run is said so, not invented)."""
import json
import os
import sys

docs = sys.argv[1] if len(sys.argv) > 1 else 'docs'
d = os.path.join(docs, 'onnx')


def load(name):
    p = os.path.join(d, name)
    return json.load(open(p)) if os.path.exists(p) else None


check, native, browser = load('check.json'), load('native.json'), load('browser.json')
L = ['# Tessera vs ONNX Runtime on the same weights', '',
     'Written by `scripts/bench.sh` (`scripts/onnx/`): the bundle is exported to ONNX (`scripts/onnx/export.py`, f16 weights '
     'behind a Cast, as in the bundle), both engines sample with the same sampler and seeds (Tessera\'s, ported operation for '
     'operation to Python and JavaScript), and they are timed alternately in the same run. Ratios are Tessera / ONNX Runtime: '
     'below 1 Tessera is faster.', '']
ok = lambda v, target: '' if target is None else (' (target <= %.1f: %s)' % (target, 'met' if v <= target else 'not met'))

L += ['## Same tokens, same pixels', '']
if check:
    n = sum(c['images'] for c in check['cases'])
    same = sum(c['identical_token_grids'] for c in check['cases'])
    worst = max(c['max_abs_pixel_diff'] for c in check['cases'])
    L += [f"Native (`tessera-train generate` vs onnxruntime {check['onnxruntime']}, {check['bundle']}): {same}/{n} token grids identical "
          f"(AR and NAR, 3 seeds x 4 images each); decoded pixels of the same tokens within {worst:.1e} (f32, before 8-bit rounding).", '']
else:
    L += ['Not run.', '']
if browser:
    n = sum(r['images'] for r in browser['rows'])
    same = sum(r['identical_token_grids'] for r in browser['rows'])
    L += [f"Browser (Tessera's npm package vs ONNX Runtime Web, one page): {same}/{n} token grids identical; pixels within "
          f"{max(r['max_pixel_level_diff'] for r in browser['rows'])} 8-bit level(s).", '']

if browser:
    L += ['## Browser, CPU (wasm, one thread each)', '', f"{browser['chromium'] and 'Chromium ' + browser['chromium']}, {browser['machine']}, "
          f"{browser['rounds']} alternated rounds per row (median). Tessera = its npm package as a web developer calls it (worker, messages, "
          "progress events); ORT = ONNX Runtime Web in a worker with the ported sampler in JavaScript. A step: Tessera's is the gap between two "
          "progress events seen by the page (everything included), ORT's is its `session.run` alone (its best case).", '',
          '| proposal | batch | Tessera ms/image | ORT-web ms/image | ratio | step ms (T / ORT) | decode ms (T / ORT) | decode ratio |', '|---|---|---|---|---|---|---|---|']
    for r in browser['rows']:
        L.append(f"| {r['proposal']} | {r['count']} | {r['tessera_ms_per_image']:.1f} | {r['ort_ms_per_image']:.1f} | {r['ratio_ms_per_image']:.2f}{ok(r['ratio_ms_per_image'], 0.8)} | "
                 f"{r['tessera_step_ms']:.2f} / {r['ort_step_ms']:.2f} | {r['tessera_decode_ms']:.1f} / {r['ort_decode_ms']:.1f} | {r['ratio_decode']:.2f}{ok(r['ratio_decode'], 1.0)} |")
    f = browser.get('first_8_ms')
    if f:
        L += ['', f"First 8 AR images after a fresh page load (download, init, generation; median of 3): Tessera {f['tessera'] / 1000:.2f} s, "
              f"ORT-web {f['ort'] / 1000:.2f} s (ratio {f['ratio']:.2f}; target: Tessera <= 1.5 s, {'met' if f['tessera'] <= 1500 else 'not met'})."]
    e = browser.get('engine_download')
    if e:
        mb = lambda b: f'{b / 1e6:.2f} MB'
        full = e.get('tessera_full')
        L += ['', f"Engine download besides the model: Tessera's CPU engine (what these rows ran: `tessera_wasm_cpu` wasm + JS) {mb(e['tessera']['raw'])} raw, {mb(e['tessera']['gzip'])} gzip -9; "
              + (f"its full engine (WebGPU + CPU, fetched only by WebGPU pages) {mb(full['raw'])} raw, {mb(full['gzip'])} gzip -9; " if full else '') +
              f"ORT-web (wasm build: `ort.wasm.min.mjs` + its wasm) {mb(e['ort']['raw'])} raw, {mb(e['ort']['gzip'])} gzip -9 (ratio {e['ratio_gzip']:.2f}; "
              f"target Tessera <= 1.5 MB gzip: {'met' if e['tessera']['gzip'] <= 1.5e6 else 'not met'})."]
    L.append('')
else:
    L += ['## Browser', '', 'Not run.', '']

if native:
    L += ['## Native, CPU (one thread each)', '', f"onnxruntime {native['onnxruntime']} (Python; its figures count `session.run` only, the sampler "
          f"apart) vs `tessera-train bench` (burn flex, `RAYON_NUM_THREADS=1`; everything counted), {native['machine']}, alternated rounds (median).", '',
          '| proposal | batch | Tessera ms/image | ORT ms/image | ratio | step ms (T / ORT) | step ratio | decode ms (T / ORT) | decode ratio | load s (T / ORT) |', '|---|---|---|---|---|---|---|---|---|---|']
    for r in native['rows']:
        L.append(f"| {r['proposal']} | {r['count']} | {r['tessera_ms_per_image']:.2f} | {r['ort_ms_per_image']:.2f} | {r['ratio_ms_per_image']:.2f}{ok(r['ratio_ms_per_image'], 1.0)} | "
                 f"{r['tessera_step_ms']:.3f} / {r['ort_step_ms']:.3f} | {r['ratio_step_ms']:.2f} | {r['tessera_decode_ms']:.2f} / {r['ort_decode_ms']:.2f} | {r['ratio_decode_ms']:.2f} | "
                 f"{r['tessera_load_s']:.3f} / {r['ort_load_s']:.3f} |")
    L += ['', 'ONNX files: ' + ', '.join(f'{k} {v / 1e6:.2f} MB' for k, v in native['onnx_bytes'].items()) + '.', '']
else:
    L += ['## Native', '', 'Not run.', '']
open(os.path.join(docs, 'bench-onnx.md'), 'w').write('\n'.join(L) + '\n')
print('\n'.join(L))
