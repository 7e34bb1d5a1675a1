// The model worker over the CPU-only engine (no wgpu / cubecl inside: a fraction of the full engine's
// download); `worker-core.js` is its body.
import init, { loadModel } from '../dist/tessera_wasm_cpu.js';
import { startWorker } from './worker-core.js';

startWorker(init, loadModel);
