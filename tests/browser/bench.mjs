// Browser benchmark (run by scripts/bench.sh, not a test): time from page load to the first image on
// each device, and warm time per image for a batch. Prints one JSON object.
import path from 'node:path';
import { serve, launch, newPage, ROOT } from './helpers.mjs';

const count = Number(process.env.BENCH_COUNT || 8);
const server = await serve(path.join(ROOT, 'web/site'));
const browser = await launch();
const out = { count };
try {
  for (const device of ['cpu', 'webgpu']) {
    const ctx = await browser.newContext(); // fresh cache: includes the download
    const page = await ctx.newPage();
    const t0 = Date.now();
    await page.goto(`${server.url}?device=${device}`); // autostart: generates the first grid on load
    await page.waitForFunction(() => window.tessera?.firstImageMs !== null || window.tessera?.lastError, null, { timeout: 20 * 60 * 1000 });
    const first = await page.evaluate(() => ({ firstImageMs: window.tessera.firstImageMs, err: window.tessera.lastError, info: window.tessera.info, r: window.tessera.lastResult }));
    if (first.err) throw new Error(`${device}: ${first.err}`);
    // Warm runs without previews: the same work as the native benchmark (SwiftShader: one run).
    const warm = [];
    for (let i = 0; i < (device === 'cpu' ? 3 : 1); i++) {
      warm.push(await page.evaluate(async (count) => {
        await window.tessera.generate({ class: 7, count, seed: 100, temperature: 1, topK: 100, topP: 0.92, guidance: 1.75, previewEvery: 0 });
        return window.tessera.lastResult.msPerImage;
      }, count));
    }
    warm.sort((a, b) => a - b);
    // Every shipped tokenizer x {AR, NAR}: warm ms per image (one warm-up call first). SwiftShader
    // costs seconds per sampling step, so WebGPU times a batch of 2 (still one batched call).
    const zoo = await page.evaluate(async ({ count, device }) => {
      const { loadGenerator } = await import('./tessera/src/index.js');
      const out = {};
      for (const b of window.tessera.index.bundles) {
        const g = await loadGenerator({ modelUrl: 'models/' + b.path, device });
        // text-to-image bundles take a prompt (their first example), the others a class
        const cond = g.info.text ? { prompt: g.info.text.examples[0] ?? '' } : { class: 7 % g.info.classes.length };
        for (const proposal of Object.keys(g.info.proposals)) {
          await g.generate({ proposal, ...cond, count: 1, seed: 1, previewEvery: 0 });
          const r = await g.generate({ proposal, ...cond, count, seed: 100, previewEvery: 0 });
          out[`${b.name}/${proposal}`] = r.msPerImage;
        }
        g.dispose();
      }
      return out;
    }, { count: device === 'cpu' ? count : 2, device });
    out[device] = {
      adapter: first.info.adapter,
      first_image_ms_after_load: first.firstImageMs,
      first_grid_images: first.r.tokens.length,
      wall_to_first_image_ms: Date.now() - t0,
      ms_per_image_warm_median: warm[Math.floor(warm.length / 2)],
      first_grid_ms_per_image_with_previews: first.r.msPerImage,
      images_per_s: 1000 / warm[Math.floor(warm.length / 2)],
      ms_per_image_by_tokenizer_and_proposal: zoo,
    };
    await ctx.close();
  }
} finally {
  await browser.close();
  server.close();
}
console.log(JSON.stringify(out));
