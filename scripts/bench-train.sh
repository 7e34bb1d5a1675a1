#!/usr/bin/env bash
# Training throughput per stage, natively on burn flex (CPU) -> docs/bench-train.{json,md}:
# steps/s and achieved GFLOP/s (the GEMMs' floating-point operations, counted by vendor/burn-flex,
# forward + backward + the optimizer's none) of every stage the Fashion-MNIST table trains, at the
# table's sizes (batch 64, 32-channel tokenizers, 3 x 96 GPT / MaskGIT), beside the machine's sgemm
# ceiling through the same backend measured in the same run; and what the table's training would
# take now at these rates (it took 10.9 h of compute, docs/results/table.json).
#   scripts/bench-train.sh                      # 40 steps per stage, every core
#   BENCH_TRAIN_STEPS=100 RAYON_NUM_THREADS=1 scripts/bench-train.sh
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
bash scripts/setup.sh
tessera_train_bin
STEPS="${BENCH_TRAIN_STEPS:-40}"
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
# The table's budget flags (docs/results/table.json "commands"), steps shortened to $STEPS; the
# discriminator starts half-way, as at 150 of 300 there.
common=(--device flex train --data fashion-mnist --classifier "$W/classifier" --batch-size 64
  --classifier-steps "$STEPS" --teacher-steps "$STEPS" --tokenizer-steps "$STEPS" --proposal-steps "$STEPS"
  --disc-start $(( STEPS / 2 )) --checkpoint-every 100000 --channels 32 --cluster-images 2000
  --n-layer 3 --n-head 4 --n-embd 96)
run() { echo "== bench-train: $*" >&2; "$BIN" "${common[@]}" "$@" >/dev/null 2>"$W/last.log" || { cat "$W/last.log" >&2; exit 1; }; }
run --stage classifier
run --stage teacher --teacher-kind supervised --teacher "$W/teacher-vit"
for t in vq fsq; do
  extra=(); [ $t = fsq ] && extra=(--fsq-levels 8,6,5)
  run --run "$W/$t" --tokenizer $t --codebook-size 256 --pixel-loss vqgan "${extra[@]}" --stage tokenizer
done
run --run "$W/vqkd" --tokenizer vqkd --teacher "$W/teacher-vit" --codebook-size 256 --pixel-loss vqgan --stage tokenizer
run --run "$W/vqkd" --tokenizer vqkd --teacher "$W/teacher-vit" --codebook-size 256 --pixel-loss vqgan --stage ar
run --run "$W/vqkd" --tokenizer vqkd --teacher "$W/teacher-vit" --codebook-size 256 --pixel-loss vqgan --stage nar
gemm=$("$BIN" --device flex bench-gemm --size 1024 --runs 5)
python3 - "$W" "$gemm" "$STEPS" <<'PY'
import json, os, sys, glob, platform, datetime
work, gemm, steps = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
rows = []
for p in sorted(glob.glob(os.path.join(work, '**', 'state.json'), recursive=True)):
    s = json.load(open(p))
    t = s.get('extra', {}).get('throughput')
    if not t:
        continue
    run = os.path.relpath(os.path.dirname(p), work)
    rows.append({'run': run, 'stage': s['stage'], **t})
# Names as the paper's stages: the tokenizer (VQGAN / FSQ end to end), VQ-KD's distillation, the pixel
# decoder on frozen codes, the proposal networks.
label = {'tokenizer': 'tokenizer (end to end, L1 + perceptual + PatchGAN)', 'vqkd': 'VQ-KD distillation (teacher forward included)',
         'decoder': 'pixel decoder on frozen codes', 'proposal': 'AR proposal (GPT)', 'nar': 'NAR proposal (MaskGIT)',
         'classifier': 'classifier (perceptual loss)', 'teacher': 'ViT teacher (supervised)'}
ceiling = gemm['gflop_per_s_median']
for r in rows:
    r['share_of_sgemm_ceiling'] = r.get('gemm_gflop_per_s', 0) / ceiling
