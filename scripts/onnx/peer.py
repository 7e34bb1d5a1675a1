"""ONNX Runtime as Tessera's peer on the same weights (the graphs of `export.py`).

    python scripts/onnx/peer.py check BUNDLE ONNX_DIR TESSERA_BIN OUT.json
        Tessera (`tessera-train generate`) and ORT with the same sampler (`sampler.py`) from the
        same seeds: tokens must be identical, pixels within 1e-3; AR and NAR, several classes.
    python scripts/onnx/peer.py bench BUNDLE ONNX_DIR TESSERA_BIN OUT.json [--threads 1] [--rounds 3]
        Both engines timed alternately on one thread each: ms per image for batches of 1 and 8,
        one step alone, decode alone, load and first generation. Tessera runs `tessera-train bench`
        (RAYON_NUM_THREADS); ORT's figures count its session calls only (engine time; the Python
        sampler is timed apart), which is ORT's best case.
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sampler import Options, sample_ar, sample_nar  # noqa: E402


class OrtBundle:
    """The exported graphs in ONNX Runtime sessions, `threads` intra-op threads each."""

    def __init__(self, onnx_dir, threads=1):
        t0 = time.perf_counter()
        self.meta = json.load(open(os.path.join(onnx_dir, 'onnx.json')))
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.sessions = {n: ort.InferenceSession(os.path.join(onnx_dir, f['path']), so, providers=['CPUExecutionProvider']) for n, f in self.meta['files'].items()}
        self.load_s = time.perf_counter() - t0
        self.engine_s = 0.0  # time inside session.run since the last reset
        self.step_times = []

    def run(self, name, feeds):
        t = time.perf_counter()
        out = self.sessions[name].run(None, feeds)
        dt = time.perf_counter() - t
        self.engine_s += dt
        return out, dt

    def cfg(self, proposal):
        return self.meta['proposals'][proposal]['config']

    def generate(self, proposal, cls, count, options):
        c = self.cfg(proposal)
        o = Options(options)
        if proposal == 'ar':
            L, H, hd = c['n_layer'], c['n_head'], c['n_embd'] // c['n_head']
            state = {}

            def step(ids, pos):
                rows = ids.shape[0]
                if pos == 0:
                    state.update({f'past_{kv}{i}': np.zeros((rows, H, 0, hd), np.float32) for i in range(L) for kv in 'kv'})
                out, dt = self.run('ar_step', {'ids': ids, 'pos': np.asarray([pos], np.int64), **state})
                self.step_times.append(dt)
                for i in range(L):
                    state[f'past_k{i}'], state[f'past_v{i}'] = out[1 + 2 * i], out[2 + 2 * i]
                return out[0]
            tokens = sample_ar(step, c['vocab_size'], c['num_classes'], c['block_size'], cls, count, o)
        else:
            def forward(classes, inp):
                out, dt = self.run('nar', {'classes': classes, 'tokens': inp})
                self.step_times.append(dt)
                return out[0]
            tokens = sample_nar(forward, c['vocab_size'], c['block_size'], cls, c['num_classes'], count, o)
        return tokens

    def decode(self, tokens):
        out, dt = self.run('decoder', {'tokens': np.asarray(tokens, np.int64)})
        return out[0], dt


def tessera_generate(bin_, bundle, proposal, cls, count, seed):
    with tempfile.TemporaryDirectory() as d:
        tok, pix = os.path.join(d, 't.json'), os.path.join(d, 'p.f32')
        subprocess.run([bin_, '--device', 'flex', 'generate', '--bundle', bundle, '--proposal', proposal, '--class', str(cls), '--count', str(count), '--seed', str(seed),
                        '--out', os.path.join(d, 'g.png'), '--tokens-out', tok, '--pixels-out', pix], check=True, capture_output=True)
        t = json.load(open(tok))
        return t['samples'][0]['tokens'], t['options'], np.fromfile(pix, dtype='<f4')


def check(bundle, onnx_dir, bin_, out):
    e = OrtBundle(onnx_dir)
    classes = len(e.meta['classes'])
    cases, ok = [], True
    for proposal in e.meta['proposals']:
        for seed, cls in [(0, 0), (1, classes // 2), (7, classes - 1)]:
            count = 4
            want, options, pixels = tessera_generate(bin_, bundle, proposal, cls, count, seed)
            got = e.generate(proposal, cls, count, options)
            same = sum(a == b for a, b in zip(want, got))
            images, _ = e.decode(want)
            diff = float(np.abs(images.reshape(-1) - pixels).max())
            good = same == count and diff < 1e-3
            ok &= good
            cases.append({'proposal': proposal, 'seed': seed, 'class': cls, 'images': count, 'identical_token_grids': same, 'tokens_differing': int(sum(x != y for a, b in zip(want, got) for x, y in zip(a, b))), 'max_abs_pixel_diff': diff, 'ok': good})
            print(json.dumps(cases[-1]), flush=True)
    r = {'bundle': bundle, 'onnxruntime': ort.__version__, 'cases': cases, 'ok': ok}
    json.dump(r, open(out, 'w'), indent=1)
    return ok


def ort_bench(e, proposal, count, runs):
    opts = dict(e.meta['proposals'][proposal]['sampling'])
    per = e.meta['grid'] ** 2
    t0 = time.perf_counter()
    e.engine_s = 0.0
    toks = e.generate(proposal, 0, count, opts)
    e.decode(toks)
    first_total, first_engine = time.perf_counter() - t0, e.engine_s
    engine, total, decodes = [], [], []
    e.step_times = []
    classes = len(e.meta['classes'])
    for r in range(runs):
        e.engine_s = 0.0
        t = time.perf_counter()
        toks = e.generate(proposal, r % classes, count, {**opts, 'seed': r + 1})
        _, dt = e.decode(toks)
        total.append(time.perf_counter() - t)
        engine.append(e.engine_s)
        decodes.append(dt)
    med = statistics.median(engine)
    return {'count': count, 'load_s': e.load_s, 'first_s': first_engine, 'first_with_sampler_s': first_total,
            'median_s': med, 'ms_per_image': 1000 * med / count, 'ms_per_image_with_python_sampler': 1000 * statistics.median(total) / count,
            'step_ms': 1000 * statistics.median(e.step_times), 'steps_per_image': len(e.step_times) // runs, 'decode_ms': 1000 * statistics.median(decodes), 'tokens_per_image': per}


def tessera_bench(bin_, bundle, proposal, count, runs, threads):
    env = {**os.environ, 'RAYON_NUM_THREADS': str(threads)}
    p = subprocess.run([bin_, '--device', 'flex', 'bench', '--bundle', bundle, '--proposal', proposal, '--count', str(count), '--runs', str(runs)], check=True, capture_output=True, text=True, env=env)
    return json.loads(p.stdout.strip().splitlines()[-1])


def bench(bundle, onnx_dir, bin_, out, threads=1, rounds=3, runs=3):
    e = OrtBundle(onnx_dir, threads)
    rows = []
    for proposal in ('ar', 'nar'):
        if proposal not in e.meta['proposals']:
            continue
        for count in (1, 8):
            t_runs, o_runs = [], []
            for _ in range(rounds):  # alternate, so that a change in the machine's load hits both
                t_runs.append(tessera_bench(bin_, bundle, proposal, count, runs, threads))
                o_runs.append(ort_bench(OrtBundle(onnx_dir, threads), proposal, count, runs))
            med = lambda rs, k: statistics.median(r[k] for r in rs)
            row = {'proposal': proposal, 'count': count, 'threads': threads, 'rounds': rounds}
            for k in ('ms_per_image', 'step_ms', 'decode_ms', 'first_s', 'load_s'):
                row['tessera_' + k], row['ort_' + k] = med(t_runs, k), med(o_runs, k)
                row['ratio_' + k] = row['tessera_' + k] / row['ort_' + k]
            row['ort_ms_per_image_with_python_sampler'] = med(o_runs, 'ms_per_image_with_python_sampler')
            rows.append(row)
            print(json.dumps(row), flush=True)
    sizes = {n: f['bytes'] for n, f in e.meta['files'].items()}
    r = {'bundle': bundle, 'onnxruntime': ort.__version__, 'machine': f'{os.cpu_count()} cores', 'rows': rows, 'onnx_bytes': sizes}
    json.dump(r, open(out, 'w'), indent=1)
    return r


if __name__ == '__main__':
    a = sys.argv[1:]
    if len(a) < 5 or a[0] not in ('check', 'bench'):
        sys.exit(__doc__)
    if a[0] == 'check':
        sys.exit(0 if check(*a[1:5]) else 'check: ONNX Runtime and Tessera disagree (see the JSON)')
    opt = dict(zip(a[5::2], a[6::2]))
    bench(*a[1:5], threads=int(opt.get('--threads', 1)), rounds=int(opt.get('--rounds', 3)))
