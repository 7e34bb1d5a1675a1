// WebGPU calls per sampling step (run by scripts/bench.sh, not a test): the worker counts every
// compute dispatch, queue submit, buffer write and read-back the engine makes (`Generator.gpuCounters`).
// For each bundle and proposal network: one image, no previews, after a warm-up call (pipelines
// compiled); the decoder's calls, measured alone on the same tokens, are taken off and the rest
// divided by the sampling steps (AR: one per token; NAR: the MaskGIT steps). Prints one JSON object.
import { sitePage } from './helpers.mjs';

const bundles = (process.env.GPU_CALLS_BUNDLES || 'emoji-vqkd,fmnist-vqkd').split(',');
const { page, close } = await sitePage();
let out;
try {
  out = await page.evaluate(async (bundles) => {
    const { loadGenerator } = await import('./tessera/src/index.js');
    const out = {};
    for (const name of bundles) {
      const g = await loadGenerator({ modelUrl: `models/${name}/`, device: 'webgpu' });
      const diff = (a, z) => Object.fromEntries(Object.entries(z).filter(([, v]) => typeof v === 'number').map(([k, v]) => [k, v - a[k]]));
      const measure = async (f) => { const a = await g.gpuCounters(); const r = await f(); return [diff(a, await g.gpuCounters()), r]; };
      const row = { engine: g.info.engine, adapter: g.info.adapter };
      for (const proposal of Object.keys(g.info.proposals)) {
        const steps = proposal === 'ar' ? g.tokensPerImage : g.info.proposals[proposal].steps;
        await g.generate({ proposal, class: 0, count: 1, seed: 1, previewEvery: 0 });
        const [gen, r] = await measure(() => g.generate({ proposal, class: 0, count: 1, seed: 1, previewEvery: 0 }));
        const [dec] = await measure(() => g.decode(r.tokens));
        const perStep = Object.fromEntries(Object.entries(gen).map(([k, v]) => [k, (v - (dec[k] ?? 0)) / steps]));
        row[proposal] = { steps, generate: gen, decode: dec, per_step: perStep };
      }
      out[name] = row;
      g.dispose();
    }
    return out;
  }, bundles);
} finally {
  await close();
}
console.log(JSON.stringify(out));
