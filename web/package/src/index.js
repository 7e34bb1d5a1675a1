// tessera-web: load a Tessera model bundle and generate images in a Web Worker.
// The model runs in `worker.js` (wasm, WebGPU or CPU); this module is a typed message client.

let nextId = 1;

class WorkerClient {
  constructor(worker) {
    this.worker = worker;
    this.pending = new Map();
    worker.onmessage = (e) => {
      const { id, type } = e.data;
      const p = this.pending.get(id);
      if (!p) return;
      if (type === 'progress') p.onProgress?.(e.data.event);
      else if (type === 'result') { this.pending.delete(id); p.resolve(e.data.value); }
      else if (type === 'error') { this.pending.delete(id); p.reject(new Error(e.data.message)); }
    };
    worker.onerror = (e) => {
      const err = new Error(`tessera worker failed: ${e.message || 'unknown error'}`);
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
  }
  call(type, args, onProgress) {
    const id = nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, onProgress });
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

/** RGBA bytes of `images` scaled to size x size (ImageData of that size is used as is). */
async function toModelPixels(images, size) {
  const out = new Uint8Array(images.length * size * size * 4);
  for (const [i, img] of images.entries()) {
    let data;
    if (img instanceof ImageData && img.width === size && img.height === size) {
      data = img.data;
    } else {
      const bitmap = await createImageBitmap(img);
      const canvas = new OffscreenCanvas(size, size);
      const ctx = canvas.getContext('2d');
      ctx.drawImage(bitmap, 0, 0, size, size);
      data = ctx.getImageData(0, 0, size, size).data;
    }
    out.set(data, i * size * size * 4);
  }
  return out;
}

const GENERATE_OPTIONS = new Set(['proposal', 'class', 'count', 'seed', 'temperature', 'topK', 'topP', 'guidance', 'steps', 'confidenceNoise', 'given', 'previewEvery']);

export class Generator {
  /** @internal */
  constructor(client, worker, info) {
    this._client = client;
    this._worker = worker;
    this.info = info;
  }

  /**
   * Generates `count` images of `class` with the AR or NAR proposal network; resolves with
   * ImageData objects and their tokens. `onStep` gets the tokens set by every step (one per image
   * for AR, many for NAR); `onPreview` decoded previews (unsampled positions blank).
   */
  async generate(options = {}) {
    const { onToken, onStep, onPreview, ...opts } = options;
    // serde-wasm-bindgen reads only the fields it knows: reject typos here so they do not pass silently
    const unknown = Object.keys(opts).filter((k) => !GENERATE_OPTIONS.has(k));
    if (unknown.length) throw new Error(`invalid option: unknown option(s) ${unknown.join(', ')}; expected one of ${[...GENERATE_OPTIONS].join(', ')}`);
    const r = await this._client.call('generate', { options: opts }, (ev) => {
      const revealed = ev.revealed.map((flat) => {
        const pairs = [];
        for (let i = 0; i < flat.length; i += 2) pairs.push([flat[i], flat[i + 1]]);
        return pairs;
      });
      onStep?.({ position: ev.position, total: ev.total, revealed });
      onToken?.({ position: ev.position, total: ev.total, tokens: revealed.map((r) => r.at(-1)?.[1]) });
      if (ev.preview) onPreview?.({ position: ev.position, total: ev.total, images: splitImages(ev.preview, this.info.imageSize) });
    });
    return { images: toImages(r), pixels: r.pixels, tokens: r.tokens.map((t) => Array.from(t)), proposal: r.proposal, device: r.device, ms: r.ms, msPerImage: r.msPerImage, width: r.width, height: r.height };
  }

  /**
   * Inpainting with the NAR proposal network: keeps `tokens[i][p]` where `mask[i][p]` is false and
   * resamples the positions where it is true (one grid per image, raster order).
   */
  inpaint({ tokens, mask, ...options } = {}) {
    if (!Array.isArray(tokens) || !Array.isArray(mask) || tokens.length !== mask.length) {
      return Promise.reject(new Error('inpaint: tokens and mask must be arrays with one grid per image'));
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
    const r = await this._client.call('reconstruct', { rgba, count: list.length });
    return { images: toImages(r), pixels: r.pixels, tokens: r.tokens.map((t) => Array.from(t)), device: r.device, width: r.width, height: r.height };
  }

  /** Decodes token grids (raster order, one array per image) to images. */
  async decode(tokens) {
    const r = await this._client.call('decode', { tokens: tokens.map((t) => Array.from(t)) });
    return { images: toImages(r), pixels: r.pixels, device: r.device, width: r.width, height: r.height };
  }

  /**
   * Proposal-network logits (Float32Array): AR, `[class] + tokens` at every position; NAR, a full
   * grid (`null` = masked).
   */
  proposalLogits(proposal, classIndex, tokens) {
    return this._client.call('logits', { proposal, classIndex, tokens: Array.from(tokens) });
  }

  /** Stops the worker; the generator cannot be used afterwards. */
  dispose() {
    this._worker.terminate();
  }
}

/**
 * Loads a model bundle (a folder with manifest.json and safetensors files) in a Web Worker.
 * `proposals`: the proposal networks to download (default: all of the bundle's; `[]` for
 * reconstruction only). Weights are cached with the Cache API (keyed by checksum) and verified in wasm.
 */
export async function loadGenerator({ modelUrl, device = 'auto', proposals, onProgress, cache = true, workerUrl } = {}) {
  if (!modelUrl) throw new Error('loadGenerator: modelUrl is required');
  const worker = new Worker(workerUrl ?? new URL('./worker.js', import.meta.url), { type: 'module' });
  const client = new WorkerClient(worker);
  const base = new URL(modelUrl.endsWith('/') ? modelUrl : modelUrl + '/', globalThis.location?.href);
  try {
    const info = await client.call('load', { modelUrl: base.href, device, cache, proposals }, onProgress);
    return new Generator(client, worker, info);
  } catch (e) {
    worker.terminate();
    throw e;
  }
}
