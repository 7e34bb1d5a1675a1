// Shared helpers of the browser tests: a static file server on 127.0.0.1 and headless Chromium
// (Debian's, driven by playwright-core) with WebGPU enabled (SwiftShader on machines without a GPU).
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const OUT = path.join(ROOT, 'tests/browser/out');
fs.mkdirSync(OUT, { recursive: true });

const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.css': 'text/css', '.json': 'application/json', '.wasm': 'application/wasm', '.png': 'image/png', '.safetensors': 'application/octet-stream' };

/** Headers that make a page cross-origin isolated (SharedArrayBuffer: the threaded CPU engine). */
export const ISOLATION = { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' };

/** Serves `dir` (following symlinks) on an ephemeral 127.0.0.1 port; `isolated`: with ISOLATION;
 * `requests`: an array that receives every requested path. */
export function serve(dir, { isolated = false, requests } = {}) {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    requests?.push(url.pathname);
    let file = path.join(dir, decodeURIComponent(url.pathname));
    if (!file.startsWith(dir)) { res.writeHead(403).end(); return; }
    if (fs.existsSync(file) && fs.statSync(file).isDirectory()) file = path.join(file, 'index.html');
    fs.readFile(file, (err, data) => {
      if (err) { res.writeHead(404).end('not found'); return; }
      res.writeHead(200, { 'content-type': TYPES[path.extname(file)] || 'application/octet-stream', 'content-length': data.length, ...(isolated ? ISOLATION : {}) });
      res.end(data);
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ url: `http://127.0.0.1:${server.address().port}/`, close: () => server.close() })));
}

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--no-first-run', '--disable-quic', '--enable-unsafe-webgpu'],
  });
}

/** A new page that echoes console errors to the test log. */
export async function newPage(browser) {
  const page = await browser.newPage();
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') console.log(`[browser ${m.type()}] ${m.text()}`); });
  page.on('pageerror', (e) => console.log(`[pageerror] ${e.message}`));
  return page;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The site (web/site) in headless Chromium, loaded without generating (`?autostart=0&device=cpu`),
 * for the bench scripts that drive the package from its page: `{ page, close }`. */
export async function sitePage({ isolated = false } = {}) {
  const server = await serve(path.join(ROOT, 'web/site'), { isolated });
  const browser = await launch();
  const close = async () => { await browser.close(); server.close(); };
  try {
    const page = await newPage(browser);
    await page.goto(`${server.url}?autostart=0&device=cpu`);
    await page.waitForFunction(() => window.tessera?.ready || window.tessera?.lastError, null, { timeout: 10 * 60 * 1000 });
    return { page, close };
  } catch (e) {
    await close();
    throw e;
  }
}
