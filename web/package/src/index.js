// tessera-web: load a Tessera model bundle and generate images in a Web Worker.
// The model runs in `worker.js` (wasm, WebGPU or CPU); this module is a typed message client
// (`protocol.js`). Every method returns a Promise that settles: with the result, or rejected with a
// `TesseraError` whose `name`/`code` says what went wrong (also after `dispose()` or a worker crash).
import { CANCEL, DEVICES, GENERATE_OPTIONS, REPLY, REQUEST, TesseraError, errorFromMessage } from './protocol.js';

export { TesseraError, ERROR_KINDS } from './protocol.js';

let nextId = 1;

function aborted(signal, what) {
  return new TesseraError('AbortError', `${what} cancelled${signal.reason?.message ? `: ${signal.reason.message}` : ''}`);
}

class WorkerClient {
  constructor(worker) {
    this.worker = worker;
    this.pending = new Map();
    /** Why no further call can succeed ('Disposed' / 'WorkerCrashed'), once it is so. */
    this.dead = null;
    worker.onmessage = (e) => {
      const { id, type } = e.data;
      const p = this.pending.get(id);
      if (!p) return;
      if (type === REPLY.progress) p.onProgress?.(e.data.event);
      else if (type === REPLY.result) this.settle(id, (q) => q.resolve(e.data.value));
      else if (type === REPLY.error) this.settle(id, (q) => q.reject(errorFromMessage(e.data.error)));
    };
    const crash = (e) => this.kill(new TesseraError('WorkerCrashed', `tessera worker failed: ${e?.message || 'unknown error'}`));
    worker.onerror = crash;
    worker.onmessageerror = crash;
  }
  settle(id, f) {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    p.cleanup?.();
    f(p);
  }
  /** Rejects every pending call and every later one with `err`; stops the worker. */
  kill(err) {
    if (this.dead) return;
    this.dead = err;
    for (const id of [...this.pending.keys()]) this.settle(id, (p) => p.reject(err));
    this.worker.terminate();
  }
  call(type, args, { onProgress, signal, what = type } = {}) {
    if (this.dead) return Promise.reject(new TesseraError(this.dead.name, this.dead.message));
    if (signal?.aborted) return Promise.reject(aborted(signal, what));
    const id = nextId++;
    return new Promise((resolve, reject) => {
      const entry = { resolve, reject, onProgress };
      if (signal) {
        // Reject at once; the worker stops the download, or the generation after its current step.
        const onAbort = () => {
          this.worker.postMessage({ type: CANCEL, target: id });
          this.settle(id, (p) => p.reject(aborted(signal, what)));
        };
        signal.addEventListener('abort', onAbort, { once: true });
        entry.cleanup = () => signal.removeEventListener('abort', onAbort);
      }
      this.pending.set(id, entry);
      this.worker.postMessage({ id, type, ...args });
    });
  }
}

function toImages(r) {
  const size = r.width * r.height * 4;
  const images = [];
  for (let i = 0; i < r.count; i++) {
    images.push(new ImageData(new Uint8ClampedArray(r.pixels.buffer, r.pixels.byteOffset + i * size, size), r.width, r.height));
  }
  return images;
}

function splitImages(pixels, size) {
  const n = pixels.length / (size * size * 4);
  const out = [];
  for (let i = 0; i < n; i++) out.push(new ImageData(pixels.slice(i * size * size * 4, (i + 1) * size * size * 4), size, size));
  return out;
}

/** RGBA bytes of `images` fitted into size x size (ImageData of that size is used as is). */
async function toModelPixels(images, size) {
  const out = new Uint8Array(images.length * size * size * 4);
  for (const [i, img] of images.entries()) {
    let data;
    if (img instanceof ImageData && img.width === size && img.height === size) {
      data = img.data;
    } else {
      let bitmap;
      try {
        bitmap = await createImageBitmap(img);
      } catch (e) {
        throw new TesseraError('InvalidOption', `reconstruct: image ${i} is not an image (${e.message})`);
      }
      // fitted inside the square, centred, keeping its aspect; the rest stays transparent, which
      // the model composites on its training background
      const canvas = new OffscreenCanvas(size, size);
      const ctx = canvas.getContext('2d');
      const s = size / Math.max(bitmap.width, bitmap.height);
      const w = bitmap.width * s, h = bitmap.height * s;
      ctx.drawImage(bitmap, (size - w) / 2, (size - h) / 2, w, h);
      data = ctx.getImageData(0, 0, size, size).data;
    }
    out.set(data, i * size * size * 4);
  }
  return out;
}

