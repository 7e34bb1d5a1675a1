// Renders the tokenizer comparison from models/index.json (itself generated from eval.json files).
const index = await (await fetch('models/index.json', { cache: 'no-cache' })).json();
const pct = (v) => (v == null ? '–' : `${(100 * v).toFixed(1)}%`);
const num = (v) => (v == null ? '–' : v.toFixed(2));
const cols = [
  ['tokenizer', (b) => `${b.label}${b.teacher ? ` (${b.teacher_label ?? b.teacher})` : ''}`],
  ['family', (b) => b.family],
  ['codebook', (b) => b.codebook_size ?? '–'],
  ['usage', (b) => pct(b.eval.codebook_usage)],
  ['PSNR (dB)', (b) => b.eval.reconstruction_psnr_db?.toFixed(2) ?? '–'],
  ['rFID_eval', (b) => num(b.eval.rfid_eval)],
  ['PPL AR / NAR', (b) => `${num(b.eval.ppl_ar)} / ${num(b.eval.ppl_nar)}`],
  ['FID_eval AR / NAR', (b) => `${num(b.eval.fid_eval_ar)} / ${num(b.eval.fid_eval_nar)}`],
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
  h.innerHTML = `${b.label} — <a href="models/${b.path}README.md">model card</a>`;
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
window.resultsReady = index.bundles.length;
