// The published package as a user gets it: `npm pack` web/package, install the tarball into a fresh
// project, import it by name through its `exports` map (as a bundler resolves it), and generate in
// headless Chromium; then the API's promises under stress: dispose, cancellation, bad arguments,
// a bundle updated at the same URL.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { serve, launch, newPage, ROOT, OUT } from './helpers.mjs';

/** `npm pack` web/package into a new temp folder and install the tarball into `tmp/app` (a fresh
 * project, offline, as a user's `npm install` would): returns the folders and the tarball. */
function packAndInstall(prefix, appName) {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const packed = execFileSync('npm', ['pack', '--silent', '--pack-destination', tmp], { cwd: path.join(ROOT, 'web/package') }).toString().trim().split('\n').pop();
  const tarball = path.join(tmp, packed);
  const app = path.join(tmp, 'app');
  fs.mkdirSync(app);
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: appName, private: true, type: 'module' }));
  execFileSync('npm', ['install', '--no-audit', '--no-fund', '--offline', tarball], { cwd: app, stdio: 'inherit' });
  return { tmp, app, tarball };
}

/** Serves `dir`, opens it in headless Chromium and returns the page's `window.done` (a screenshot
 * to `screenshot` when given). */
async function pageResult(dir, screenshot) {
  const server = await serve(dir);
  const browser = await launch();
  try {
    const page = await newPage(browser);
    await page.goto(server.url);
    await page.waitForFunction(() => window.done, null, { timeout: 5 * 60 * 1000 });
    const done = await page.evaluate(() => window.done);
    if (screenshot) await page.screenshot({ path: screenshot });
    return done;
  } finally {
    await browser.close();
    server.close();
  }
}

test('npm pack -> install -> generate in the browser', { timeout: 10 * 60 * 1000 }, async () => {
  const { tmp, app, tarball } = packAndInstall('tessera-pkg-', 'app');
  const files = execFileSync('tar', ['tzf', tarball]).toString();
  assert.match(files, /package\/dist\/tessera_wasm_bg\.wasm/);
  assert.match(files, /package\/dist\/tessera_wasm_cpu_bg\.wasm/, 'the CPU-only engine ships too');
  assert.match(files, /package\/dist\/tessera_wasm_cpu_mt_bg\.wasm/, 'and the threaded one');
  assert.match(files, /package\/dist\/snippets\/wasm-bindgen-rayon-[^/]+\/src\/workerHelpers\.no-bundler\.js/, 'with its thread pool helper');
  assert.match(files, /package\/src\/index\.d\.ts/);
  fs.symlinkSync(path.join(ROOT, 'models'), path.join(app, 'models'));
  // Resolve 'tessera-web' as Node and bundlers do (the package's `exports` map), into an import map.
  const resolved = execFileSync('node', ['--input-type=module', '-e', "console.log(import.meta.resolve('tessera-web'))"], { cwd: app }).toString().trim();
  const entry = path.relative(app, new URL(resolved).pathname);
  assert.equal(entry, 'node_modules/tessera-web/src/index.js', 'the exports map resolves the entry point');
  // The README example, nearly verbatim.
  fs.writeFileSync(path.join(app, 'index.html'), `<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><canvas id="c"></canvas>
<script type="importmap">{ "imports": { "tessera-web": "./${entry}" } }</script>
<script type="module">
import { loadGenerator } from 'tessera-web';
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
let badInput = null, badKind = null;
try { await gen.generate({ class: 'Bag', colour: 'red' }); } catch (e) { badInput = e.message; badKind = e.name; }
let wasmKind = null;
try { await gen.generate({ class: 'Nope' }); } catch (e) { wasmKind = [e.name, e.code]; }
window.done = { n: images.length, w: images[0].width, tokens: tokens[0].length, progress, max: Math.max(...images[0].data),
  narTokens: nar.tokens[0].length, recTokens: rec.tokens[0].length,
  keptAfterEdit: edited.tokens[0].slice(16).every((t, i) => t === rec.tokens[0][16 + i]), badInput, badKind, wasmKind, engine: gen.info.engine };
</script>`);
  const done = await pageResult(app, path.join(OUT, 'package.png')).finally(() => fs.rmSync(tmp, { recursive: true, force: true }));
  assert.equal(done.n, 2);
  assert.equal(done.w, 32);
  assert.equal(done.tokens, 64);
  assert.ok(done.max > 100, 'image is not blank');
  assert.ok(done.progress.includes('download'), 'progress callback was called');
  assert.equal(done.progress.at(-1), 'ready', 'the last load event is ready');
  assert.equal(done.narTokens, 64);
  assert.equal(done.recTokens, 64);
  assert.ok(done.keptAfterEdit, 'inpainting changed tokens outside the mask');
  assert.match(done.badInput, /colour/, 'unknown options are rejected with a message');
  assert.equal(done.badKind, 'InvalidOption');
  assert.deepEqual(done.wasmKind, ['InvalidOption', 'InvalidOption'], 'errors from wasm carry their kind');
  assert.equal(done.engine, 'cpu', "device 'cpu' runs the CPU-only engine");
});

