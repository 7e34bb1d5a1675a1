// Renders the tokenizer comparison from models/index.json (itself generated from eval.json files).
const index = await (await fetch('models/index.json', { cache: 'no-cache' })).json();
const pct = (v) => (v == null ? '–' : `${(100 * v).toFixed(1)}%`);
const num = (v) => (v == null ? '–' : v.toFixed(2));
const cols = [
  ['data', (b) => `${b.dataset} ${b.image_size} px`],
  ['tokenizer', (b) => `${b.label}${b.teacher ? ` (${b.teacher_label ?? b.teacher})` : ''}${b.text ? `, text to image (${b.text.encoder} text encoder)` : ''}`],
  ['family', (b) => b.family],
  ['codebook', (b) => b.codebook_size ?? '–'],
  ['usage', (b) => pct(b.eval.codebook_usage)],
  ['PSNR (dB)', (b) => b.eval.reconstruction_psnr_db?.toFixed(2) ?? '–'],
  ['rFID_eval', (b) => num(b.eval.rfid_eval)],
  ['PPL AR / NAR', (b) => `${num(b.eval.ppl_ar)} / ${num(b.eval.ppl_nar)}`],
  ['FID_eval AR / NAR', (b) => `${num(b.eval.fid_eval_ar)} / ${num(b.eval.fid_eval_nar)}`],
  ['FID_lite2 AR / NAR', (b) => `${num(b.eval.fid_lite2_ar)} / ${num(b.eval.fid_lite2_nar)}`],
  ['IS_eval AR / NAR', (b) => `${num(b.eval.is_eval_ar)} / ${num(b.eval.is_eval_nar)}`],
  ['class consistency AR', (b) => pct(b.eval.class_consistency_ar)],
  ['class consistency NAR', (b) => pct(b.eval.class_consistency_nar)],
  ['browser download', (b) => `${(Object.values(b.download_bytes).reduce((a, v) => a + v, 0) / 1e6).toFixed(2)} MB`],
];
const table = document.getElementById('results');
const head = table.tHead.insertRow();
for (const [name] of cols) head.insertCell().textContent = name;
for (const b of index.bundles) {
  const tr = table.tBodies[0].insertRow();
  for (const [, f] of cols) tr.insertCell().textContent = f(b);
}
const samples = document.getElementById('samples');
for (const b of index.bundles) {
  const h = document.createElement('h3');
  // Strings from index.json are shown as text, never parsed as HTML.
  const card = Object.assign(document.createElement('a'), { href: `models/${encodeURI(b.path)}README.md`, textContent: 'model card' });
  h.append(`${b.label} — `, card);
  samples.append(h);
  for (const p of b.proposals) {
    const img = new Image();
    img.src = `models/${b.path}samples-${p}.png`;
    img.alt = `${b.label} ${p.toUpperCase()} samples`;
    img.title = img.alt;
    img.style.marginRight = '1rem';
    samples.append(img);
  }
}

