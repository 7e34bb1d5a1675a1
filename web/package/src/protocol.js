// The one definition of what crosses between the page (`index.js`) and the model worker
// (`worker.js`): message types, option names, devices and error kinds. Both sides import it.

/** Requests the page sends; the worker answers each with 'progress'* then 'result' or 'error'. */
export const REQUEST = Object.freeze({ load: 'load', generate: 'generate', reconstruct: 'reconstruct', decode: 'decode', logits: 'logits', gpuCounters: 'gpuCounters' });
/** Sent by the page to stop request `target` (a download, or a generation between two steps). */
export const CANCEL = 'cancel';
/** Replies of the worker. */
export const REPLY = Object.freeze({ progress: 'progress', result: 'result', error: 'error' });

export const DEVICES = Object.freeze(['auto', 'webgpu', 'cpu']);

/** Options of `generate` (camelCase, as the wasm API reads them). */
export const GENERATE_OPTIONS = Object.freeze(['proposal', 'class', 'prompt', 'count', 'seed', 'temperature', 'topK', 'topP', 'guidance', 'steps', 'confidenceNoise', 'given', 'previewEvery']);

/**
 * Error kinds (`error.name` and `error.code`): what a caller can branch on.
 * BundleError: the bundle is unreadable or inconsistent (checksum, manifest, weights);
 * InvalidOption / InvalidTokens: a bad argument (nothing ran; the generator stays usable);
 * DeviceError: the device failed; NetworkError: a download failed;
 * AbortError: cancelled through an AbortSignal; Disposed: the generator was disposed;
 * WorkerCrashed: the worker died (the generator is unusable).
 */
export const ERROR_KINDS = Object.freeze(['BundleError', 'InvalidOption', 'InvalidTokens', 'DeviceError', 'NetworkError', 'AbortError', 'Disposed', 'WorkerCrashed', 'Error']);

export class TesseraError extends Error {
  constructor(kind, message) {
    super(message);
    this.name = ERROR_KINDS.includes(kind) ? kind : 'Error';
    this.code = this.name;
  }
}

/** An error as a plain object for postMessage. */
export function errorToMessage(err) {
  return { name: err?.name && ERROR_KINDS.includes(err.name) ? err.name : 'Error', message: String(err?.message ?? err) };
}

export function errorFromMessage({ name, message }) {
  return new TesseraError(name, message);
}

/** The Cache API ignores URL fragments, so the checksum goes into the query of the cache key. */
export function cacheKey(url, sha256) {
  const u = new URL(url);
  u.searchParams.set('tessera-sha256', sha256);
  return u.href;
}
