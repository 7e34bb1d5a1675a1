#!/usr/bin/env python3
"""Writes a bundle's model card (README.md) from its manifest.json and eval.json: every figure in the
card is read from those files, which `tessera-train export` and `tessera-train eval` computed."""
import json, os, sys

bundle = sys.argv[1]
m = json.load(open(os.path.join(bundle, 'manifest.json')))
e = json.load(open(os.path.join(bundle, 'eval.json')))
tok, gpt = m['tokenizer']['config'], m['proposal']['config']
det = m['provenance']['details']
params = {r: f['bytes'] // 4 for r, f in m['files'].items()}  # f32 safetensors; header is tiny
total_s = sum(det[r]['train_seconds'] for r in det)
L = []
L += [f"# {m['name']}: Fashion-MNIST, VQ tokenizer + AR (GPT) proposal network", '',
      'Generates 32x32 Fashion-MNIST-style images of a chosen class, in the browser or natively. Two stages, as in',
      '*Image Understanding Makes for A Good Tokenizer for Image Generation* (NeurIPS 2024):',
      f"a **VQ tokenizer** (conv encoder, {tok['codebook_size']}-code codebook of dimension {tok['code_dim']}, conv decoder; image -> "
      f"{tok['grid']}x{tok['grid']} tokens) trained on pixels (MSE + codebook + {tok['commitment']} x commitment loss), and a **GPT proposal network** "
      f"({gpt['n_layer']} layers, {gpt['n_head']} heads, width {gpt['n_embd']}; sequence = [class] + {gpt['block_size']} tokens) with a null class "
      'for classifier-free guidance.', '',
      '![samples: one row per class](samples.png)', '',
      f"Rows: {', '.join(m['dataset']['classes'])}. Seed 0, sampling defaults below.", '',
      '## Data', '',
      "Fashion-MNIST from Debian's `dataset-fashion-mnist` (60,000 training and 10,000 test images, 28x28 grey, 10 classes), "
      'padded to 32x32 and scaled to [-1, 1]. Only the training split is used for training.', '',
      '## Training (on a 2-core CPU, burn flex backend)', '',
      '| stage | steps x batch | parameters | time | final loss |', '|---|---|---|---|---|']
for r in ['classifier', 'tokenizer', 'proposal']:
    d = det[r]
    L.append(f"| {r} | {d['steps']} x {d['batch_size']} | {params[r]:,} | {d['train_seconds'] / 60:.1f} min | {d['final_loss']:.4f} |")
L += ['', f"Total training time: {total_s / 60:.0f} min (wall clock; other builds shared the two cores for part of it). Command: `scripts/train.sh` (= `{det['tokenizer']['command']}`, then "
      '`export`, `eval`, `generate`); it resumes after an interruption.',
      f"Exported from commit `{m['provenance']['git_commit']}` on {m['provenance']['created']}.", '',
      '## Evaluation (`tessera-train eval`, test split)', '',
      '| metric | value |', '|---|---|',
      f"| reconstruction MSE (pixels in [0, 1]) | {e['reconstruction_mse_01']:.5f} |",
      f"| reconstruction PSNR | {e['reconstruction_psnr_db']:.2f} dB |",
      f"| codebook usage (test set) | {100 * e['codebook_usage']:.1f}% of {tok['codebook_size']} codes |",
      f"| classifier accuracy on real test images | {100 * e['classifier_test_accuracy']:.1f}% |",
      f"| class consistency of samples (mean) | {100 * e['class_consistency_mean']:.1f}% |", '',
      f"Class consistency = share of {e['samples_per_class']} samples per class that the in-project classifier "
      '(a small CNN trained on the training split; **not** Inception) assigns to the requested class. '
      f"Sampling: temperature {e['sampling']['temperature']}, top-k {e['sampling']['top_k']}, top-p {e['sampling']['top_p']:.2f}, "
      f"guidance {e['sampling']['guidance']}.", '',
      '| class | consistency |', '|---|---|']
L += [f'| {c} | {100 * v:.0f}% |' for c, v in e['class_consistency'].items()]
L += ['', '![test images (top) and their reconstructions (bottom)](reconstructions.png)', '',
      '## Files', '', '| role | file | bytes | sha256 |', '|---|---|---|---|']
L += [f"| {r} | `{f['path']}` | {f['bytes']:,} | `{f['sha256'][:16]}…` |" for r, f in m['files'].items()]
L += ['', 'The browser downloads only the tokenizer and proposal files; the classifier is for native evaluation.', '',
      '## Limitations', '',
      '- 32x32 grey images of 10 clothing classes; nothing else.',
      '- A pixel-reconstruction (VQ) tokenizer: the paper\'s feature-reconstruction tokenizers (VQ-KD, Cluster) are not in this bundle.',
      '- Class consistency is measured with an in-project classifier, which can be fooled in ways a person would not.']
open(os.path.join(bundle, 'README.md'), 'w').write('\n'.join(L) + '\n')
print(f'wrote {bundle}/README.md')