const invalid = (kind, message) => Promise.reject(new TesseraError(kind, message));

export class Generator {
  /** @internal */
  constructor(client, info) {
    this._client = client;
    this.info = info;
  }

  /** Tokens per image (grid rows x columns). */
  get tokensPerImage() {
    return this.info.grid[0] * this.info.grid[1];
  }

  /**
   * Generates `count` images of `class` with the AR or NAR proposal network; resolves with
   * ImageData objects and their tokens. `onStep` gets the tokens set by every step (one per image
   * for AR, many for NAR); `onPreview` decoded previews (unsampled positions blank). `signal` (an
   * AbortSignal) cancels: the promise rejects with an AbortError and the generator stays usable.
   */
  async generate(options = {}) {
    const { onToken, onStep, onPreview, signal, ...opts } = options ?? {};
    // serde-wasm-bindgen reads only the fields it knows: reject typos here so they do not pass silently
    const unknown = Object.keys(opts).filter((k) => !GENERATE_OPTIONS.includes(k));
    if (unknown.length) throw new TesseraError('InvalidOption', `invalid option: unknown option(s) ${unknown.join(', ')}; expected one of ${GENERATE_OPTIONS.join(', ')}`);
    if (opts.prompt !== undefined && typeof opts.prompt !== 'string') throw new TesseraError('InvalidOption', `invalid option: prompt must be a string ("" = unconditional), got ${typeof opts.prompt}`);
    const size = this.info.imageSize;
    const r = await this._client.call(REQUEST.generate, { options: opts }, {
      signal,
      onProgress: (ev) => {
        if (onStep || onToken) {
          // the worker's event is flat ([position, token, ...] of every image, and a count per image)
          const revealed = [];
          let at = 0;
          for (const n of ev.revealedCounts) {
            const pairs = [];
            for (let j = 0; j < n; j++, at += 2) pairs.push([ev.revealed[at], ev.revealed[at + 1]]);
            revealed.push(pairs);
          }
          onStep?.({ position: ev.position, total: ev.total, revealed });
          onToken?.({ position: ev.position, total: ev.total, tokens: revealed.map((r) => r.at(-1)?.[1]) });
        }
        if (ev.preview) onPreview?.({ position: ev.position, total: ev.total, images: splitImages(ev.preview, size) });
      },
    });
    const out = { images: toImages(r), pixels: r.pixels, tokens: r.tokens.map((t) => Array.from(t)), proposal: r.proposal, device: r.device, ms: r.ms, msPerImage: r.msPerImage, width: r.width, height: r.height };
    if (r.prompt) out.prompt = { ids: Array.from(r.prompt.ids), unknown: r.prompt.unknown, unseen: r.prompt.unseen, truncated: r.prompt.truncated };
    return out;
  }

  /**
   * Inpainting with the NAR proposal network: keeps `tokens[i][p]` where `mask[i][p]` is false and
   * resamples the positions where it is true (one full grid per image, raster order, and one mask
   * entry per token: a missing entry is an error, not "keep").
   */
  inpaint({ tokens, mask, ...options } = {}) {
    const n = this.tokensPerImage;
    if (!Array.isArray(tokens) || !Array.isArray(mask) || tokens.length === 0 || tokens.length !== mask.length) {
      return invalid('InvalidTokens', 'inpaint: tokens and mask must be non-empty arrays with one grid per image');
    }
    for (let i = 0; i < tokens.length; i++) {
      if (tokens[i]?.length !== n || mask[i]?.length !== n) {
        return invalid('InvalidTokens', `inpaint: grid ${i} needs ${n} tokens and ${n} mask entries, got ${tokens[i]?.length} and ${mask[i]?.length}`);
      }
      for (let p = 0; p < n; p++) {
        if (typeof mask[i][p] !== 'boolean') return invalid('InvalidTokens', `inpaint: mask[${i}][${p}] is ${mask[i][p]}, expected true or false`);
      }
    }
    const given = tokens.map((row, i) => Array.from(row, (t, p) => (mask[i][p] ? null : t)));
    return this.generate({ proposal: 'nar', ...options, count: tokens.length, given });
  }

