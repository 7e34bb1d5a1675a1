// Your own images, end to end: a folder of colour images in two class subfolders (SVG and BMP files
// of different sizes, written here) trains a bundle with the native CLI (`--data folder:DIR`), the
// bundle is exported, loaded by the npm package in headless Chromium and generates images of each
// class whose colours are the class's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { serve, launch, newPage, ROOT, OUT } from './helpers.mjs';

/** A 24-bit BMP (bottom-up rows padded to 4 bytes) of `w` x `h` pixels from `rgb(x, y)`. */
function bmp(w, h, rgb) {
  const row = Math.ceil((w * 3) / 4) * 4;
  const b = Buffer.alloc(54 + row * h);
  b.write('BM', 0);
  b.writeUInt32LE(b.length, 2);
  b.writeUInt32LE(54, 10);
  b.writeUInt32LE(40, 14);
  b.writeInt32LE(w, 18);
  b.writeInt32LE(h, 22);
  b.writeUInt16LE(1, 26);
  b.writeUInt16LE(24, 28);
  b.writeUInt32LE(row * h, 34);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const [r, g, bl] = rgb(x, h - 1 - y);
      b.set([bl, g, r], 54 + y * row + x * 3);
    }
  }
  return b;
}

/** `red/`: red discs as SVG (transparent background); `blue/`: blue squares as BMP on white. */
function writeFolder(dir) {
  fs.mkdirSync(path.join(dir, 'red'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'blue'), { recursive: true });
  for (let i = 0; i < 24; i++) {
    const r = 10 + (i % 5), cx = 24 + (i % 3) * 4, cy = 24 + ((i >> 2) % 3) * 4;
    fs.writeFileSync(path.join(dir, 'red', `disc${i}.svg`),
      `<svg xmlns="http://www.w3.org/2000/svg" width="${48 + i}" height="${48 + i}" viewBox="0 0 48 48"><circle cx="${cx}" cy="${cy}" r="${r}" fill="rgb(${200 + i},30,40)"/></svg>`);
    const side = 40 + i, lo = 8 + (i % 4), hi = side - 8 - (i % 3);
    fs.writeFileSync(path.join(dir, 'blue', `square${i}.bmp`), bmp(side, side, (x, y) => (x >= lo && x < hi && y >= lo && y < hi ? [30, 50, 210] : [255, 255, 255])));
  }
}

function tesseraTrain(args) {
  const bin = process.env.TESSERA_TRAIN_BIN ?? path.join(process.env.CARGO_TARGET_DIR ?? path.join(os.homedir(), '.cache/tessera-target'), 'release/tessera-train');
  if (fs.existsSync(bin)) execFileSync(bin, args, { cwd: ROOT, stdio: 'inherit' });
  else execFileSync('cargo', ['run', '--release', '-q', '-p', 'tessera-train', '--', ...args], { cwd: ROOT, stdio: 'inherit' });
}

test('a folder of your own colour images: train -> export -> generate in Chromium', { timeout: 20 * 60 * 1000 }, async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-folder-'));
  try {
    const imgs = path.join(tmp, 'shapes');
    writeFolder(imgs);
    const run = path.join(tmp, 'run');
    process.env.TESSERA_CACHE = path.join(tmp, 'cache'); // the CLI caches the decoded folder here
    tesseraTrain(['train', '--data', `folder:${imgs}`, '--run', run, '--tokenizer', 'vqgan', '--batch-size', '16',
      '--tokenizer-steps', '400', '--proposal-steps', '200', '--checkpoint-every', '100', '--channels', '16', '--codebook-size', '32',
      '--code-dim', '8', '--n-layer', '1', '--n-head', '2', '--n-embd', '32']);
    const data = JSON.parse(fs.readFileSync(path.join(run, 'data.json'), 'utf8'));
    assert.deepEqual(data.classes, ['blue', 'red']);
    assert.deepEqual(data.shape, { size: 32, channels: 3 });
    const bundle = path.join(tmp, 'site/models/shapes');
    tesseraTrain(['export', '--run', run, '--out', bundle, '--name', 'shapes']);
    const manifest = JSON.parse(fs.readFileSync(path.join(bundle, 'manifest.json'), 'utf8'));
    assert.equal(manifest.dataset.channels, 3);
    assert.equal(manifest.dataset.background, 255);

    const site = path.join(tmp, 'site');
    fs.symlinkSync(path.join(ROOT, 'web/package'), path.join(site, 'tessera'));
    fs.writeFileSync(path.join(site, 'index.html'), `<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,">
<script type="module">
import { loadGenerator } from './tessera/src/index.js';
const gen = await loadGenerator({ modelUrl: 'models/shapes/', device: 'cpu' });
// mean red and blue of the object (pixels that are not near-white background)
const colour = (im) => { let r = 0, b = 0, n = 0;
  for (let i = 0; i < im.data.length; i += 4) { const [R, G, B] = im.data.slice(i, i + 3); if (R + G + B < 600) { r += R; b += B; n++; } }
  return { r: r / Math.max(n, 1), b: b / Math.max(n, 1), n }; };
const out = {};
for (const proposal of ['ar', 'nar']) for (const cls of ['red', 'blue']) {
  const { images } = await gen.generate({ proposal, class: cls, count: 4, seed: 3 });
  out[proposal + '-' + cls] = images.map(colour);
}
const i = gen.info;
window.done = { info: { classes: i.classes, imageSize: i.imageSize, channels: i.channels, background: i.background, grid: i.grid, dataset: i.dataset }, out };
</script>`);
    const server = await serve(site);
    const browser = await launch();
    let done;
    try {
      const page = await newPage(browser);
      await page.goto(server.url);
      await page.waitForFunction(() => window.done, null, { timeout: 10 * 60 * 1000 });
      done = await page.evaluate(() => window.done);
      await page.screenshot({ path: path.join(OUT, 'folder.png') });
    } finally {
      await browser.close();
      server.close();
    }
    assert.deepEqual(done.info, { classes: ['blue', 'red'], imageSize: 32, channels: 3, background: 255, grid: [8, 8], dataset: 'shapes' });
    for (const [key, images] of Object.entries(done.out)) {
      const red = key.endsWith('red');
      for (const c of images) assert.ok(c.n > 20, `${key}: an object is drawn (${c.n} non-background pixels)`);
      // the class decides the colour: its colour dominates (by 30+ levels) in at least 3 of the 4
      // samples, and by 60+ in their mean. A 200-step proposal network and a 400-step tokenizer may
      // draw one sample of the other class, or mixed shades (e.g. r 110 b 163): which, changes with
      // the CPU's float kernels. Colours drawn regardless of the class fail both.
      const margin = (c) => (red ? c.r - c.b : c.b - c.r);
      const right = images.filter((c) => margin(c) > 30).length;
      const mean = images.reduce((a, c) => a + margin(c), 0) / images.length;
      const seen = images.map((c) => `r ${c.r.toFixed(0)} b ${c.b.toFixed(0)}`).join(', ');
      assert.ok(right >= 3 && mean > 60, `${key}: ${red ? 'red' : 'blue'} class, ${right}/4 samples of its colour, mean margin ${mean.toFixed(0)} (${seen})`);
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
