#!/usr/bin/env python3
"""Writes a bundle's model card (README.md) from its manifest.json and eval.json, and refreshes
models/index.json (the list of shipped bundles the site reads). Every figure is read from files that
`tessera-train export` and `tessera-train eval` computed; nothing here is typed by hand."""
import glob, json, os, sys

DESCRIBE = {
    'vq': ('VQ', 'pixel reconstruction', 'conv encoder, L2 codebook learned with the codebook + commitment losses, '
           'trained end to end on pixels (MSE)'),
    'fsq': ('FSQ', 'pixel reconstruction', 'conv encoder whose latent channels are bounded and rounded to fixed levels '
            '(implicit codebook), trained end to end on pixels (MSE)'),
    'vqkd': ('VQ-KD', 'feature reconstruction (IU teacher)', 'conv encoder + cosine codebook (k-means initialised, EMA updated) '
             'trained to reconstruct the teacher\'s patch features; a pixel decoder is then trained on the frozen tokens'),
    'cluster': ('Cluster', 'k-means on IU features (training-free codebook)', 'k-means (cosine) centroids of the frozen teacher\'s '
                'patch features are the codebook; a pixel decoder is trained on the frozen tokens'),
}


def card(bundle):
    m = json.load(open(os.path.join(bundle, 'manifest.json')))
    e = json.load(open(os.path.join(bundle, 'eval.json')))
    kind, tok = m['tokenizer']['kind'], m['tokenizer']['config']
    name, family, how = DESCRIBE[kind]
    det = m['provenance']['details']
    params = {r: f['bytes'] // 4 for r, f in m['files'].items()}  # f32 safetensors; the header is tiny
    teacher = tok.get('teacher_name')
    L = [f"# {m['name']}: Fashion-MNIST, {name} tokenizer + " + ' and '.join(p.upper() for p in m['proposals']) + ' proposal networks', '',
         'Generates 32x32 Fashion-MNIST-style images of a chosen class, in the browser or natively, with the two stages of',
         '*Image Understanding Makes for A Good Tokenizer for Image Generation* (NeurIPS 2024):', '',
         f"- **Tokenizer: {name}** ({family}): {how}. Image -> {m['grid'][0]}x{m['grid'][1]} tokens from a "
         f"{e['codebook_size']}-code codebook." + (f" Teacher: `{teacher}` (in-project ViT, see below)." if teacher else '')]
    for p, entry in m['proposals'].items():
        c = entry['model']['config']
        what = 'AR: GPT, raster order, KV cache' if entry['model']['kind'] == 'ar' else 'NAR: MaskGIT, bidirectional, cosine unmasking schedule'
        L.append(f"- **Proposal `{p}`** ({what}): {c['n_layer']} layers, {c['n_head']} heads, width {c['n_embd']}; "
                 f"[class] + {c['block_size']} tokens, null class for classifier-free guidance.")
    L += ['']
    for p in m['proposals']:
        if os.path.exists(os.path.join(bundle, f'samples-{p}.png')):
            L += [f'![{p.upper()} samples: one row per class](samples-{p}.png)', '']
    L += [f"Rows: {', '.join(m['dataset']['classes'])}. Seed 0, the sampling defaults below.", '',
          '## Data', '',
          "Fashion-MNIST from Debian's `dataset-fashion-mnist` (60,000 training and 10,000 test images, 28x28 grey, 10 classes), "
          'padded to 32x32 and scaled to [-1, 1]. Only the training split is used for training.', '',
          '## Training (2-core CPU, burn flex backend)', '',
          '| part | steps x batch | parameters | time | final loss |', '|---|---|---|---|---|']
    for r, d in det.items():
        L.append(f"| {r} | {d['steps']} x {d['batch_size']} | {params[r]:,} | {d['train_seconds'] / 60:.1f} min | "
                 + (f"{d['final_loss']:.4f}" if d.get('final_loss') is not None else '-') + ' |')
    total = sum(d['train_seconds'] for r, d in det.items() if r != 'classifier')
    L += ['', f"Tokenizer + proposal networks: {total / 60:.0f} min wall clock (builds and other runs shared the two cores). "
          f"Reproduce with `scripts/train.sh` (`ONLY={kind}`); it resumes after an interruption. "
          + (f"The tokenizer time includes the teacher-dependent parts only; the teacher itself is trained once (`--stage teacher`) and shared. " if teacher else '')
          + f"Exported from commit `{m['provenance']['git_commit']}` on {m['provenance']['created']}.", '',
          '## Evaluation (`tessera-train eval`, test split)', '',
          '| metric | value |', '|---|---|',
          f"| reconstruction MSE (pixels in [0, 1]) | {e['reconstruction_mse_01']:.5f} |",
          f"| reconstruction PSNR | {e['reconstruction_psnr_db']:.2f} dB |",
          f"| codebook usage (test set) | {100 * e['codebook_usage']:.1f}% of {e['codebook_size']} codes |",
          f"| classifier accuracy on real test images | {100 * e['classifier_test_accuracy']:.1f}% |"]
    for p, r in e['proposals'].items():
        L.append(f"| class consistency, {p.upper()} samples (mean) | {100 * r['class_consistency_mean']:.1f}% |")
    L += ['', f"Class consistency = share of {e['samples_per_class']} samples per class that the in-project classifier "
          '(a small CNN trained on the training split; **not** Inception) assigns to the requested class.', '',
          '| class | ' + ' | '.join(p.upper() for p in e['proposals']) + ' |', '|---|' + '---|' * len(e['proposals'])]
    classes = list(next(iter(e['proposals'].values()))['class_consistency'])
    for c in classes:
        L.append(f'| {c} | ' + ' | '.join(f"{100 * r['class_consistency'][c]:.0f}%" for r in e['proposals'].values()) + ' |')
    L += ['', 'Sampling defaults: ' + '; '.join(
        f"{p.upper()}: temperature {s['temperature']}, top-k {s['top_k']}, top-p {s['top_p']:.2f}, guidance {s['guidance']}"
        + (f", {s['steps']} steps, confidence noise {s['confidence_noise']}" if m['proposals'][p]['model']['kind'] == 'nar' else '')
        for p, s in ((p, r['sampling']) for p, r in e['proposals'].items())) + '.', '',
          '![test images (top) and their reconstructions (bottom)](reconstructions.png)', '',
          '## Files', '', '| role | file | bytes | sha256 |', '|---|---|---|---|']
    L += [f"| {r} | `{f['path']}` | {f['bytes']:,} | `{f['sha256'][:16]}…` |" for r, f in m['files'].items()]
    L += ['', 'The browser downloads the tokenizer and only the proposal networks it uses; the classifier is for native evaluation.'
          + (' The tokenizer file contains the teacher ViT (encoding runs it).' if kind == 'cluster' else ''), '',
          '## Limitations', '',
          '- 32x32 grey images of 10 clothing classes; nothing else.',
          '- Small models and short training on a 2-core CPU: figures compare tokenizers in miniature, not at the paper\'s scale.',
          '- Pixel decoders and pixel tokenizers are trained with MSE only (no perceptual or adversarial loss yet).',
          '- Class consistency is measured with an in-project classifier, which can be fooled in ways a person would not.']
    open(os.path.join(bundle, 'README.md'), 'w').write('\n'.join(L) + '\n')
    print(f'wrote {bundle}/README.md')


def index(models='models'):
    out = []
    for man in sorted(glob.glob(os.path.join(models, '*', 'manifest.json'))):
        d = os.path.dirname(man)
        m = json.load(open(man))
        if m.get('format_version') != 2:
            continue
        e = json.load(open(os.path.join(d, 'eval.json'))) if os.path.exists(os.path.join(d, 'eval.json')) else {}
        kind = m['tokenizer']['kind']
        out.append({
            'name': m['name'], 'path': os.path.basename(d) + '/', 'tokenizer': kind, 'label': DESCRIBE[kind][0],
            'family': DESCRIBE[kind][1], 'teacher': m['tokenizer']['config'].get('teacher_name'),
            'proposals': list(m['proposals']), 'codebook_size': e.get('codebook_size'),
            'download_bytes': {r: f['bytes'] for r, f in m['files'].items() if r != 'classifier'},
            'eval': {k: e[k] for k in ('reconstruction_psnr_db', 'codebook_usage') if k in e}
                    | {f'class_consistency_{p}': r['class_consistency_mean'] for p, r in e.get('proposals', {}).items()},
        })
    order = ['vq', 'fsq', 'vqkd', 'cluster']
    out.sort(key=lambda b: order.index(b['tokenizer']) if b['tokenizer'] in order else 9)
    json.dump({'default': 'fmnist-vq/', 'bundles': out}, open(os.path.join(models, 'index.json'), 'w'), indent=2)
    print(f'wrote {models}/index.json ({len(out)} bundles)')


if __name__ == '__main__':
    for b in sys.argv[1:]:
        card(b)
    index()
