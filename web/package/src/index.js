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

export class Generator {
  /** @internal */
  constructor(client, worker, info) {
    this._client = client;
    this._worker = worker;
    this.info = info;
  }

  /** Generates `count` images of `class`; resolves with ImageData objects and their tokens. */
  async generate(options = {}) {
    const { onToken, onPreview, ...opts } = options;
    const r = await this._client.call('generate', { options: opts }, (ev) => {
      onToken?.({ position: ev.position, total: ev.total, tokens: ev.tokens });
      if (ev.preview) {
        const size = this.info.imageSize;
        const n = ev.preview.length / (size * size * 4);
        const previews = [];
        for (let i = 0; i < n; i++) previews.push(new ImageData(ev.preview.slice(i * size * size * 4, (i + 1) * size * size * 4), size, size));
        onPreview?.({ position: ev.position, total: ev.total, images: previews });
      }
    });
    return { images: toImages(r), pixels: r.pixels, tokens: r.tokens.map((t) => Array.from(t)), device: r.device, ms: r.ms, msPerImage: r.msPerImage, width: r.width, height: r.height };
  }

  /** Decodes token grids (raster order, one array per image) to images. */
  async decode(tokens) {
    const r = await this._client.call('decode', { tokens: tokens.map((t) => Array.from(t)) });
    return { images: toImages(r), pixels: r.pixels, device: r.device, width: r.width, height: r.height };
  }

  /** Proposal-network logits for `[class] + tokens` at every position (Float32Array). */
  proposalLogits(classIndex, tokens) {
    return this._client.call('logits', { classIndex, tokens: Array.from(tokens) });
  }

  /** Stops the worker; the generator cannot be used afterwards. */
  dispose() {
    this._worker.terminate();
  }
}

/**
 * Loads a model bundle (a folder with manifest.json and safetensors files) in a Web Worker.
 * Weights are cached with the Cache API (keyed by checksum) and verified in wasm.
 */
export async function loadGenerator({ modelUrl, device = 'auto', onProgress, cache = true, workerUrl } = {}) {
  if (!modelUrl) throw new Error('loadGenerator: modelUrl is required');
  const worker = new Worker(workerUrl ?? new URL('./worker.js', import.meta.url), { type: 'module' });
  const client = new WorkerClient(worker);
  const base = new URL(modelUrl.endsWith('/') ? modelUrl : modelUrl + '/', globalThis.location?.href);
  try {
    const info = await client.call('load', { modelUrl: base.href, device, cache }, onProgress);
    return new Generator(client, worker, info);
  } catch (e) {
    worker.terminate();
    throw e;
  }
}
