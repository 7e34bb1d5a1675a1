// The model worker over the threaded CPU engine: the CPU-only engine with burn flex's large matrix
// products, convolutions and element-wise maps split over a pool of wasm threads (wasm-bindgen-rayon;
// the page must be cross-origin isolated). The pool's size comes in the worker's URL (`?threads=n`,
// set by `loadGenerator`); `worker-core.js` is its body.
import init, { initThreadPool, loadModel } from '../dist/tessera_wasm_cpu_mt.js';
import { startWorker } from './worker-core.js';

const threads = Number(new URL(self.location.href).searchParams.get('threads')) || 1;
startWorker(async () => {
  await init();
  await initThreadPool(threads);
}, loadModel);