  /**
   * Encodes images with the tokenizer and decodes the tokens: resolves with the reconstructions and
   * the token maps. Accepts ImageData, ImageBitmap, canvases or Blobs (scaled to the model size).
   */
  async reconstruct(images) {
    const list = Array.isArray(images) ? images : [images];
    const rgba = await toModelPixels(list, this.info.imageSize);
    const r = await this._client.call(REQUEST.reconstruct, { rgba, count: list.length });
    return { images: toImages(r), pixels: r.pixels, tokens: r.tokens.map((t) => Array.from(t)), device: r.device, width: r.width, height: r.height };
  }

  /** Decodes token grids (raster order, one array per image) to images. */
  async decode(tokens) {
    if (!Array.isArray(tokens)) throw new TesseraError('InvalidTokens', 'decode: tokens must be an array of token grids');
    const n = this.tokensPerImage;
    // one flat Uint32Array crosses into wasm in one copy; values are checked here, where a
    // typed array would wrap them silently (the codebook's range is checked in wasm)
    const flat = new Uint32Array(tokens.length * n);
    for (let i = 0; i < tokens.length; i++) {
      const row = tokens[i];
      if (row == null || row.length !== n) throw new TesseraError('InvalidTokens', `decode: grid ${i} has ${row?.length ?? 0} tokens, expected ${n}`);
      for (let j = 0; j < n; j++) {
        const v = row[j];
        if (!Number.isInteger(v) || v < 0 || v >= 2 ** 32) throw new TesseraError('InvalidTokens', `decode: token ${j} of grid ${i} is not a non-negative integer: ${v}`);
        flat[i * n + j] = v;
      }
    }
    const r = await this._client.call(REQUEST.decode, { tokens: flat }, {});
    return { images: toImages(r), pixels: r.pixels, device: r.device, width: r.width, height: r.height };
  }

  /**
   * Proposal-network logits (Float32Array): AR, `[class] + tokens` at every position; NAR, a full
   * grid (`null` = masked). Text-to-image bundles take `prompt` instead of the class.
   */
  async proposalLogits(proposal, classIndex, tokens, prompt) {
    if (tokens == null || typeof tokens.length !== 'number') throw new TesseraError('InvalidTokens', 'proposalLogits: tokens must be an array');
    if (prompt !== undefined && typeof prompt !== 'string') throw new TesseraError('InvalidOption', 'proposalLogits: prompt must be a string');
    return this._client.call(REQUEST.logits, { proposal, classIndex, tokens: Array.from(tokens), prompt });
  }

  /**
   * WebGPU calls the model's worker has made since it started (compute dispatches, queue submits,
   * buffer writes, read-backs, pipelines/buffers/bind groups created): a diagnostic; take two
   * snapshots around a call and subtract. All zero on the CPU.
   */
  gpuCounters() {
    return this._client.call(REQUEST.gpuCounters, {});
  }

  /** Stops the worker: pending calls reject with a 'Disposed' error, and so does every later call. */
  dispose() {
    this._client.kill(new TesseraError('Disposed', 'the generator was disposed'));
  }
}

/** Whether this browser offers a WebGPU adapter (asked once per page). */
let adapterProbe = null;
function hasWebGpuAdapter() {
  adapterProbe ??= Promise.resolve()
    .then(() => globalThis.navigator?.gpu?.requestAdapter?.())
    .then((a) => !!a, () => false);
  return adapterProbe;
}