/** A page on a served folder holding the package and the shipped models (plus `extra` files). */
async function packagePage(browser, server) {
  const page = await newPage(browser);
  const requests = [];
  page.on('request', (r) => requests.push(r.url()));
  page.on('worker', (w) => w.on('console', () => {}));
  await page.goto(server.url + 'blank.html');
  return { page, requests };
}

function appDir() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-api-'));
  fs.symlinkSync(path.join(ROOT, 'web/package'), path.join(dir, 'tessera'));
  fs.symlinkSync(path.join(ROOT, 'models'), path.join(dir, 'models'));
  fs.writeFileSync(path.join(dir, 'blank.html'), '<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,">');
  return dir;
}

test('every promise settles: dispose, AbortSignal, bad arguments, checks before downloads', { timeout: 10 * 60 * 1000 }, async () => {
  const dir = appDir();
  const server = await serve(dir);
  const browser = await launch();
  try {
    const { page, requests } = await packagePage(browser, server);
    const r = await page.evaluate(async () => {
      const { loadGenerator, TesseraError } = await import('./tessera/src/index.js');
      const kindOf = (p) => p.then(() => 'resolved', (e) => (e instanceof TesseraError ? e.name : `not a TesseraError: ${e}`));
      const out = {};
      // Options are checked before anything is downloaded.
      out.badDevice = await kindOf(loadGenerator({ modelUrl: 'models/fmnist-vqgan/', device: 'tpu' }));
      out.badProposals = await kindOf(loadGenerator({ modelUrl: 'models/fmnist-vqgan/', proposals: 'ar' }));
      out.noUrl = await kindOf(loadGenerator({}));
      // A load cancelled by its signal.
      const early = new AbortController();
      const cancelledLoad = loadGenerator({ modelUrl: 'models/fmnist-vqgan/', device: 'cpu', signal: early.signal });
      early.abort();
      out.abortedLoad = await kindOf(cancelledLoad);
      const gen = await loadGenerator({ modelUrl: 'models/fmnist-vqgan/', device: 'cpu' });
      const n = gen.tokensPerImage;
      // Bad arguments reject (never throw synchronously); the generator stays usable.
      out.shortMask = await kindOf(gen.inpaint({ tokens: [new Array(n).fill(0)], mask: [new Array(n - 1).fill(true)], class: 1 }));
      out.holeyMask = await kindOf(gen.inpaint({ tokens: [new Array(n).fill(0)], mask: [new Array(n)], class: 1 }));
      out.logitsNoTokens = await kindOf(Promise.resolve().then(() => gen.proposalLogits('ar', 1, undefined)));
      out.logitsSync = (() => { try { const p = gen.proposalLogits('ar', 1, undefined); p.catch(() => {}); return 'returned a promise'; } catch { return 'threw'; } })();
      // A generation cancelled after a few steps rejects with AbortError; the next one runs.
      const ctl = new AbortController();
      let steps = 0;
      const cancelled = gen.generate({ class: 1, count: 1, seed: 3, signal: ctl.signal, onStep: () => { if (++steps === 5) ctl.abort(); } });
      out.abortedGenerate = await kindOf(cancelled);
      out.stepsBeforeAbort = steps;
      const ok = await gen.generate({ class: 1, count: 1, seed: 3 });
      out.afterAbort = ok.tokens[0].length;
      // dispose() during a call: it rejects with Disposed, and so does every later call, at once.
      const pending = gen.generate({ class: 2, count: 2, seed: 1 });
      gen.dispose();
      out.duringDispose = await kindOf(pending);
      const t0 = performance.now();
      out.afterDispose = await kindOf(gen.decode([new Array(n).fill(0)]));
      out.afterDisposeMs = performance.now() - t0;
      return out;
    });
    console.log(JSON.stringify(r));
    assert.equal(r.badDevice, 'InvalidOption');
    assert.equal(r.badProposals, 'InvalidOption');
    assert.equal(r.noUrl, 'InvalidOption');
    assert.equal(r.abortedLoad, 'AbortError');
    assert.equal(r.shortMask, 'InvalidTokens');
    assert.equal(r.holeyMask, 'InvalidTokens');
    assert.equal(r.logitsNoTokens, 'InvalidTokens');
    assert.equal(r.logitsSync, 'returned a promise');
    assert.equal(r.abortedGenerate, 'AbortError');
    assert.ok(r.stepsBeforeAbort >= 5 && r.stepsBeforeAbort < 64, `generation stopped after ${r.stepsBeforeAbort} steps`);
    assert.equal(r.afterAbort, 64);
    assert.equal(r.duringDispose, 'Disposed');
    assert.equal(r.afterDispose, 'Disposed');
    assert.ok(r.afterDisposeMs < 100, 'a call after dispose rejects at once');
    // The rejected loads downloaded no weights: the only safetensors fetched are the real load's.
    const weights = requests.filter((u) => u.endsWith('.safetensors'));
    assert.ok(weights.length <= 3 + 3, `weights fetched: ${weights.join(', ')}`);
    // Every generator here asked for the CPU: only the CPU-only engine was downloaded.
    const engines = requests.filter((u) => u.endsWith('.wasm')).map((u) => path.basename(new URL(u).pathname));
    assert.ok(engines.length > 0 && engines.every((f) => f === 'tessera_wasm_cpu_bg.wasm'), `wasm fetched: ${engines.join(', ')}`);
  } finally {
    await browser.close();
    server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a bundle updated at the same URL loads (the cache is keyed by checksum)', { timeout: 10 * 60 * 1000 }, async () => {
  const dir = appDir();
  const bundle = path.join(dir, 'b');
  const copy = (name) => {
    fs.rmSync(bundle, { recursive: true, force: true });
    fs.mkdirSync(bundle);
    for (const f of ['manifest.json', 'tokenizer.safetensors']) fs.copyFileSync(path.join(ROOT, 'models', name, f), path.join(bundle, f));
  };
  copy('fmnist-vqgan');
  const server = await serve(dir);
  const browser = await launch();
  try {
    const { page } = await packagePage(browser, server);
    const load = () => page.evaluate(async () => {
      const { loadGenerator } = await import('./tessera/src/index.js');
      const events = [];
      const g = await loadGenerator({ modelUrl: 'b/', device: 'cpu', proposals: [], onProgress: (p) => p.stage === 'download' && events.push(p.cached) });
      const name = g.info.tokenizer;
      g.dispose();
      return { name, cached: events.at(-1) };
    });
    const first = await load();
    const again = await load();
    assert.deepEqual([first.name, again.name], ['vqgan', 'vqgan']);
    assert.equal(again.cached, true, 'the second load reads the Cache API');
    copy('fmnist-fsq'); // new weights, new manifest, same URL
    const updated = await load();
    assert.equal(updated.name, 'fsq', 'the updated bundle loads, not a checksum error');
    assert.equal(updated.cached, false);
  } finally {
    await browser.close();
    server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a Vite app built from the packed tarball generates in the browser', { timeout: 10 * 60 * 1000 }, async () => {
  const { tmp, app } = packAndInstall('tessera-vite-', 'vite-app');
  fs.mkdirSync(path.join(app, 'public'));
  fs.symlinkSync(path.join(ROOT, 'models'), path.join(app, 'public', 'models'));
  fs.writeFileSync(path.join(app, 'index.html'), '<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><script type="module" src="/main.js"></script>');
  fs.writeFileSync(path.join(app, 'main.js'), `import { loadGenerator } from 'tessera-web';
const gen = await loadGenerator({ modelUrl: 'models/fmnist-vqkd/', device: 'cpu', proposals: ['nar'] });
const r = await gen.generate({ proposal: 'nar', class: 'Sneaker', count: 1, seed: 2 });
window.done = { tokens: r.tokens[0].length, max: Math.max(...r.images[0].data), device: r.device };
`);
  // Vite resolves the package through its exports map and bundles the worker with its wasm.
  const vite = path.join(ROOT, 'tests/browser/node_modules/.bin/vite');
  execFileSync(vite, ['build', '--logLevel', 'warn'], { cwd: app, stdio: 'inherit' });
  const dist = path.join(app, 'dist');
  const assets = fs.readdirSync(path.join(dist, 'assets'));
  assert.ok(assets.some((f) => f.endsWith('.wasm')), `the wasm is an asset of the build: ${assets.join(', ')}`);
  assert.ok(assets.filter((f) => f.endsWith('.js')).length >= 2, 'the worker is bundled apart from the page');
  const done = await pageResult(dist).finally(() => fs.rmSync(tmp, { recursive: true, force: true }));
  assert.equal(done.tokens, 64);
  assert.equal(done.device, 'cpu');
  assert.ok(done.max > 100, 'image is not blank');
});

test('threads: a cross-origin isolated page runs the threaded CPU engine, same tokens and pixels', { timeout: 10 * 60 * 1000 }, async () => {
  const dir = appDir();
  const requests = [];
  const [isolated, plain] = [await serve(dir, { isolated: true, requests }), await serve(dir)];
  const browser = await launch();
  try {
    const run = (server) => packagePage(browser, server).then(({ page }) => page.evaluate(async () => {
      const { loadGenerator } = await import('./tessera/src/index.js');
      const out = { isolated: crossOriginIsolated };
      const ask = async (threads) => {
        const g = await loadGenerator({ modelUrl: 'models/fmnist-vqkd/', device: 'cpu', threads });
        const ar = await g.generate({ class: 'Coat', count: 8, seed: 5 });
        const nar = await g.generate({ proposal: 'nar', class: 'Coat', count: 8, seed: 5 });
        const info = { engine: g.info.engine, threads: g.info.threads, fallback: g.info.threadsFallbackReason ?? null,
          tokens: [...ar.tokens, ...nar.tokens].map((t) => Array.from(t).join(',')),
          pixels: [...ar.images, ...nar.images].map((im) => Array.from(im.data).join(',')) };
        g.dispose();
        return info;
      };
      if (crossOriginIsolated) {
        out.one = await ask(undefined); // the default, even on an isolated page: one thread (opt-in)
        out.two = await ask(2);
        // a bundle that is not there: refused once, not fetched again by the single-threaded fallback
        out.missing = await loadGenerator({ modelUrl: 'models/missing/', device: 'cpu', threads: 2 }).then(() => null, (e) => e.name);
      } else {
        out.refused = await loadGenerator({ modelUrl: 'models/fmnist-vqkd/', device: 'cpu', threads: 2 }).then(() => null, (e) => [e.name, e.message]);
        const g = await loadGenerator({ modelUrl: 'models/fmnist-vqkd/', device: 'cpu', proposals: [] });
        out.defaultEngine = [g.info.engine, g.info.threads];
        g.dispose();
      }
      return out;
    }));
    const a = await run(isolated);
    assert.equal(a.isolated, true, 'COOP + COEP make the page cross-origin isolated');
    assert.deepEqual([a.one.engine, a.one.threads], ['cpu', 1]);
    assert.deepEqual([a.two.engine, a.two.threads, a.two.fallback], ['cpu-threads', 2, null], 'two threads: the threaded engine');
    assert.deepEqual(a.two.tokens, a.one.tokens, 'the same seed gives the same tokens on one thread and on two');
    assert.deepEqual(a.two.pixels, a.one.pixels, 'and the same pixels');
    assert.equal(a.missing, 'NetworkError');
    assert.equal(requests.filter((p) => p.endsWith('/models/missing/manifest.json')).length, 1, 'a missing bundle is requested once, not retried single-threaded');
    const b = await run(plain);
    assert.equal(b.isolated, false);
    assert.equal(b.refused?.[0], 'InvalidOption', 'threads > 1 on a page without isolation is refused');
    assert.match(b.refused[1], /cross-origin isolated/);
    assert.deepEqual(b.defaultEngine, ['cpu', 1], 'without isolation the default is the single-threaded engine');
  } finally {
    await browser.close();
    isolated.close();
    plain.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the wasm module runs its static constructors once, not on every call from JS', { timeout: 5 * 60 * 1000 }, async () => {
  // wasm-ld wrapped every export in `__wasm_call_ctors` until the module called it itself at start
  // (crate/tessera-wasm/src/lib.rs): each crossing cost tens of ms. Twenty calls from JS, one run.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-ctors-'));
  fs.symlinkSync(path.join(ROOT, 'web/package/dist'), path.join(dir, 'dist'));
  fs.writeFileSync(path.join(dir, 'index.html'), `<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,">
<script type="module">
import init, { constructorRuns } from './dist/tessera_wasm.js';
await init();
const runs = [];
for (let i = 0; i < 20; i++) runs.push(constructorRuns());
window.done = { runs };
</script>`);
  const { runs } = await pageResult(dir);
  assert.deepEqual(runs, Array(20).fill(1), `constructor runs seen by 20 calls: ${runs.join(',')}`);
});

test('prompts tokenise in wasm exactly as the reference does (WordPiece of all-MiniLM-L6-v2)', { timeout: 5 * 60 * 1000 }, async () => {
  // tests/fixtures/minilm.json: ids from an independent Python implementation of BERT's tokenisation
  // (scripts/reference/minilm.py); natively crate/tessera/tests/minilm.rs checks the same cases.
  const weights = process.env.TESSERA_WEIGHTS || path.join(os.homedir(), '.cache/tessera-weights');
  const tokenizer = path.join(weights, 'all-minilm-l6-v2/tokenizer.json');
  assert.ok(fs.existsSync(tokenizer), `${tokenizer} is missing: scripts/setup.sh unpacks it`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-text-'));
  fs.symlinkSync(path.join(ROOT, 'web/package/dist'), path.join(dir, 'dist'));
  fs.copyFileSync(tokenizer, path.join(dir, 'tokenizer.json'));
  fs.copyFileSync(path.join(ROOT, 'tests/fixtures/minilm.json'), path.join(dir, 'fixture.json'));
  fs.writeFileSync(path.join(dir, 'index.html'), `<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,">
<script type="module">
import init, { TextTokenizer } from './dist/tessera_wasm.js';
await init();
const fx = await (await fetch('fixture.json')).json();
const bytes = new Uint8Array(await (await fetch('tokenizer.json')).arrayBuffer());
const t = new TextTokenizer(bytes, fx.max_len);
const cases = fx.tokens.map((c) => ({ text: c.text, want: c.ids, got: Array.from(t.encode(c.text).ids) }));
const errors = [];
for (const bad of [() => t.encode('x'.repeat(1001)), () => new TextTokenizer(new Uint8Array([1, 2, 3]), 16)]) {
  try { bad(); errors.push('no error'); } catch (e) { errors.push(e.name + ': ' + e.message); }
}
window.done = { cases, vocab: t.vocabSize, apple: t.encode('emoji 🍎 here'), errors, alive: Array.from(t.encode('red apple').ids) };
</script>`);
  const done = await pageResult(dir);
  assert.equal(done.vocab, 30522);
  assert.ok(done.cases.length >= 10);
  for (const c of done.cases) assert.deepEqual(c.got, c.want, JSON.stringify(c.text));
  assert.deepEqual(done.apple.unknown, ['🍎']);
  assert.match(done.errors[0], /^InvalidOption: .*1001 characters/);
  assert.match(done.errors[1], /^BundleError: /);
  assert.deepEqual(done.alive, [101, 2417, 6207, 102], 'the module still works after the errors');
});
