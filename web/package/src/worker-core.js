// The body of the Tessera model worker: owns the wasm module and the loaded model, and answers the
// requests of `protocol.js` ({ id, type, ... }) with 'progress' events and one 'result' or 'error'. A
// 'cancel' message stops a download, or a generation between two of its steps. Two entry points run
// it, one per wasm engine, each importing its engine statically (no code splitting inside a worker,
// which bundlers' default worker format cannot do): `worker.js` (full engine: WebGPU + CPU) and
// `worker-cpu.js` (the CPU-only engine, a fraction of the download).
import { CANCEL, DEVICES, REPLY, REQUEST, TesseraError, cacheKey, errorToMessage } from './protocol.js';
import { countGpuCalls, gpuCounters } from './gpu-counters.js';

let ready = null;
let loadModel = null;

/** Starts the worker over one engine: `init` (the wasm-bindgen module's default export) and its `loadModel`. */
export function startWorker(init, engineLoadModel) {
  countGpuCalls(globalThis);
  // the engine's download starts with the worker, beside the bundle's
  ready = init();
  ready.catch(() => {});
  loadModel = engineLoadModel;
  self.onmessage = onMessage;
}

let model = null;
/** Ids of requests cancelled by the page, and the AbortControllers of running downloads. */
const cancelled = new Set();
const downloads = new Map();

const CACHE = 'tessera-models-v2';

/** Resolves after the worker has handled the messages already queued (a 'cancel' among them). */
const channel = new MessageChannel();
const waiting = [];
channel.port1.onmessage = () => waiting.shift()?.();
function yieldToMessages() {
  return new Promise((resolve) => { waiting.push(resolve); channel.port2.postMessage(0); });
}

async function fetchBytes(url, sha256, useCache, signal, report) {
  const key = cacheKey(url, sha256);
  const store = useCache && globalThis.caches ? await caches.open(CACHE).catch(() => null) : null;
  if (store) {
    const hit = await store.match(key);
    if (hit) {
      const bytes = new Uint8Array(await hit.arrayBuffer());
      report({ loaded: bytes.length, total: bytes.length, cached: true });
      return { bytes, fromCache: true, store, key };
    }
  }
  let res;
  try {
    res = await fetch(url, { signal });
  } catch (e) {
    if (signal.aborted) throw new TesseraError('AbortError', 'load cancelled');
    throw new TesseraError('NetworkError', `fetching ${url}: ${e.message}`);
  }
  if (!res.ok) throw new TesseraError('NetworkError', `fetching ${url}: HTTP ${res.status}`);
  const total = Number(res.headers.get('content-length')) || 0;
  const reader = res.body.getReader();
  const chunks = [];
  let loaded = 0;
  for (;;) {
    let chunk;
    try {
      chunk = await reader.read();
    } catch (e) {
      if (signal.aborted) throw new TesseraError('AbortError', 'load cancelled');
      throw new TesseraError('NetworkError', `fetching ${url}: ${e.message}`);
    }
    if (chunk.done) break;
    chunks.push(chunk.value);
    loaded += chunk.value.length;
    report({ loaded, total, cached: false });
  }
  const bytes = new Uint8Array(loaded);
  let o = 0;
  for (const c of chunks) { bytes.set(c, o); o += c.length; }
  return { bytes, fromCache: false, store, key };
}