/**
 * Loads a model bundle (a folder with manifest.json and safetensors files) in a Web Worker.
 * `proposals`: the proposal networks to download (default: all of the bundle's; `[]` for
 * reconstruction only). Weights are cached with the Cache API (keyed by checksum) and verified in
 * wasm. Options are checked before anything is downloaded; `signal` cancels the download.
 */
export async function loadGenerator({ modelUrl, device = 'auto', proposals, onProgress, cache = true, workerUrl, threads, signal } = {}) {
  if (typeof modelUrl !== 'string' || !modelUrl) throw new TesseraError('InvalidOption', 'loadGenerator: modelUrl (a string) is required');
  if (!DEVICES.includes(device)) throw new TesseraError('InvalidOption', `loadGenerator: unknown device '${device}': use ${DEVICES.map((d) => `"${d}"`).join(', ')}`);
  if (proposals !== undefined && !(Array.isArray(proposals) && proposals.every((p) => typeof p === 'string'))) {
    throw new TesseraError('InvalidOption', 'loadGenerator: proposals must be an array of names (e.g. ["ar", "nar"])');
  }
  const isolated = globalThis.crossOriginIsolated === true;
  if (threads !== undefined && !(Number.isInteger(threads) && threads >= 1 && threads <= 64)) {
    throw new TesseraError('InvalidOption', `loadGenerator: threads must be an integer from 1 to 64, got ${threads}`);
  }
  if (threads > 1 && !isolated) {
    throw new TesseraError('InvalidOption', 'loadGenerator: threads > 1 needs a cross-origin isolated page (Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp)');
  }
  if (signal?.aborted) throw aborted(signal, 'load');
  // Two engines: the CPU-only one (a fraction of the download) for 'cpu', and for 'auto' when the
  // browser has no WebGPU adapter; the full one (WebGPU + CPU, with its checked fallback) otherwise.
  // The literal `new Worker(new URL('./worker.js', import.meta.url), ...)` is the pattern bundlers
  // (Vite, webpack 5) recognise to bundle each worker with its wasm.
  const cpuOnly = device === 'cpu' || (device === 'auto' && !(await hasWebGpuAdapter()));
  // `threads` > 1 on the CPU of a cross-origin isolated page: the threaded CPU engine. Opt-in: on 2
  // cores it was measured faster only for NAR at batch 8 and the decoder, slower for AR (docs/perf.md).
  // Its URL is not written as the bundler pattern above: a bundler's default worker format cannot hold
  // the pool's workers; unbundled (or where the threaded worker fails to start) the single-threaded
  // engine takes over, and `info.threadsFallbackReason` says why.
  const threaded = cpuOnly && !workerUrl && threads > 1;
  const base = new URL(modelUrl.endsWith('/') ? modelUrl : modelUrl + '/', globalThis.location?.href);
  const start = (worker) => {
    const client = new WorkerClient(worker);
    return client.call(REQUEST.load, { modelUrl: base.href, device, cache, proposals }, { onProgress, signal, what: 'load' })
      .then((info) => new Generator(client, info), (e) => { client.kill(e); throw e; });
  };
  let fallbackReason;
  if (threaded) {
    const url = new URL('./worker-cpu-mt.js', import.meta.url);
    url.searchParams.set('threads', String(threads));
    try {
      return await start(new Worker(url, { type: 'module' }));
    } catch (e) {
      // a bundle that cannot be fetched or read fails the same way on one thread: no second download
      const bundleFault = e?.name === 'BundleError' || (e?.name === 'NetworkError' && String(e?.message).includes(base.href));
      if (e?.name === 'AbortError' || signal?.aborted || bundleFault) throw e;
      fallbackReason = `the threaded CPU engine did not start (${e?.message ?? e}); single-threaded instead`;
    }
  }
  const generator = await start(workerUrl
    ? new Worker(workerUrl, { type: 'module' })
    : cpuOnly
      ? new Worker(new URL('./worker-cpu.js', import.meta.url), { type: 'module' })
      : new Worker(new URL('./worker.js', import.meta.url), { type: 'module' }));
  if (fallbackReason) generator.info.threadsFallbackReason = fallbackReason;
  return generator;
}