// The paper's table in miniature, one per data set: results/table.json (Fashion-MNIST) and
// results/emoji/table.json (written by `tessera-train table --data emoji --out docs/results/emoji`).
// `id` names the section's elements (#ID-status, #ID-notes, #ID-tables, #ID-tsne, #ID-samples).
async function paperTable(dir, id) {
  const status = document.getElementById(`${id}-status`);
  const res = await fetch(`${dir}table.json`, { cache: 'no-cache' });
  if (!res.ok) {
    status.textContent = `Not produced yet: run scripts/reproduce.sh (it writes docs/${dir}table.json).`;
    return 0;
  }
  const t = await res.json();
  const hours = (t.compute.total_s / 3600).toFixed(1);
  status.textContent = `${t.complete ? 'Complete' : 'In progress (rows finished so far)'}: preset ${t.preset}, `
    + `${t.budget.tokenizer_steps} tokenizer / ${t.budget.proposal_steps} proposal steps, `
    + `${t.samples} samples per FID_eval, ${hours} h of compute on ${t.compute.machine}, commit ${t.git_commit}.`;
  document.getElementById(`${id}-notes`).textContent = 'Mean ± std over seeds. FID_eval / IS_eval / rFID_eval use the '
    + `in-project evaluator (${t.evaluator.name}), not Inception; real-vs-real FID_eval floor at this sample count: `
    + `${t.fid_eval_real_floor?.toFixed(2) ?? '–'}. FID_lite2 (where shown): FID on ImageNet-pretrained EfficientNet-Lite2 `
    + 'features, a network that is no teacher. Purity: share of test tokens whose code\'s majority class is their image\'s class.';
  const fmt = (r, c) => {
    const m = r.mean[c.key];
    if (m == null) return '–';
    return r.seeds.length > 1 ? `${m.toFixed(c.decimals)} ± ${r.std[c.key].toFixed(c.decimals)}` : m.toFixed(c.decimals);
  };
  const groups = [['main', 'Main table'], ['teacher', 'Ablation: teacher'], ['codebook', 'Ablation: codebook size'], ['text', 'Ablation: text encoder']];
  const host = document.getElementById(`${id}-tables`);
  for (const [g, title] of groups) {
    const rows = t.rows.filter((r) => r.group === g);
    if (!rows.length) continue;
    // a column no row of the group has (e.g. FID_lite2 on Fashion-MNIST) is left out
    const columns = t.columns.filter((c) => rows.some((r) => r.mean[c.key] != null));
    const h = document.createElement('h3');
    h.textContent = title;
    const table = document.createElement('table');
    table.className = 'paper';
    table.dataset.group = g;
    const head = table.createTHead().insertRow();
    for (const name of ['tokenizer', 'seeds', ...columns.map((c) => c.header)]) head.insertCell().textContent = name;
    const body = table.createTBody();
    for (const r of rows) {
      const tr = body.insertRow();
      tr.insertCell().textContent = r.label;
      tr.insertCell().textContent = r.seeds.length;
      for (const c of columns) tr.insertCell().textContent = fmt(r, c);
    }
    host.append(h, table);
  }
  const img = (src, alt) => Object.assign(new Image(), { src: `${dir}${src}`, alt, title: alt });
  // Reference rows (a main row repeated in an ablation group at the ablation's seeds) have no figures of their own.
  for (const r of t.rows.filter((row) => !row.reference)) {
    if (r.figures.tsne) document.getElementById(`${id}-tsne`).append(img(r.figures.tsne, `${r.label} codebook t-SNE`));
    const fig = document.createElement('figure');
    const cap = document.createElement('figcaption');
    // a text-to-image table may train AR only
    const shown = ['ar', 'nar'].filter((p) => r.figures[p]);
    cap.textContent = `${r.label}: ${shown.map((p) => p.toUpperCase()).join(' (left), ')}${shown.length > 1 ? ' (right)' : ''}`;
    fig.append(...shown.map((p) => img(r.figures[p], `${r.label} ${p.toUpperCase()} samples`)), cap);
    document.getElementById(`${id}-samples`).append(fig);
  }
  return t.rows.length;
}
const failed = (id) => (e) => {
  document.getElementById(`${id}-status`).textContent = `Could not read the table: ${e.message}`;
  return -1;
};
window.paperReady = await paperTable('results/', 'paper').catch(failed('paper'));
window.paperEmojiReady = await paperTable('results/emoji/', 'paper-emoji').catch(failed('paper-emoji'));
window.paperT2iReady = await paperTable('results/emoji-t2i/', 'paper-t2i').catch(failed('paper-t2i'));
// `tessera-train eval-phrasings`: paraphrases, keyword-only prompts, colour + object compositions
async function phrasings() {
  const r = await (await fetch('results/emoji-t2i/phrasings.json', { cache: 'no-cache' })).json();
  document.getElementById('phrasings-status').textContent = `${r.proposal.toUpperCase()} network, ${r.samples_per_prompt} samples per prompt, the same seeds for every bundle; `
    + `CLIPScore_tiny (${r.clip_scorer}) with the prompt / with another prompt of the set; class consistency by ${r.evaluator}. Compare bundles at equal training steps.`;
  const head = ['bundle', 'text encoder', 'steps', 'phrasing', 'prompts', 'CLIPScore_tiny own / other', 'class consistency', 'prompts with unseen words'];
  const tr = document.createElement('tr');
  tr.append(...head.map((h) => Object.assign(document.createElement('th'), { textContent: h })));
  document.querySelector('#phrasings thead').append(tr);
  let n = 0;
  for (const [bundle, sets] of Object.entries(r.bundles)) for (const [set, v] of Object.entries(sets)) {
    const row = document.createElement('tr');
    row.append(...[bundle, r.text_encoders[bundle], r.steps?.[bundle] ?? '', set, v.prompts, `${v.clip_score.toFixed(1)} / ${v.clip_score_mismatched.toFixed(1)}`,
      `${(100 * v.class_consistency).toFixed(1)}%`, v.prompts_with_unseen_words].map((x) => Object.assign(document.createElement('td'), { textContent: String(x) })));
    document.querySelector('#phrasings tbody').append(row);
    n++;
  }
  return n;
}
window.phrasingsReady = await phrasings().catch((e) => { document.getElementById('phrasings-status').textContent = `Could not read the phrasings: ${e.message}`; return -1; });
window.resultsReady = index.bundles.length;
