// End to end through the static site in headless Chromium: WebGPU and forced CPU, class
// conditioning, seed determinism across devices and against native, error recovery, every shipped
// tokenizer x {AR, NAR} on both devices, NAR step-by-step unmasking, inpainting, reconstruction of an
// uploaded image by every tokenizer, the results page.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { serve, launch, newPage, ROOT, OUT } from './helpers.mjs';

const TIMEOUT = 15 * 60 * 1000;
let server, browser;
const results = {};

before(async () => {
  server = await serve(path.join(ROOT, 'web/site'));
  browser = await launch();
});
after(async () => {
  fs.writeFileSync(path.join(OUT, 'site-results.json'), JSON.stringify(results, null, 2));
  await browser?.close();
  server?.close();
});

async function openSite(device) {
  const page = await newPage(browser);
  await page.goto(`${server.url}?device=${device}&autostart=0`);
  await page.waitForFunction(() => window.tessera?.ready || window.tessera?.lastError, null, { timeout: TIMEOUT, polling: 200 });
  const err = await page.evaluate(() => window.tessera.lastError);
  assert.equal(err, null, `model failed to load on ${device}: ${err}`);
  return page;
}

/** Generates through the page's own code path; returns tokens and per-image pixel statistics. */
async function generate(page, opts) {
  return page.evaluate(async (opts) => {
    const before = window.tessera.runs;
    await window.tessera.generate(opts);
    if (window.tessera.runs === before) throw new Error(window.tessera.lastError || 'generation did not run');
    const canvases = [...document.querySelectorAll('#grid canvas')];
    const stats = canvases.map((c) => {
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let sum = 0, sq = 0, n = d.length / 4;
      for (let i = 0; i < d.length; i += 4) { sum += d[i]; sq += d[i] * d[i]; }
      const mean = sum / n;
      return { mean, std: Math.sqrt(sq / n - mean * mean) };
    });
    // the batch's average image (grey channel), to compare classes by shape
    const avg = new Array(32 * 32).fill(0);
    for (const c of canvases) {
      const d = c.getContext('2d').getImageData(0, 0, 32, 32).data;
      for (let i = 0; i < 32 * 32; i++) avg[i] += d[i * 4] / canvases.length;
    }
    return { ...window.tessera.lastResult, stats, avg, info: window.tessera.info };
  }, opts);
}

const base = { count: 4, temperature: 1, topK: 100, topP: 0.92, guidance: 1.75 };
const sameTokens = (a, b) => { let same = 0, n = 0; a.forEach((row, i) => row.forEach((t, j) => { n++; if (t === b[i][j]) same++; })); return same / n; };

// WebGPU here is SwiftShader (a CPU emulation): every sampling step costs seconds, so the WebGPU
// run does the minimum that proves each property; the CPU run also checks repeatability in-page.
for (const device of ['webgpu', 'cpu']) {
  test(`site generates on ${device}`, { timeout: TIMEOUT }, async () => {
    const page = await openSite(device);
    const info = await page.evaluate(() => window.tessera.info);
    assert.equal(info.device, device, `asked for ${device}, got ${info.device} (${info.fallbackReason ?? ''})`);
    const sneaker = await generate(page, { ...base, class: 7, seed: 123 });
    for (const s of sneaker.stats) assert.ok(s.std > 10, `blank image: ${JSON.stringify(s)}`);
    results[device] = { tokens: sneaker.tokens, msPerImage: sneaker.msPerImage, adapter: info.adapter };
    await page.screenshot({ path: path.join(OUT, `site-${device}.png`), fullPage: true });

    // A bad option is rejected with a message, and the next call succeeds.
    const bad = await page.evaluate(async () => {
      await window.tessera.generate({ class: 7, count: 2, seed: 1, temperature: -1, topK: 100, topP: 0.9, guidance: 1 });
      return window.tessera.lastError;
    });
    assert.match(bad, /temperature/);
    const trouser = await generate(page, { ...base, class: 1, seed: 123, count: device === 'cpu' ? 4 : 1 });
    assert.equal(trouser.tokens.length, device === 'cpu' ? 4 : 1);
    for (const s of trouser.stats) assert.ok(s.std > 10, `blank image: ${JSON.stringify(s)}`);
    assert.notDeepEqual(trouser.tokens[0], sneaker.tokens[0], 'classes must differ');
    if (device === 'cpu') {
      const again = await generate(page, { ...base, class: 7, seed: 123 });
      assert.deepEqual(again.tokens, sneaker.tokens, 'same seed, same tokens');
      // Class conditioning shows in the pixels: the average trouser and sneaker differ in shape.
      const l1 = trouser.avg.reduce((a, v, i) => a + Math.abs(v - sneaker.avg[i]), 0) / trouser.avg.length;
      console.log(`mean |average trouser - average sneaker| = ${l1.toFixed(1)} grey levels`);
      assert.ok(l1 > 10, `class-conditioned images should differ (L1 ${l1})`);
    }
    await page.close();
  });
}

