// The published package as a user gets it: `npm pack` web/package, install the tarball into a fresh
// project, and generate an image through it in headless Chromium.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { serve, launch, newPage, ROOT, OUT } from './helpers.mjs';

test('npm pack -> install -> generate in the browser', { timeout: 10 * 60 * 1000 }, async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-pkg-'));
  const packed = execFileSync('npm', ['pack', '--silent', '--pack-destination', tmp], { cwd: path.join(ROOT, 'web/package') }).toString().trim().split('\n').pop();
  const tarball = path.join(tmp, packed);
  const app = path.join(tmp, 'app');
  fs.mkdirSync(app);
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  execFileSync('npm', ['install', '--no-audit', '--no-fund', '--offline', tarball], { cwd: app, stdio: 'inherit' });
  const files = execFileSync('tar', ['tzf', tarball]).toString();
  assert.match(files, /package\/dist\/tessera_wasm_bg\.wasm/);
  assert.match(files, /package\/src\/index\.d\.ts/);
  fs.symlinkSync(path.join(ROOT, 'models'), path.join(app, 'models'));
  // The README example, nearly verbatim.
  fs.writeFileSync(path.join(app, 'index.html'), `<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><canvas id="c"></canvas>
<script type="module">
import { loadGenerator } from './node_modules/tessera-web/src/index.js';
const progress = [];
const gen = await loadGenerator({ modelUrl: 'models/fmnist-vqkd/', device: 'cpu', onProgress: (p) => progress.push(p.stage) });
const { images, tokens } = await gen.generate({ class: 'Bag', count: 2, seed: 1 });
const c = document.getElementById('c'); c.width = images[0].width; c.height = images[0].height;
c.getContext('2d').putImageData(images[0], 0, 0);
// NAR, reconstruction and inpainting through the same package
const nar = await gen.generate({ proposal: 'nar', class: 'Bag', count: 1, seed: 1 });
const rec = await gen.reconstruct(images[0]);
const mask = [Array.from({ length: 64 }, (_, p) => p < 16)];
const edited = await gen.inpaint({ tokens: [rec.tokens[0]], mask, class: 'Bag', seed: 4 });
let badInput = null;
try { await gen.generate({ class: 'Bag', colour: 'red' }); } catch (e) { badInput = e.message; }
window.done = { n: images.length, w: images[0].width, tokens: tokens[0].length, progress, max: Math.max(...images[0].data),
  narTokens: nar.tokens[0].length, recTokens: rec.tokens[0].length,
  keptAfterEdit: edited.tokens[0].slice(16).every((t, i) => t === rec.tokens[0][16 + i]), badInput };
</script>`);
  const server = await serve(app);
  const browser = await launch();
  try {
    const page = await newPage(browser);
    await page.goto(server.url);
    await page.waitForFunction(() => window.done, null, { timeout: 5 * 60 * 1000 });
    const done = await page.evaluate(() => window.done);
    assert.equal(done.n, 2);
    assert.equal(done.w, 32);
    assert.equal(done.tokens, 64);
    assert.ok(done.max > 100, 'image is not blank');
    assert.ok(done.progress.includes('download'), 'progress callback was called');
    assert.equal(done.narTokens, 64);
    assert.equal(done.recTokens, 64);
    assert.ok(done.keptAfterEdit, 'inpainting changed tokens outside the mask');
    assert.match(done.badInput, /colour/, 'unknown options are rejected with a message');
    await page.screenshot({ path: path.join(OUT, 'package.png') });
  } finally {
    await browser.close();
    server.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
