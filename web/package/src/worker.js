// The model worker over the full engine (WebGPU + CPU); `worker-core.js` is its body.
import init, { loadModel } from '../dist/tessera_wasm.js';
import { startWorker } from './worker-core.js';

startWorker(init, loadModel);