test('WebGPU and CPU agree: logits within tolerance, tokens for the same seed', { timeout: TIMEOUT }, async () => {
  const page = await newPage(browser);
  await page.goto(`${server.url}?autostart=0&device=cpu`);
  await page.waitForFunction(() => window.tessera?.ready, null, { timeout: TIMEOUT });
  const r = await page.evaluate(async () => {
    const { loadGenerator } = await import('./tessera/src/index.js');
    const gpu = await loadGenerator({ modelUrl: 'models/fmnist-vqkd/', device: 'webgpu' });
    const cpu = await loadGenerator({ modelUrl: 'models/fmnist-vqkd/', device: 'cpu' });
    const prefix = Array.from({ length: 40 }, (_, i) => (i * 29) % gpu.info.codebookSize);
    const grid = Array.from({ length: 64 }, (_, i) => (i % 3 ? null : (i * 29) % gpu.info.codebookSize));
    let maxDiff = 0, maxAbs = 0;
    for (const [proposal, tokens] of [['ar', prefix], ['nar', grid]]) {
      for (const cls of [0, 7, 10]) {
        const a = await gpu.proposalLogits(proposal, cls, tokens);
        const b = await cpu.proposalLogits(proposal, cls, tokens);
        for (let i = 0; i < a.length; i++) { maxDiff = Math.max(maxDiff, Math.abs(a[i] - b[i])); maxAbs = Math.max(maxAbs, Math.abs(b[i])); }
      }
    }
    const dg = await gpu.decode([prefix.concat(prefix).slice(0, 64)]);
    const dc = await cpu.decode([prefix.concat(prefix).slice(0, 64)]);
    let pixDiff = 0;
    for (let i = 0; i < dg.pixels.length; i++) pixDiff = Math.max(pixDiff, Math.abs(dg.pixels[i] - dc.pixels[i]));
    gpu.dispose(); cpu.dispose();
    return { maxDiff, maxAbs, pixDiff };
  });
  results.logits = r;
  console.log(`WebGPU vs CPU (AR and NAR): max |logit diff| ${r.maxDiff.toExponential(2)} (max |logit| ${r.maxAbs.toFixed(2)}), max pixel diff ${r.pixDiff}`);
  assert.ok(r.maxDiff < 1e-3, `logits differ by ${r.maxDiff}`);
  assert.ok(r.pixDiff <= 1, `decoded pixels differ by ${r.pixDiff}`);
  await page.close();
});

test('same seed gives the same tokens on WebGPU, CPU and natively', { timeout: TIMEOUT }, async (t) => {
  const nativeFile = path.join(OUT, 'native-tokens.json');
  assert.ok(results.webgpu && results.cpu, 'device runs must have passed');
  const browserRate = sameTokens(results.webgpu.tokens, results.cpu.tokens);
  const native = JSON.parse(fs.readFileSync(nativeFile, 'utf8')).samples[0].tokens;
  const nativeRate = sameTokens(native, results.cpu.tokens);
  results.agreement = { webgpu_vs_cpu: browserRate, native_vs_browser_cpu: nativeRate };
  console.log(`token agreement: WebGPU vs CPU ${(100 * browserRate).toFixed(1)}%, native vs browser CPU ${(100 * nativeRate).toFixed(1)}%`);
  // The sampler is exact given the logits; logits agree to ~1e-5, so a draw can only flip when it
  // lands within that of a bucket boundary (after which the rest of the image diverges). Require
  // most images to match exactly and report the rate.
  const exact = (a, b) => a.filter((row, i) => row.join() === b[i].join()).length;
  assert.ok(exact(native, results.cpu.tokens) >= 3, `native vs browser: ${exact(native, results.cpu.tokens)}/4 images identical`);
  assert.ok(exact(results.webgpu.tokens, results.cpu.tokens) >= 3, `webgpu vs cpu: ${exact(results.webgpu.tokens, results.cpu.tokens)}/4 identical`);
});

