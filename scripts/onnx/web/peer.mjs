// Tessera's npm package vs ONNX Runtime Web on the same weights, in one headless Chromium page
// (run by scripts/bench.sh; not a test: it prints figures). CPU path, one wasm thread each.
//   node scripts/onnx/web/peer.mjs BUNDLE ONNX_ROOT OUT.json [ROUNDS]
// ONNX_ROOT holds BUNDLE/ (scripts/onnx/export.py's output). Per proposal (AR, NAR) and batch
// (1, 8): the engines alternate ROUNDS times with the same seeds; tokens and pixels are compared,
// page-side ms per image, one step, decode alone; then the first images after a fresh page load,
// and each engine's download (raw and gzip -9).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { serve, launch, ROOT } from '../../../tests/browser/helpers.mjs';

const [bundle, onnxRoot, outPath, roundsArg] = process.argv.slice(2);
if (!bundle || !onnxRoot || !outPath) {
  console.error('usage: peer.mjs BUNDLE ONNX_ROOT OUT.json [ROUNDS]');
  process.exit(2);
}
const ROUNDS = Number(roundsArg || 5);
const HERE = path.dirname(fileURLToPath(import.meta.url));
const meta = JSON.parse(fs.readFileSync(path.join(onnxRoot, bundle, 'onnx.json'), 'utf8'));

// One served folder of links: the page, ORT's dist, the package, the bundles, the ONNX graphs.
const www = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-peer-'));
for (const [name, target] of [['peer', HERE], ['ort', path.join(HERE, 'node_modules/onnxruntime-web/dist')], ['tessera', path.join(ROOT, 'web/package')], ['models', path.join(ROOT, 'models')], ['onnx', path.resolve(onnxRoot)]]) {
  fs.symlinkSync(target, path.join(www, name));
}
const server = await serve(www);
const browser = await launch();
const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];

async function freshPage() {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  page.on('pageerror', (e) => console.error(`[pageerror] ${e.message}`));
  await page.goto(`${server.url}peer/index.html`);
  await page.waitForFunction(() => window.peerReady);
  return { ctx, page };
}

/** Same tokens, and pixels within one 8-bit level (RGBA from Tessera, [n, c, s, s] from ORT). */
function compare(t, o, count) {
  const per = meta.grid * meta.grid;
  let identical = 0;
  for (let i = 0; i < count; i++) if (t.tokens[i].every((v, j) => v === o.tokens[i][j]) && t.tokens[i].length === per) identical++;
  const s = meta.image_size;
  const c = meta.channels;
  let worst = 0;
  for (let i = 0; i < count; i++) {
    for (let p = 0; p < s * s; p++) {
      for (let k = 0; k < Math.min(c, 3); k++) {
        const a = t.pixels[(i * s * s + p) * 4 + k];
        const b = o.images[(i * c + k) * s * s + p];
        worst = Math.max(worst, Math.abs(a - b));
      }
    }
  }
  return { identical, worst };
}

