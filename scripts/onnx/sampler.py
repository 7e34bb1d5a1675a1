"""Tessera's sampler in Python, operation for operation (`crate/tessera/src/sampling/sampler.rs`,
`ar.rs`, `nar.rs`, `rng.rs`): the same seed gives the same tokens when the logits agree, whatever
engine computed them. Plain Python floats (IEEE f64, libm's exp/ln/cos, sums in order), because
numpy's vectorised exp and pairwise sums can differ from Rust's in the last bit.
"""
import math

import numpy as np

MASK64 = (1 << 64) - 1


class Rng:
    """SplitMix64; stream i of a seed is image i's."""

    def __init__(self, seed, stream):
        self.s = (seed ^ ((stream * 0xD1B54A32D192ED03) & MASK64)) & MASK64
        self.next_u64()

    def next_u64(self):
        self.s = (self.s + 0x9E3779B97F4A7C15) & MASK64
        z = self.s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)

    def uniform(self):
        return (self.next_u64() >> 11) / float(1 << 53)


def f32(x):
    """An option as Rust holds it (f32), widened to f64 as Rust does before using it."""
    return float(np.float32(x))


class Options:
    def __init__(self, d):
        self.seed = int(d.get('seed', 0))
        self.temperature = f32(d.get('temperature', 1.0))
        self.top_k = int(d.get('top_k', 0))
        self.top_p = f32(d.get('top_p', 1.0))
        self.guidance = f32(d.get('guidance', 1.0))
        self.steps = int(d.get('steps', 10))
        self.confidence_noise = f32(d.get('confidence_noise', 4.5))

    @property
    def guided(self):
        return self.guidance != 1.0


def total(values):
    s = 0.0
    for v in values:
        s += v
    return s


def filtered_probs(logits, o):
    order = sorted(range(len(logits)), key=lambda i: (-logits[i], i))
    if o.top_k > 0:
        order = order[:o.top_k]
    mx = logits[order[0]]
    probs = [(i, math.exp((logits[i] - mx) / o.temperature)) for i in order]
    z = total(p for _, p in probs)
    probs = [(i, p / z) for i, p in probs]
    if o.top_p < 1.0:
        cum, keep = 0.0, len(probs)
        for n, (_, p) in enumerate(probs):
            cum += p
            if cum >= o.top_p:
                keep = n + 1
                break
        probs = probs[:keep]
        z = total(p for _, p in probs)
        probs = [(i, p / z) for i, p in probs]
    return probs


def guided_logits(cond, uncond, o):
    """cond/uncond: f32 rows. Classifier-free guidance in f64, as `sampler::guide`."""
    c = cond.astype(np.float64).tolist()
    if uncond is None:
        return c
    g = o.guidance
    return [u + g * (x - u) for x, u in zip(c, uncond.astype(np.float64).tolist())]


def draw(logits, o, rng):
    probs = filtered_probs(logits, o)
    u = rng.uniform()
    cum = 0.0
    for i, p in probs:
        cum += p
        if u < cum:
            return i
    return probs[-1][0]


def unmasking_schedule(masked, steps):
    out, prev = [], masked
    for s in range(steps):
        r = math.cos(math.pi / 2 * (s + 1) / steps)
        left = 0 if s + 1 == steps else min(int(math.floor(masked * r)), prev)
        out.append(left)
        prev = left
    return out


def sample_ar(step, vocab, num_classes, block_size, cls, n, o):
    """`step(ids [rows, 1], pos)` -> logits [rows, vocab] (keeps its own KV cache). The first step
    feeds the class as index vocab + class (the null class num_classes for guidance's rows)."""
    rngs = [Rng(o.seed, i) for i in range(n)]
    rows = 2 * n if o.guided else n
    tokens = [[] for _ in range(n)]
    for pos in range(block_size):
        if pos == 0:
            ids = [vocab + (cls if r < n else num_classes) for r in range(rows)]
        else:
            ids = [tokens[r % n][-1] for r in range(rows)]
        logits = step(np.asarray(ids, dtype=np.int64).reshape(rows, 1), pos)
        for i in range(n):
            l = guided_logits(logits[i], logits[n + i] if o.guided else None, o)
            tokens[i].append(draw(l, o, rngs[i]))
    return tokens


def sample_nar(forward, vocab, block_size, cls, num_classes, n, o):
    """`forward(classes [rows], tokens [rows, T])` -> logits [rows, T, vocab]; MaskGIT's loop."""
    rngs = [Rng(o.seed, i) for i in range(n)]
    rows = 2 * n if o.guided else n
    T = block_size
    tokens = [[None] * T for _ in range(n)]
    schedules = [unmasking_schedule(T, o.steps) for _ in range(n)]
    classes = np.asarray([cls if r < n else num_classes for r in range(rows)], dtype=np.int64)
    for step in range(o.steps):
        if all(v is not None for row in tokens for v in row):
            break
        inp = np.asarray([[vocab if v is None else v for v in tokens[r % n]] for r in range(rows)], dtype=np.int64)
        logits = forward(classes, inp)
        anneal = o.confidence_noise * (1.0 - (step + 1) / o.steps)
        for i in range(n):
            rng, scored = rngs[i], []
            for p in [p for p in range(T) if tokens[i][p] is None]:
                l = guided_logits(logits[i, p], logits[n + i, p] if o.guided else None, o)
                tok = draw(l, o, rng)
                mx = max(l)
                lse = mx + math.log(total(math.exp(x - mx) for x in l))
                gumbel = -math.log(-math.log(max(rng.uniform(), 1e-300)))
                scored.append((l[tok] - lse + anneal * gumbel, p, tok))
            reveal = max(0, len(scored) - schedules[i][step])
            scored.sort(key=lambda s: (-s[0], s[1]))
            for _, p, tok in scored[:reveal]:
                tokens[i][p] = tok
    return [[0 if v is None else v for v in row] for row in tokens]
