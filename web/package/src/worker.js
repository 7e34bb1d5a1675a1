// The Tessera model worker: owns the wasm module and the loaded model; answers typed messages
// { id, type: 'load' | 'generate' | 'reconstruct' | 'decode' | 'logits', ... } with 'progress',
// 'result' or 'error'.
import init, { loadModel } from '../dist/tessera_wasm.js';

const ready = init();
let model = null;

const CACHE = 'tessera-models-v1';

async function fetchBytes(url, sha256, useCache, report) {
  const key = `${url}#sha256=${sha256}`;
  const store = useCache && globalThis.caches ? await caches.open(CACHE).catch(() => null) : null;
  if (store) {
    const hit = await store.match(key);
    if (hit) {
      const bytes = new Uint8Array(await hit.arrayBuffer());
      report({ loaded: bytes.length, total: bytes.length, cached: true });
      return { bytes, fromCache: true, store, key };
    }
  }
  const res = await fetch(url);
  if (!res.ok) throw new Error(`fetching ${url}: HTTP ${res.status}`);
  const total = Number(res.headers.get('content-length')) || 0;
  const reader = res.body.getReader();
  const chunks = [];
  let loaded = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    loaded += value.length;
    report({ loaded, total, cached: false });
  }
  const bytes = new Uint8Array(loaded);
  let o = 0;
  for (const c of chunks) { bytes.set(c, o); o += c.length; }
  return { bytes, fromCache: false, store, key };
}

async function load({ modelUrl, device, cache, proposals }, progress) {
  await ready;
  const manifestUrl = new URL('manifest.json', modelUrl).href;
  const res = await fetch(manifestUrl, { cache: 'no-cache' });
  if (!res.ok) throw new Error(`fetching ${manifestUrl}: HTTP ${res.status}`);
  const text = await res.text();
  let manifest;
  try { manifest = JSON.parse(text); } catch (e) { throw new Error(`manifest is not valid JSON: ${e.message}`); }
  // Only the files asked for are downloaded: the tokenizer, plus the requested proposal networks.
  const wanted = proposals ?? Object.keys(manifest.proposals ?? {});
  if (!Array.isArray(wanted)) throw new Error('proposals must be an array of names');
  for (const p of wanted) if (!manifest.proposals?.[p]) throw new Error(`this bundle has no proposal network '${p}' (it has: ${Object.keys(manifest.proposals ?? {}).join(', ')})`);
  const files = {};
  for (const role of ['tokenizer', ...wanted]) {
    const f = manifest.files?.[role];
    if (!f) throw new Error(`missing file '${role}' in manifest`);
    files[role] = await fetchBytes(new URL(f.path, modelUrl).href, f.sha256, cache, (p) => progress({ stage: 'download', file: f.path, ...p }));
  }
  progress({ stage: 'init', device });
  try {
    model = await loadModel(text, Object.fromEntries(Object.entries(files).map(([k, v]) => [k, v.bytes])), device);
  } catch (e) {
    // A corrupt cache entry must not poison later loads: drop it so the next load refetches.
    for (const f of Object.values(files)) if (f.fromCache && f.store) await f.store.delete(f.key);
    throw e;
  }
  for (const f of Object.values(files)) if (!f.fromCache && f.store) await f.store.put(f.key, new Response(f.bytes)).catch(() => {});
  return model.info();
}

self.onmessage = async (e) => {
  const { id, type } = e.data;
  const progress = (event) => self.postMessage({ id, type: 'progress', event });
  try {
    let value;
    let transfer = [];
    if (type === 'load') {
      value = await load(e.data, progress);
    } else {
      if (!model) throw new Error('no model loaded');
      if (type === 'generate') {
        value = await model.generate(e.data.options, (ev) => self.postMessage({ id, type: 'progress', event: ev }));
        transfer = [value.pixels.buffer];
      } else if (type === 'reconstruct') {
        value = await model.reconstruct(e.data.rgba, e.data.count);
        transfer = [value.pixels.buffer];
      } else if (type === 'decode') {
        value = await model.decode(e.data.tokens);
        transfer = [value.pixels.buffer];
      } else if (type === 'logits') {
        value = await model.proposalLogits(e.data.proposal, e.data.classIndex, [e.data.tokens]);
      } else {
        throw new Error(`unknown message type '${type}'`);
      }
    }
    self.postMessage({ id, type: 'result', value }, transfer);
  } catch (err) {
    self.postMessage({ id, type: 'error', message: String(err?.message ?? err) });
  }
};
