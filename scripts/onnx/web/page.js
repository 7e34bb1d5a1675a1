// Both engines in one page, each in its own module worker: Tessera's npm package (as a web developer
// uses it) and ONNX Runtime Web over the same weights (ort-worker.js). `window.peer` is driven by
// peer.mjs; every call returns page-side wall times.
import { loadGenerator } from '../tessera/src/index.js';

let gen = null;
let ortWorker = null;
let nextId = 1;
const pending = new Map();

function ortCall(msg) {
  return new Promise((resolve, reject) => {
    const id = nextId++;
    pending.set(id, { resolve, reject });
    ortWorker.postMessage({ ...msg, id });
  });
}

window.peer = {
  async loadTessera(bundle, device = 'cpu') {
    const t0 = performance.now();
    gen = await loadGenerator({ modelUrl: `/models/${bundle}/`, device, cache: false });
    return { loadMs: performance.now() - t0, device: gen.info.device };
  },
  async loadOrt(bundle, threads = 1) {
    const t0 = performance.now();
    ortWorker = new Worker(new URL('./ort-worker.js', import.meta.url), { type: 'module' });
    ortWorker.onmessage = ({ data }) => {
      const p = pending.get(data.id);
      pending.delete(data.id);
      if (data.error) p.reject(new Error(data.error)); else p.resolve(data.value);
    };
    const r = await ortCall({ type: 'load', base: `/onnx/${bundle}/`, threads });
    return { ...r, loadMs: performance.now() - t0 };
  },
  /** Tessera: one generate() call, steps timed by the page between progress events. */
  async tessera({ proposal, cls, count, seed }) {
    const marks = [];
    const t0 = performance.now();
    const r = await gen.generate({ proposal, class: cls, count, seed, previewEvery: 0, onStep: () => marks.push(performance.now()) });
    const ms = performance.now() - t0;
    const gaps = marks.slice(1).map((m, i) => m - marks[i]).sort((a, b) => a - b);
    const t1 = performance.now();
    await gen.decode(r.tokens);
    const decodeMs = performance.now() - t1;
    return { tokens: r.tokens, pixels: Array.from(r.pixels), ms, msPerImage: ms / count, stepMs: gaps[Math.floor(gaps.length / 2)], steps: marks.length, decodeMs };
  },
  async ort({ proposal, cls, count, seed, options }) {
    const t0 = performance.now();
    const r = await ortCall({ type: 'generate', proposal, cls, count, options: { ...options, seed } });
    const ms = performance.now() - t0;
    const t1 = performance.now();
    await ortCall({ type: 'decode', tokens: r.tokens.flat(), count });
    const decodeMs = performance.now() - t1;
    // the package's RGBA quantisation (sampling/image.rs to_rgba), for comparing pixels
    const q = (v) => Math.round((Math.min(1, Math.max(-1, v)) + 1) * 127.5);
    return { tokens: r.tokens, images: Array.from(r.images, q), ms, msPerImage: ms / count, engineMs: r.engineMs, stepMs: r.stepMs, steps: r.steps, decodeMs };
  },
};
window.peerReady = true;