// SwiftShader takes minutes per bundle (AR samples 64 steps): the budget grows with the shipped bundles.
const SHIPPED = JSON.parse(fs.readFileSync(path.join(ROOT, 'models/index.json'), 'utf8')).bundles.length;
test('every shipped tokenizer x {AR, NAR} generates on WebGPU and CPU', { timeout: Math.max(2, SHIPPED) * 12 * 60 * 1000 }, async () => {
  const page = await newPage(browser);
  await page.goto(`${server.url}?autostart=0&device=cpu`);
  await page.waitForFunction(() => window.tessera?.ready, null, { timeout: TIMEOUT });
  const index = await page.evaluate(() => window.tessera.index);
  assert.ok(index.bundles.length >= 1, 'models/index.json lists no bundle');
  const rows = [];
  // ZOO_ONLY=name[,name]: only those bundles (checking a new bundle before it ships; CI runs them all).
  const only = process.env.ZOO_ONLY?.split(',');
  for (const b of index.bundles.filter((b) => !only || only.includes(b.name))) {
    for (const device of ['webgpu', 'cpu']) {
      const r = await page.evaluate(async ({ path, device }) => {
        const { loadGenerator } = await import('./tessera/src/index.js');
        const g = await loadGenerator({ modelUrl: 'models/' + path, device });
        const out = {};
        for (const proposal of Object.keys(g.info.proposals)) {
          const t0 = performance.now();
          const res = await g.generate({ proposal, class: 1, count: 1, seed: 2, previewEvery: 0 });
          const d = res.images[0].data;
          let sum = 0, sq = 0;
          for (let i = 0; i < d.length; i += 4) { sum += d[i]; sq += d[i] * d[i]; }
          const mean = sum / (d.length / 4);
          out[proposal] = { device: res.device, tokens: res.tokens[0].length, std: Math.sqrt(sq / (d.length / 4) - mean * mean), ms: performance.now() - t0 };
          if (proposal === 'ar') {
            // the encoder path on this device too: a fixed trouser-like image (two bright legs)
            const img = new ImageData(32, 32);
            for (let y = 0; y < 32; y++) for (let x = 0; x < 32; x++) {
              const v = y > 3 && y < 29 && ((x > 8 && x < 15) || (x > 17 && x < 24) || y < 9) && x > 8 && x < 24 ? 200 : 0;
              img.data.set([v, v, v, 255], (y * 32 + x) * 4);
            }
            const rec = await g.reconstruct(img);
            out.encoded = rec.tokens[0];
          }
        }
        g.dispose();
        return out;
      }, { path: b.path, device });
      const encoded = r.encoded;
      delete r.encoded;
      (results.encoded ??= {})[`${b.name}/${device}`] = encoded;
      assert.equal(encoded.length, 64);
      if (device === 'cpu') {
        const other = results.encoded[`${b.name}/webgpu`];
        const same = encoded.filter((t, i) => t === other[i]).length;
        console.log(`${b.name}: WebGPU and CPU encodings agree on ${same}/64 tokens`);
        assert.ok(same >= 60, `${b.name}: WebGPU and CPU encode differently (${same}/64 equal)`);
      }
      for (const [proposal, x] of Object.entries(r)) {
        rows.push({ bundle: b.name, device, proposal, ...x });
        assert.equal(x.device, device);
        assert.equal(x.tokens, 64);
        assert.ok(x.std > 10, `${b.name} ${proposal} on ${device}: blank image`);
      }
      assert.deepEqual(Object.keys(r).sort(), [...b.proposals].sort());
    }
  }
  results.zoo = rows;
  console.log(rows.map((r) => `${r.bundle} ${r.proposal} ${r.device}: ${r.ms.toFixed(0)} ms/image`).join('\n'));
  await page.close();
});

test('NAR unmasks step by step; inpainting keeps the unbrushed tokens', { timeout: TIMEOUT }, async () => {
  const page = await openSite('cpu');
  const r = await page.evaluate(async () => {
    await window.tessera.generate({ proposal: 'nar', class: 7, count: 4, seed: 5, temperature: 1, topK: 0, topP: 1, guidance: 1.75, steps: 8 });
    const gen = window.tessera.lastResult;
    window.tessera.selectForEdit(0);
    const cells = [0, 1, 2, 8, 9, 10, 16, 17, 18, 27, 28, 35, 36];
    const inp = await window.tessera.inpaint({ cells, count: 3, seed: 9, cls: 7 });
    const repeat = await window.tessera.inpaint({ cells, count: 3, seed: 9, cls: 7 });
    return { gen, inp, repeat: repeat.tokens, cells, error: window.tessera.lastError };
  });
  assert.equal(r.gen.proposal, 'nar');
  assert.equal(r.gen.revealedPerStep.length, 8, 'one progress event per NAR step');
  assert.equal(r.gen.revealedPerStep.reduce((a, v) => a + v, 0), 64, 'every token revealed once');
  assert.ok(r.gen.revealedPerStep[0] < r.gen.revealedPerStep[7], `cosine schedule reveals few tokens first: ${r.gen.revealedPerStep}`);
  for (const t of r.inp.tokens) {
    for (let p = 0; p < 64; p++) if (!r.cells.includes(p)) assert.equal(t[p], r.inp.source[p], `kept token ${p} changed`);
  }
  assert.ok(r.inp.tokens.some((t) => r.cells.some((p) => t[p] !== r.inp.source[p])), 'nothing was resampled');
  assert.deepEqual(r.repeat, r.inp.tokens, 'same seed, same inpainting');
  await page.screenshot({ path: path.join(OUT, 'site-inpaint.png'), fullPage: true });
  await page.close();
});

