// ONNX Runtime Web (wasm backend) running Tessera's exported graphs in a module worker, with the
// same sampler (sampler.js): the browser peer of scripts/bench.sh. Messages: {id, type: 'load',
// base, threads} and {id, type: 'generate', proposal, cls, count, options} / {id, type: 'decode',
// tokens (flat), count}; replies {id, value} or {id, error}.
import * as ort from '../ort/ort.wasm.min.mjs';
import { options, sampleAr, sampleNar } from './sampler.js';

let meta = null;
const sessions = {};
let engineMs = 0;
let stepMs = [];

async function run(name, feeds) {
  const t = performance.now();
  const out = await sessions[name].run(feeds);
  const dt = performance.now() - t;
  engineMs += dt;
  return [out, dt];
}

const i64 = (a, dims) => new ort.Tensor('int64', BigInt64Array.from(a, BigInt), dims);

async function load({ base, threads }) {
  const t0 = performance.now();
  ort.env.wasm.numThreads = threads;
  ort.env.wasm.wasmPaths = new URL('../ort/', import.meta.url).href;
  meta = await (await fetch(base + 'onnx.json')).json();
  for (const [name, f] of Object.entries(meta.files)) {
    const bytes = new Uint8Array(await (await fetch(base + f.path)).arrayBuffer());
    sessions[name] = await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
  }
  return { loadMs: performance.now() - t0, threads };
}

async function decode(flat, count) {
  const per = meta.grid * meta.grid;
  const [out, dt] = await run('decoder', { tokens: i64(flat, [count, per]) });
  return { images: out.images.data, decodeMs: dt };
}

async function generate({ proposal, cls, count, options: opts }) {
  const t0 = performance.now();
  engineMs = 0;
  stepMs = [];
  const cfg = meta.proposals[proposal].config;
  const o = options(opts);
  let tokens;
  if (proposal === 'ar') {
    const { n_layer: L, n_head: H, n_embd: E } = cfg;
    const hd = E / H;
    let past = null;
    tokens = await sampleAr(async (ids, pos) => {
      const rows = ids.length;
      if (pos === 0) {
        past = {};
        for (let i = 0; i < L; i++) for (const kv of 'kv') past[`past_${kv}${i}`] = new ort.Tensor('float32', new Float32Array(0), [rows, H, 0, hd]);
      }
      const [out, dt] = await run('ar_step', { ids: i64(ids, [rows, 1]), pos: i64([pos], [1]), ...past });
      stepMs.push(dt);
      for (let i = 0; i < L; i++) for (const kv of 'kv') past[`past_${kv}${i}`] = out[`present_${kv}${i}`];
      return out.logits.data;
    }, cfg, cls, count, o);
  } else {
    tokens = await sampleNar(async (classes, input) => {
      const [out, dt] = await run('nar', { classes: i64(classes, [classes.length]), tokens: i64(input, [classes.length, cfg.block_size]) });
      stepMs.push(dt);
      return out.logits.data;
    }, cfg, cls, count, o);
  }
  const { images, decodeMs } = await decode(tokens.flat(), count);
  const ms = performance.now() - t0;
  const sorted = [...stepMs].sort((a, b) => a - b);
  return { tokens, images, ms, msPerImage: ms / count, engineMs, stepMs: sorted[Math.floor(sorted.length / 2)], steps: stepMs.length, decodeMs };
}

self.onmessage = async ({ data }) => {
  try {
    const value = data.type === 'load' ? await load(data) : data.type === 'decode' ? await decode(data.tokens, data.count) : await generate(data);
    self.postMessage({ id: data.id, value });
  } catch (e) {
    self.postMessage({ id: data.id, error: String(e?.stack ?? e) });
  }
};
