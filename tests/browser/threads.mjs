// The threaded CPU engine against the single-threaded one (run by scripts/bench.sh, not a test): the
// site served cross-origin isolated, one bundle, the same requests on 1 thread and on every core
// (the browser's navigator.hardwareConcurrency, at most 8), alternating, after a warm-up of each.
// Prints one JSON object: ms per image (median of THREADS_ROUNDS rounds) and the ratio per row.
import { sitePage } from './helpers.mjs';

const bundle = process.env.THREADS_BUNDLE || 'fmnist-vqkd';
const rounds = Number(process.env.THREADS_ROUNDS || 3);
const { page, close } = await sitePage({ isolated: true });
let out;
try {
  out = await page.evaluate(async ({ bundle, rounds }) => {
    const { loadGenerator } = await import('./tessera/src/index.js');
    const cores = Math.min(navigator.hardwareConcurrency || 1, 8);
    const engines = {};
    for (const threads of [1, cores]) engines[threads] = await loadGenerator({ modelUrl: `models/${bundle}/`, device: 'cpu', threads });
    const rows = {
      'AR b1': (g) => g.generate({ class: 0, count: 1, seed: 1, previewEvery: 0 }),
      'AR b8': (g) => g.generate({ class: 0, count: 8, seed: 1, previewEvery: 0 }),
      'NAR b1': (g) => g.generate({ proposal: 'nar', class: 0, count: 1, seed: 1, previewEvery: 0 }),
      'NAR b8': (g) => g.generate({ proposal: 'nar', class: 0, count: 8, seed: 1, previewEvery: 0 }),
    };
    const tokens8 = (await engines[1].generate({ class: 0, count: 8, seed: 1, previewEvery: 0 })).tokens;
    rows['decode b8'] = (g) => g.decode(tokens8);
    const per = { 'AR b1': 1, 'AR b8': 8, 'NAR b1': 1, 'NAR b8': 8, 'decode b8': 8 };
    const times = {};
    for (const [row, f] of Object.entries(rows)) {
      for (const t of Object.keys(engines)) await f(engines[t]), await f(engines[t]); // warm-up (tier-up)
      times[row] = Object.fromEntries(Object.keys(engines).map((t) => [t, []]));
      for (let r = 0; r < rounds; r++) {
        for (const t of Object.keys(engines)) {
          const t0 = performance.now();
          await f(engines[t]);
          times[row][t].push((performance.now() - t0) / per[row]);
        }
      }
    }
    const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
    const result = { bundle, cores, crossOriginIsolated, engines: Object.fromEntries(Object.entries(engines).map(([t, g]) => [t, g.info.engine])), ms_per_image: {} };
    for (const [row, byT] of Object.entries(times)) {
      const m = Object.fromEntries(Object.entries(byT).map(([t, v]) => [t, median(v)]));
      result.ms_per_image[row] = { ...m, speedup: m[1] / m[cores] };
    }
    for (const g of Object.values(engines)) g.dispose();
    return result;
  }, { bundle, rounds });
} finally {
  await close();
}
console.log(JSON.stringify(out));