test('an uploaded image is reconstructed by every tokenizer', { timeout: TIMEOUT }, async () => {
  const page = await openSite('cpu');
  // The upload: a real test-set reconstruction grid cell would do, but use an image the page did
  // not make: a generated sneaker, re-encoded as PNG bytes, scaled 4x (the page scales it back).
  await generate(page, { ...base, class: 7, seed: 3, count: 1 });
  const png = await page.evaluate(() => {
    const src = document.querySelector('#grid canvas');
    const c = document.createElement('canvas'); c.width = 128; c.height = 128;
    const ctx = c.getContext('2d'); ctx.imageSmoothingEnabled = false; ctx.drawImage(src, 0, 0, 128, 128);
    return c.toDataURL('image/png').split(',')[1];
  });
  await page.setInputFiles('#upload', { name: 'sneaker.png', mimeType: 'image/png', buffer: Buffer.from(png, 'base64') });
  await page.waitForFunction(() => document.getElementById('draw').getContext('2d').getImageData(0, 0, 32, 32).data.some((v, i) => i % 4 === 0 && v > 100));
  await page.click('#reconstruct');
  const index = await page.evaluate(() => window.tessera.index);
  await page.waitForFunction((n) => window.tessera.lastReconstruction?.length === n, index.bundles.length, { timeout: TIMEOUT });
  const rec = await page.evaluate(() => window.tessera.lastReconstruction);
  results.reconstruction = rec.map(({ tokens, ...r }) => r);
  for (const r of rec) {
    assert.equal(r.error, undefined, `${r.bundle}: ${r.error}`);
    assert.equal(r.tokens.length, 64);
    assert.ok(r.mse < 0.05, `${r.bundle}: reconstruction MSE ${r.mse}`);
  }
  console.log(rec.map((r) => `${r.tokenizer}: ${r.distinct} distinct codes, MSE ${r.mse.toFixed(4)}`).join('; '));
  await page.screenshot({ path: path.join(OUT, 'site-reconstruct.png'), fullPage: true });
  await page.close();
});

test('the results page is built from models/index.json', { timeout: TIMEOUT }, async () => {
  const page = await newPage(browser);
  await page.goto(`${server.url}results.html`);
  await page.waitForFunction(() => window.resultsReady !== undefined, null, { timeout: 60000 });
  const rows = await page.evaluate(() => [...document.querySelectorAll('#results tbody tr')].map((tr) => [...tr.cells].map((c) => c.textContent)));
  const index = JSON.parse(fs.readFileSync(path.join(ROOT, 'models/index.json'), 'utf8'));
  assert.equal(rows.length, index.bundles.length);
  for (const [i, b] of index.bundles.entries()) assert.equal(rows[i][4], b.eval.reconstruction_psnr_db.toFixed(2));
  // The paper's table: rendered from docs/results/table.json when `tessera-train table` has written it.
  const tablePath = path.join(ROOT, 'docs/results/table.json');
  await page.waitForFunction(() => [...document.querySelectorAll('#paper img')].every((i) => i.complete), null, { timeout: 60000 });
  const paper = await page.evaluate(() => ({
    ready: window.paperReady,
    status: document.getElementById('paper-status').textContent,
    rows: [...document.querySelectorAll('table.paper tbody tr')].map((tr) => [...tr.cells].map((c) => c.textContent)),
    images: [...document.querySelectorAll('#paper img')].map((i) => i.complete && i.naturalWidth > 0),
  }));
  if (!fs.existsSync(tablePath)) {
    assert.equal(paper.ready, 0);
    assert.match(paper.status, /Not produced yet/);
  } else {
    const t = JSON.parse(fs.readFileSync(tablePath, 'utf8'));
    const order = ['main', 'teacher', 'codebook'].flatMap((g) => t.rows.filter((r) => r.group === g));
    assert.equal(paper.ready, t.rows.length);
    assert.equal(paper.rows.length, t.rows.length);
    for (const [i, r] of order.entries()) {
      assert.equal(paper.rows[i][0], r.label);
      const usage = t.columns.findIndex((c) => c.key === 'usage');
      const want = r.seeds.length > 1 ? `${r.mean.usage.toFixed(1)} ± ${r.std.usage.toFixed(1)}` : r.mean.usage.toFixed(1);
      assert.equal(paper.rows[i][2 + usage], want);
    }
    const own = t.rows.filter((r) => !r.reference).length;
    assert.ok(paper.images.length >= 2 * own && paper.images.every(Boolean), `figures failed to load: ${paper.images}`);
  }
  await page.close();
});