const out = { bundle, rounds: ROUNDS, machine: `${os.cpus().length} cores`, rows: [], chromium: browser.version() };
try {
  const { ctx, page } = await freshPage();
  await page.evaluate((b) => window.peer.loadTessera(b, 'cpu'), bundle);
  await page.evaluate((b) => window.peer.loadOrt(b, 1), bundle);
  // Chromium compiles wasm lazily and tiers hot functions up to optimised code in the background:
  // every row of both engines runs twice before anything is timed, so no row is timed on baseline code.
  for (let r = 0; r < 2; r++) {
    for (const proposal of Object.keys(meta.proposals)) {
      for (const count of [1, 8]) {
        const args = { proposal, cls: 0, count, seed: 0, options: meta.proposals[proposal].sampling };
        await page.evaluate((a) => window.peer.tessera(a), args);
        await page.evaluate((a) => window.peer.ort(a), args);
      }
    }
  }
  for (const proposal of Object.keys(meta.proposals)) {
    const options = meta.proposals[proposal].sampling;
    for (const count of [1, 8]) {
      const args = { proposal, cls: 0, count, seed: 0, options };
      const T = [];
      const O = [];
      let identical = 0;
      let worst = 0;
      for (let r = 0; r < ROUNDS; r++) {
        const a = { ...args, cls: r % meta.classes.length, seed: r + 1 };
        const t = await page.evaluate((x) => window.peer.tessera(x), a);
        const o = await page.evaluate((x) => window.peer.ort(x), a);
        const c = compare(t, o, count);
        identical += c.identical;
        worst = Math.max(worst, c.worst);
        T.push(t);
        O.push(o);
      }
      const m = (rs, k) => median(rs.map((r) => r[k]));
      const row = {
        proposal, count, images: ROUNDS * count, identical_token_grids: identical, max_pixel_level_diff: worst,
        tessera_ms_per_image: m(T, 'msPerImage'), ort_ms_per_image: m(O, 'msPerImage'),
        tessera_step_ms: m(T, 'stepMs'), ort_step_ms: m(O, 'stepMs'), ort_engine_ms_per_image: m(O, 'engineMs') / count,
        tessera_decode_ms: m(T, 'decodeMs'), ort_decode_ms: m(O, 'decodeMs'),
      };
      row.ratio_ms_per_image = row.tessera_ms_per_image / row.ort_ms_per_image;
      row.ratio_decode = row.tessera_decode_ms / row.ort_decode_ms;
      row.ratio_step = row.tessera_step_ms / row.ort_step_ms;
      out.rows.push(row);
      console.error(JSON.stringify(row));
    }
  }
  await ctx.close();
  // First 8 AR images after a fresh page load (no cache): load + first generation, each engine
  // alone in its own context, alternating.
  const first = { tessera: [], ort: [] };
  for (let r = 0; r < 3; r++) {
    for (const engine of ['tessera', 'ort']) {
      const { ctx: c2, page: p2 } = await freshPage();
      const ms = await p2.evaluate(async ({ engine, bundle, options }) => {
        const t0 = performance.now();
        if (engine === 'tessera') await window.peer.loadTessera(bundle, 'cpu'); else await window.peer.loadOrt(bundle, 1);
        await window.peer[engine]({ proposal: 'ar', cls: 0, count: 8, seed: 0, options });
        return performance.now() - t0;
      }, { engine, bundle, options: meta.proposals.ar.sampling });
      first[engine].push(ms);
      await c2.close();
    }
  }
  out.first_8_ms = { tessera: median(first.tessera), ort: median(first.ort), ratio: median(first.tessera) / median(first.ort) };
  // What each engine's page downloads besides the model (raw, gzip -9).
  const size = (files) => files.reduce((a, f) => { const b = fs.readFileSync(f); return { raw: a.raw + b.length, gzip: a.gzip + zlib.gzipSync(b, { level: 9 }).length }; }, { raw: 0, gzip: 0 });
  const pkg = path.join(ROOT, 'web/package');
  const js = (d) => fs.readdirSync(d).filter((f) => f.endsWith('.js')).map((f) => path.join(d, f));
  const ortDist = path.join(HERE, 'node_modules/onnxruntime-web/dist');
  // Tessera's CPU path (what these rows ran) fetches the CPU-only engine; WebGPU pages the full one.
  const src = js(path.join(pkg, 'src'));
  const engine = (name) => [path.join(pkg, `dist/${name}_bg.wasm`), path.join(pkg, `dist/${name}.js`), ...src];
  out.engine_download = {
    tessera: size(engine('tessera_wasm_cpu')),
    tessera_full: size(engine('tessera_wasm')),
    ort: size(['ort.wasm.min.mjs', 'ort-wasm-simd-threaded.mjs', 'ort-wasm-simd-threaded.wasm'].map((f) => path.join(ortDist, f))),
  };
  out.engine_download.ratio_gzip = out.engine_download.tessera.gzip / out.engine_download.ort.gzip;
} finally {
  await browser.close();
  server.close();
  fs.rmSync(www, { recursive: true, force: true });
}
fs.writeFileSync(outPath, JSON.stringify(out, null, 1));
console.log(JSON.stringify(out));