# The table's training at these rates: each command's steps over its stage's rate (the main rows and the
# ablations, as docs/results/table.json lists them).
table = json.load(open('docs/results/table.json'))
rate = {}
for r in rows:
    key = r['stage'] if r['stage'] != 'tokenizer' else ('tokenizer-fsq' if r['run'].startswith('fsq') else 'tokenizer-vq')
    rate[key] = r['steps_per_s']
b = table['budget']
est, missing = 0.0, set()
for c in table['commands']:
    a = c.split()
    stage = a[a.index('--stage') + 1]
    tok = a[a.index('--tokenizer') + 1] if '--tokenizer' in a else None
    if stage == 'classifier':
        est += b['classifier_steps'] / rate.get('classifier', float('nan'))
    elif stage == 'teacher':
        if 'mim' in a:
            missing.add('teacher-mim')
        est += b['teacher_steps'] / rate.get('teacher', float('nan'))
    elif stage == 'tokenizer':
        if tok in ('vq', 'vqgan'):
            est += b['tokenizer_steps'] / rate['tokenizer-vq']
        elif tok == 'fsq':
            est += b['tokenizer_steps'] / rate['tokenizer-fsq']
        elif tok == 'vqkd':
            est += b['tokenizer_steps'] / rate['vqkd'] + b['tokenizer_steps'] / rate['decoder']
        else:  # cluster: k-means (not a training loop) + the decoder
            est += b['tokenizer_steps'] / rate['decoder']
            missing.add('k-means')
    elif stage == 'ar':
        est += b['proposal_steps'] / rate['proposal']
    elif stage == 'nar':
        est += b['proposal_steps'] / rate['nar']
out = {
    'date': datetime.datetime.utcnow().strftime('%Y-%m-%dT%H:%M:%SZ'), 'machine': f'{os.cpu_count()} cores, {platform.machine()}',
    'rayon_threads': os.environ.get('RAYON_NUM_THREADS'), 'steps_per_stage': steps, 'sgemm': gemm, 'stages': rows,
    'table_training_estimate_s': est, 'table_training_then_s': table['compute']['train_s'] + table['compute']['shared_training_s'],
    'table_estimate_not_counted': sorted(missing),
}
json.dump(out, open('docs/bench-train.json', 'w'), indent=2)
L = ['# Training throughput (native, burn flex)', '',
     f"Measured {out['date']} on {out['machine']} (RAYON_NUM_THREADS={out['rayon_threads'] or 'unset: every core'}) by `scripts/bench-train.sh`: "
     f"{steps} steps of each stage at the Fashion-MNIST table's sizes (batch 64, 32-channel tokenizers, 3 x 96 GPT / MaskGIT). "
     "GFLOP = the floating-point operations of the matrix products (2·m·n·k each: linear layers, attention, the convolutions' im2col "
     "products, forward and backward), counted by a counter in vendor/burn-flex; element-wise work is not counted (as MFU figures do not).", '',
     f"sgemm ceiling through the same backend (1024³ f32, median of 5): **{ceiling:.1f} GFLOP/s** (best {gemm['gflop_per_s_best']:.1f}).", '',
     '| stage | run | steps/s | images/s | GFLOP / step | achieved GFLOP/s | share of the sgemm ceiling |', '|---|---|---|---|---|---|---|']
for r in rows:
    L.append(f"| {label.get(r['stage'], r['stage'])} | {r['run']} | {r['steps_per_s']:.2f} | {r['steps_per_s'] * r['batch_size']:.0f} | "
             f"{r.get('gemm_gflop_per_step', float('nan')):.2f} | {r.get('gemm_gflop_per_s', float('nan')):.1f} | {100 * r['share_of_sgemm_ceiling']:.0f}% |")
L += ['', f"The Fashion-MNIST table's training (every `train` command of docs/results/table.json at its budget) at these rates: "
      f"**{est / 3600:.1f} h** (it took {out['table_training_then_s'] / 3600:.1f} h of training when it was run; its evaluation, "
      f"{table['compute']['eval_s'] / 3600:.1f} h then, is not re-estimated here"
      + (f"; not counted: {', '.join(sorted(missing))} (the MIM teacher is estimated at the supervised teacher's rate; k-means is not a training loop)" if missing else '') + ").", '']
open('docs/bench-train.md', 'w').write('\n'.join(L) + '\n')
print('\n'.join(L))
PY
