// Tessera's sampler in JavaScript, operation for operation (as `../sampler.py`; the Rust original is
// crate/tessera/src/sampling/): SplitMix64 per image, classifier-free guidance, top-k, top-p, MaskGIT's
// confidence order. Doubles throughout, sums in order, so that equal logits give equal tokens.
const M64 = (1n << 64n) - 1n;

export class Rng {
  constructor(seed, stream) {
    this.s = (BigInt(seed) ^ ((BigInt(stream) * 0xD1B54A32D192ED03n) & M64)) & M64;
    this.nextU64();
  }
  nextU64() {
    this.s = (this.s + 0x9E3779B97F4A7C15n) & M64;
    let z = this.s;
    z = ((z ^ (z >> 30n)) * 0xBF58476D1CE4E5B9n) & M64;
    z = ((z ^ (z >> 27n)) * 0x94D049BB133111EBn) & M64;
    return z ^ (z >> 31n);
  }
  uniform() {
    return Number(this.nextU64() >> 11n) / 2 ** 53;
  }
}

/** Sampling options as Rust holds them (f32 values widened to f64). */
export function options(d) {
  const f = Math.fround;
  return {
    seed: d.seed ?? 0, temperature: f(d.temperature ?? 1), topK: d.top_k ?? 0, topP: f(d.top_p ?? 1),
    guidance: f(d.guidance ?? 1), steps: d.steps ?? 10, confidenceNoise: f(d.confidence_noise ?? 4.5),
  };
}

function filteredProbs(l, o) {
  let order = Array.from(l.keys()).sort((a, b) => (l[b] - l[a]) || (a - b));
  if (o.topK > 0) order = order.slice(0, o.topK);
  const max = l[order[0]];
  let probs = order.map((i) => [i, Math.exp((l[i] - max) / o.temperature)]);
  let z = 0;
  for (const p of probs) z += p[1];
  for (const p of probs) p[1] /= z;
  if (o.topP < 1) {
    let cum = 0;
    let keep = probs.length;
    for (let n = 0; n < probs.length; n++) {
      cum += probs[n][1];
      if (cum >= o.topP) { keep = n + 1; break; }
    }
    probs = probs.slice(0, keep);
    z = 0;
    for (const p of probs) z += p[1];
    for (const p of probs) p[1] /= z;
  }
  return probs;
}

/** Guided logits (f64) of one position: `cond`/`uncond` are f32 subarrays. */
function guided(cond, uncond, o) {
  const out = new Float64Array(cond.length);
  for (let i = 0; i < cond.length; i++) out[i] = uncond ? uncond[i] + o.guidance * (cond[i] - uncond[i]) : cond[i];
  return out;
}

function draw(l, o, rng) {
  const probs = filteredProbs(l, o);
  const u = rng.uniform();
  let cum = 0;
  for (const [i, p] of probs) {
    cum += p;
    if (u < cum) return i;
  }
  return probs[probs.length - 1][0];
}

function unmaskingSchedule(masked, steps) {
  const out = [];
  let prev = masked;
  for (let s = 0; s < steps; s++) {
    const r = Math.cos(Math.PI / 2 * (s + 1) / steps);
    const left = s + 1 === steps ? 0 : Math.min(Math.floor(masked * r), prev);
    out.push(left);
    prev = left;
  }
  return out;
}

/** AR: `step(ids Int32-ish array [rows], pos)` resolves to logits Float32Array [rows * vocab]. */
export async function sampleAr(step, cfg, cls, n, o) {
  const { vocab_size: V, num_classes: NC, block_size: T } = cfg;
  const rngs = Array.from({ length: n }, (_, i) => new Rng(o.seed, i));
  const g = o.guidance !== 1;
  const rows = g ? 2 * n : n;
  const tokens = Array.from({ length: n }, () => []);
  for (let pos = 0; pos < T; pos++) {
    const ids = Array.from({ length: rows }, (_, r) => (pos === 0 ? V + (r < n ? cls : NC) : tokens[r % n][pos - 1]));
    const logits = await step(ids, pos);
    for (let i = 0; i < n; i++) {
      const l = guided(logits.subarray(i * V, (i + 1) * V), g ? logits.subarray((n + i) * V, (n + i + 1) * V) : null, o);
      tokens[i].push(draw(l, o, rngs[i]));
    }
  }
  return tokens;
}

/** NAR (MaskGIT): `forward(classes [rows], tokens [rows * T])` resolves to logits [rows * T * vocab]. */
export async function sampleNar(forward, cfg, cls, n, o) {
  const { vocab_size: V, num_classes: NC, block_size: T } = cfg;
  const rngs = Array.from({ length: n }, (_, i) => new Rng(o.seed, i));
  const g = o.guidance !== 1;
  const rows = g ? 2 * n : n;
  const tokens = Array.from({ length: n }, () => new Array(T).fill(null));
  const schedule = unmaskingSchedule(T, o.steps);
  const classes = Array.from({ length: rows }, (_, r) => (r < n ? cls : NC));
  for (let step = 0; step < o.steps; step++) {
    if (tokens.every((row) => row.every((v) => v !== null))) break;
    const input = [];
    for (let r = 0; r < rows; r++) for (const v of tokens[r % n]) input.push(v === null ? V : v);
    const logits = await forward(classes, input);
    const anneal = o.confidenceNoise * (1 - (step + 1) / o.steps);
    for (let i = 0; i < n; i++) {
      const scored = [];
      for (let p = 0; p < T; p++) {
        if (tokens[i][p] !== null) continue;
        const at = (row) => logits.subarray((row * T + p) * V, (row * T + p + 1) * V);
        const l = guided(at(i), g ? at(n + i) : null, o);
        const tok = draw(l, o, rngs[i]);
        let max = -Infinity;
        for (const x of l) max = Math.max(max, x);
        let s = 0;
        for (const x of l) s += Math.exp(x - max);
        const lse = max + Math.log(s);
        const gumbel = -Math.log(-Math.log(Math.max(rngs[i].uniform(), 1e-300)));
        scored.push([l[tok] - lse + anneal * gumbel, p, tok]);
      }
      const reveal = Math.max(0, scored.length - schedule[step]);
      scored.sort((a, b) => (b[0] - a[0]) || (a[1] - b[1]));
      for (const [, p, tok] of scored.slice(0, reveal)) tokens[i][p] = tok;
    }
  }
  return tokens.map((row) => row.map((v) => v ?? 0));
}