async function load(id, { modelUrl, device, cache, proposals }, progress) {
  if (!DEVICES.includes(device)) throw new TesseraError('InvalidOption', `unknown device '${device}': use ${DEVICES.map((d) => `"${d}"`).join(', ')}`);
  const controller = new AbortController();
  downloads.set(id, controller);
  try {
    const manifestUrl = new URL('manifest.json', modelUrl).href;
    let res;
    try {
      res = await fetch(manifestUrl, { cache: 'no-cache', signal: controller.signal });
    } catch (e) {
      if (controller.signal.aborted) throw new TesseraError('AbortError', 'load cancelled');
      throw new TesseraError('NetworkError', `fetching ${manifestUrl}: ${e.message}`);
    }
    if (!res.ok) throw new TesseraError('NetworkError', `fetching ${manifestUrl}: HTTP ${res.status}`);
    const text = await res.text();
    let manifest;
    try { manifest = JSON.parse(text); } catch (e) { throw new TesseraError('BundleError', `manifest is not valid JSON: ${e.message}`); }
    // Only the files asked for are downloaded: the tokenizer, plus the requested proposal networks.
    const wanted = proposals ?? Object.keys(manifest.proposals ?? {});
    for (const p of wanted) if (!manifest.proposals?.[p]) throw new TesseraError('InvalidOption', `this bundle has no proposal network '${p}' (it has: ${Object.keys(manifest.proposals ?? {}).join(', ')})`);
    const files = {};
    // a text-to-image bundle also needs its prompt tokenizer (a few KB) and, over a pretrained
    // text encoder (all-MiniLM-L6-v2), that encoder's weights (tens of MB, cached like the rest)
    const textRoles = manifest.text ? ['text_tokenizer', ...(manifest.files?.text_encoder ? ['text_encoder'] : [])] : [];
    for (const role of ['tokenizer', ...wanted, ...textRoles]) {
      const f = manifest.files?.[role];
      if (!f) throw new TesseraError('BundleError', `missing file '${role}' in manifest`);
      try {
        files[role] = await fetchBytes(new URL(f.path, modelUrl).href, f.sha256, cache, controller.signal, (p) => progress({ stage: 'download', file: f.path, ...p }));
      } catch (e) {
        // the pretrained encoder is not committed: the server's owner writes it once
        if (role === 'text_encoder' && e.name === 'NetworkError') throw new TesseraError('NetworkError', `${e.message} — the pretrained text encoder (${(f.bytes / 1e6).toFixed(1)} MB) is not on this server: write it with \`tessera-train export-text-encoder --bundle <bundle folder>\``);
        throw e;
      }
    }
    if (cancelled.has(id)) throw new TesseraError('AbortError', 'load cancelled');
    progress({ stage: 'init', device });
    try {
      await ready;
    } catch (e) {
      throw new TesseraError('NetworkError', `loading the wasm engine: ${e.message}`);
    }
    try {
      const next = await loadModel(text, Object.fromEntries(Object.entries(files).map(([k, v]) => [k, v.bytes])), device);
      model?.free();
      model = next;
    } catch (e) {
      // A corrupt cache entry must not poison later loads: drop it so the next load refetches.
      for (const f of Object.values(files)) if (f.fromCache && f.store) await f.store.delete(f.key);
      throw e;
    }
    for (const f of Object.values(files)) if (!f.fromCache && f.store) await f.store.put(f.key, new Response(f.bytes)).catch(() => {});
    const info = model.info();
    progress({ stage: 'ready', device: info.device });
    return info;
  } finally {
    downloads.delete(id);
  }
}

function need() {
  if (!model) throw new TesseraError('InvalidOption', 'no model loaded');
  return model;
}

async function handle(id, data, progress) {
  switch (data.type) {
    case REQUEST.load:
      return [await load(id, data, progress), []];
    case REQUEST.generate: {
      // After each step: post the event, let queued messages run, go on unless cancelled.
      const onStep = (ev) => {
        progress(ev);
        return yieldToMessages().then(() => !cancelled.has(id));
      };
      const value = await need().generate(data.options, onStep);
      return [value, [value.pixels.buffer]];
    }
    case REQUEST.reconstruct: {
      const value = await need().reconstruct(data.rgba, data.count);
      return [value, [value.pixels.buffer]];
    }
    case REQUEST.decode: {
      const value = await need().decode(data.tokens);
      return [value, [value.pixels.buffer]];
    }
    case REQUEST.gpuCounters:
      return [gpuCounters(), []];
    case REQUEST.logits:
      return [await need().proposalLogits(data.proposal, data.classIndex, [data.tokens], data.prompt ?? undefined), []];
    default:
      throw new TesseraError('InvalidOption', `unknown message type '${data.type}'`);
  }
}

async function onMessage(e) {
  const { id, type } = e.data;
  if (type === CANCEL) {
    cancelled.add(e.data.target);
    downloads.get(e.data.target)?.abort();
    return;
  }
  const progress = (event) => self.postMessage({ id, type: REPLY.progress, event });
  try {
    const [value, transfer] = await handle(id, e.data, progress);
    self.postMessage({ id, type: REPLY.result, value }, transfer);
  } catch (err) {
    self.postMessage({ id, type: REPLY.error, error: errorToMessage(err) });
  } finally {
    cancelled.delete(id);
  }
}
