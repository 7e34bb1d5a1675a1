// Counts the WebGPU calls the engine makes (compute dispatches, queue submissions, buffer writes,
// read-backs, pipelines and buffers created), by wrapping those methods of the WebGPU prototypes of
// this worker once. The engine (wgpu's WebGPU backend through wasm-bindgen) calls them as ordinary
// methods, so every call it makes is counted; the cost is one increment per call. `gpuCounters()`
// returns a snapshot; the difference of two snapshots is what the work between them cost, e.g. the
// dispatches and read-backs of one AR sampling step (`scripts/bench.sh` reports them).

const COUNTED = [
  ['GPUComputePassEncoder', 'dispatchWorkgroups', 'dispatches'],
  ['GPUComputePassEncoder', 'dispatchWorkgroupsIndirect', 'dispatches'],
  ['GPUCommandEncoder', 'beginComputePass', 'computePasses'],
  ['GPUCommandEncoder', 'copyBufferToBuffer', 'bufferCopies'],
  ['GPUQueue', 'submit', 'submits'],
  ['GPUQueue', 'writeBuffer', 'bufferWrites'],
  ['GPUBuffer', 'mapAsync', 'readbacks'],
  ['GPUDevice', 'createBuffer', 'buffersCreated'],
  ['GPUDevice', 'createComputePipeline', 'pipelinesCreated'],
  ['GPUDevice', 'createComputePipelineAsync', 'pipelinesCreated'],
  ['GPUDevice', 'createBindGroup', 'bindGroupsCreated'],
];

const counts = Object.fromEntries(COUNTED.map(([, , k]) => [k, 0]));
let installed = false;

/** Wraps the counted methods in `scope` (a worker's or window's global object); idempotent. */
export function countGpuCalls(scope) {
  if (installed) return;
  installed = true;
  for (const [cls, method, key] of COUNTED) {
    const proto = scope[cls]?.prototype;
    const original = proto?.[method];
    if (typeof original !== 'function') continue;
    proto[method] = function counted(...args) {
      counts[key]++;
      return original.apply(this, args);
    };
  }
}

/** A snapshot of the counters since the worker started ({ dispatches, submits, readbacks, ... }). */
export function gpuCounters() {
  return { ...counts, installed: installed && typeof globalThis.GPUQueue === 'function' };
}
