#!/usr/bin/env bash
# The 32 vs 64 px pilot on emoji (issue 14): a VQ tokenizer (MSE) and an AR proposal network, the same
# steps at both sizes; prints seconds per step and the last loss. Writes nothing outside /tmp.
set -e
source "$(dirname "$0")/env.sh"; cd "$ROOT"; tessera_train_bin; B="$BIN"
for S in 32 64; do
  R=/tmp/pilot-$S; rm -rf $R
  $B train --data emoji --image-size $S --run $R --tokenizer vqgan --stage tokenizer --tokenizer-steps 120 --checkpoint-every 120 --batch-size 32 > $R.log 2>&1
  $B train --data emoji --image-size $S --run $R --tokenizer vqgan --stage ar --proposal-steps 40 --checkpoint-every 40 --batch-size 32 >> $R.log 2>&1
  python3 - $S $R <<'PY'
import json, sys
S, R = sys.argv[1], sys.argv[2]
t = json.load(open(f'{R}/tokenizer/state.json')); a = json.load(open(f'{R}/ar/state.json'))
print(f"{S}px: tokenizer {t['elapsed_s']/t['step']:.3f} s/step (loss {t['losses'][-1][1]:.4f} after {t['step']}), AR {a['elapsed_s']/a['step']:.3f} s/step ({a['config']['block_size']} tokens, loss {a['losses'][-1][1]:.3f})")
PY
done
