// The Tessera demo page: a thin UI over the tessera-web package (the same code users install).
// Generate (any shipped tokenizer, AR or NAR with step-by-step unmasking), Reconstruct (draw or
// upload; every tokenizer side by side with its token map) and Edit (brush + NAR inpainting).
import { loadGenerator } from './tessera/src/index.js';

const $ = (id) => document.getElementById(id);
const pageStart = performance.now();
const params = new URLSearchParams(location.search);
let index = { default: 'fmnist-vqkd/', bundles: [] };
const datasetOf = (b) => b.dataset ?? 'fashion-mnist';
const DATASET_LABELS = { 'fashion-mnist': 'Fashion-MNIST (grey, 32 px)', emoji: 'Emoji (colour)' };
let generator = null;
let busy = false;
let lastImages = [];     // ImageData of the last generation
let lastTokens = [];     // and their tokens
const edit = { tokens: null, image: null, mask: [], source: null };
// The token grid and image size come from the loaded model (`info`), never from constants.
const gridOf = () => generator?.info.grid ?? [8, 8];
const tokensPerImage = () => gridOf()[0] * gridOf()[1];

// State exposed for tests and curious visitors.
window.tessera = { ready: false, runs: 0, lastResult: null, lastError: null, firstImageMs: null, info: null, index: null };

function status(text, error = false, el = $('status')) {
  el.textContent = text;
  el.classList.toggle('error', error);
}

function paint(canvas, img) {
  canvas.width = img.width; canvas.height = img.height;
  canvas.getContext('2d').putImageData(img, 0, 0);
}

function drawGrid(grid, images, onClick) {
  while (grid.children.length > images.length) grid.lastChild.remove();
  while (grid.children.length < images.length) grid.append(document.createElement('canvas'));
  images.forEach((img, i) => {
    const c = grid.children[i];
    paint(c, img);
    c.onclick = onClick ? () => onClick(i, c) : null;
  });
}

/** A token map as an image: one colour per code (golden-angle hues), so equal codes look alike. */
function tokenMap(tokens, [rows, cols]) {
  const img = new ImageData(cols, rows);
  tokens.forEach((t, p) => {
    const h = (t * 137.508) % 360, s = 0.65, l = 0.35 + 0.3 * ((t * 7) % 5) / 4;
    const k = (n) => (n + h / 30) % 12;
    const a = s * Math.min(l, 1 - l);
    const f = (n) => Math.round(255 * (l - a * Math.max(-1, Math.min(k(n) - 3, 9 - k(n), 1))));
    img.data.set([f(0), f(8), f(4), 255], p * 4);
  });
  return img;
}

// ---- Generate ---------------------------------------------------------------------------------

function modelUrl() {
  return 'models/' + ($('model').value || index.default);
}

let loads = 0; // the latest load wins; an older one that finishes late is dropped
async function load() {
  const mine = ++loads;
  $('generate').disabled = true;
  window.tessera.ready = false;
  // Disposing rejects a generation in flight (its promise settles with a 'Disposed' error).
  generator?.dispose();
  generator = null;
  const device = $('device').value;
  status(`Loading ${$('model').selectedOptions[0]?.textContent ?? 'the model'} on ${device}…`);
  try {
    generator = await loadGenerator({
      modelUrl: modelUrl(), device,
      // ?threads=N: the threaded CPU engine (needs the cross-origin isolated serve of scripts/demo.sh)
      ...(params.get('threads') && crossOriginIsolated ? { threads: Number(params.get('threads')) } : {}),
      onProgress: (p) => p.stage === 'download'
        ? status(`Downloading ${p.file}: ${(p.loaded / 1024).toFixed(0)} KiB${p.cached ? ' (cached)' : ''}`)
        : status(`Starting ${p.device}…`),
    });
  } catch (e) {
    if (mine !== loads) return;
    status(`Could not load the model: ${e.message}`, true);
    window.tessera.lastError = e.message;
    return;
  }
  if (mine !== loads) {
    generator?.dispose();
    return;
  }
  const info = generator.info;
  if (edit.mask.length !== info.grid[0] * info.grid[1]) {
    edit.mask = new Array(info.grid[0] * info.grid[1]).fill(false);
    edit.tokens = null;
  }
  window.tessera.info = info;
  const sel = $('class');
  // a model of another data set brings its own classes
  if ([...sel.options].map((o) => o.text).join('\n') !== info.classes.join('\n')) {
    const keepClass = sel.value;
    sel.replaceChildren(...info.classes.map((name, i) => new Option(name, String(i))));
    if (Number(keepClass) < info.classes.length) sel.value = keepClass;
  }
  setCanvas(info);
  showTextControls(info);
  const prop = $('proposal');
  const keep = prop.value;
  prop.replaceChildren(...Object.entries(info.proposals).map(([k, d]) => new Option(`${k.toUpperCase()} (${d.kind === 'ar' ? 'GPT' : 'MaskGIT'})`, k)));
  if (info.proposals[keep]) prop.value = keep;
  applyDefaults();
  status(`Ready: ${info.name} on ${info.device === 'webgpu' ? 'WebGPU' : 'CPU'} (${info.adapter}${info.engine === 'cpu' ? ', CPU-only engine' : info.engine === 'cpu-threads' ? `, CPU-only engine on ${info.threads} threads` : ''})${info.fallbackReason ? ` — fell back: ${info.fallbackReason}` : ''}. Loaded in ${info.loadMs.toFixed(0)} ms.`);
  $('generate').disabled = false;
  $('inpaint').disabled = !info.proposals.nar || !edit.tokens;
  $('use-drawing').disabled = false;
  window.tessera.ready = true;
}

function applyDefaults() {
  const d = generator.info.proposals[$('proposal').value];
  // defaults are f32 in the model: show them rounded (0.92, not 0.9200000166893005)
  for (const k of ['temperature', 'topK', 'topP', 'guidance', 'steps']) $(k).value = String(+Number(d[k]).toPrecision(6));
  document.querySelectorAll('.nar').forEach((e) => e.classList.toggle('hidden', d.kind !== 'nar'));
}

// ---- Prompts (text-to-image bundles) ----------------------------------------------------------

const wordsOf = (text) => text.toLowerCase().split(/[^\p{L}\p{N}]+/u).filter(Boolean);
let knownWords = new Set();
/** Shows the prompt box (and hides the classes) for a text-to-image model; fills suggestions. */
function showTextControls(info) {
  const text = info.text;
  document.querySelectorAll('.text-only').forEach((e) => e.classList.toggle('hidden', !text));
  $('class-label').classList.toggle('hidden', !!text);
  knownWords = new Set(text?.words ?? []);
  if (text && !$('prompt').value) $('prompt').value = params.get('prompt') ?? text.examples[0] ?? '';
  if (text) promptChanged();
}
/** As the visitor types: completions of the last word from the training vocabulary (most frequent
 * first) and the example prompts; words training never showed are named at once. */
function promptChanged() {
  const text = generator?.info.text;
  if (!text) return;
  const value = $('prompt').value;
  const m = value.match(/^(.*?)([\p{L}\p{N}]*)$/u);
  const [head, last] = [m[1], m[2].toLowerCase()];
  const completions = last ? text.words.filter((w) => w.startsWith(last) && w !== last).slice(0, 8).map((w) => head + w) : [];
  $('prompt-suggestions').replaceChildren(...[...completions, ...text.examples].slice(0, 40).map((v) => new Option(v, v)));
  // the word being typed is not judged until it is finished
  const finished = /[\p{L}\p{N}]$/u.test(value) ? wordsOf(head) : wordsOf(value);
  showPromptNote({ unseen: [...new Set(finished.filter((w) => !knownWords.has(w)))], unknown: [], truncated: false });
}
function showPromptNote(r, done = false) {
  const note = $('prompt-note');
  const parts = [];
  if (r.unknown.length) parts.push(`characters the vocabulary lacks in: ${r.unknown.join(', ')} (read as an unknown token)`);
  if (r.unseen.length) parts.push(`never seen in training: ${r.unseen.join(', ')} (the model has no idea what ${r.unseen.length > 1 ? 'they mean' : 'it means'})`);
  if (r.truncated) parts.push(`longer than ${generator.info.text.nCtx} text tokens: the end was cut`);
  note.replaceChildren();
  if (parts.length) {
    const span = document.createElement('span'); span.className = 'warn'; span.textContent = parts.join('; ') + '.';
    note.append(span);
  } else {
    note.textContent = done ? `Prompt read in full: ${r.ids.length} text tokens.` : `${generator.info.text.words.length.toLocaleString()} words known from the training captions; the empty prompt = unconditional.`;
  }
}
$('prompt').addEventListener('input', promptChanged);

function options() {
  const num = (id) => Number($(id).value);
  const o = { proposal: $('proposal').value, count: num('count'), seed: num('seed'), temperature: num('temperature'),
    topK: num('topK'), topP: num('topP'), guidance: num('guidance') };
  if (generator.info.text) o.prompt = $('prompt').value; else o.class = num('class');
  if (generator.info.proposals[o.proposal]?.kind === 'nar') o.steps = num('steps');
  return o;
}

async function generate(opts) {
  if (!generator || busy) return;
  opts = opts ?? options();
  // keep the form in step with what runs (tests and scripts call this directly)
  for (const k of ['proposal', 'class', 'prompt', 'count', 'seed', 'temperature', 'topK', 'topP', 'guidance', 'steps']) if (opts[k] !== undefined && $(k)) $(k).value = String(opts[k]);
  busy = true;
  $('generate').disabled = true;
  const proposal = opts.proposal ?? $('proposal').value;
  const nar = generator.info.proposals[proposal]?.kind === 'nar';
  document.querySelectorAll('.nar').forEach((e) => e.classList.toggle('hidden', !nar));
  const className = opts.prompt !== undefined ? `“${opts.prompt}”` : generator.info.classes[opts.class] ?? opts.class;
  status(`Generating ${opts.count} × ${className} with ${proposal.toUpperCase()}…`);
  const [rows, cols] = gridOf();
  const order = new Array(rows * cols).fill(-1);
  const steps = [];
  const orderCanvas = $('order');
  const drawOrder = (total) => {
    const img = new ImageData(cols, rows);
    order.forEach((s, p) => { const v = s < 0 ? 255 : Math.round(40 + 200 * s / Math.max(1, total - 1)); img.data.set(s < 0 ? [255, 240, 240, 255] : [v, v, 255, 255], p * 4); });
    paint(orderCanvas, img);
  };
  const g = generator;
  try {
    const r = await g.generate({
      ...opts,
      onStep: (e) => {
        $('progress').max = e.total; $('progress').value = e.position;
        for (const [p] of e.revealed[0] ?? []) order[p] = e.position - 1;
        steps.push(e.revealed[0]?.length ?? 0);
        drawOrder(e.total);
        if (nar) status(`NAR step ${e.position}/${e.total}: revealed ${e.revealed[0]?.length ?? 0} tokens of image 1`);
      },
      onPreview: (e) => drawGrid($('grid'), e.images),
    });
    lastImages = r.images;
    lastTokens = r.tokens;
    drawGrid($('grid'), r.images, selectForEdit);
    window.tessera.runs += 1;
    window.tessera.lastResult = { tokens: r.tokens, device: r.device, proposal: r.proposal, msPerImage: r.msPerImage, ms: r.ms, options: opts, revealedPerStep: steps, prompt: r.prompt };
    if (r.prompt) showPromptNote(r.prompt, true);
    window.tessera.lastError = null;
    if (window.tessera.firstImageMs === null) window.tessera.firstImageMs = performance.now() - pageStart;
    const dev = r.device === 'webgpu' ? 'WebGPU' : 'CPU';
    status(`Done: ${r.images.length} × ${className} with ${r.proposal.toUpperCase()} on ${dev}. Click an image to edit it.`);
    $('stats').textContent = `${generator.info.name}, ${r.proposal.toUpperCase()} on ${dev}: ${r.msPerImage.toFixed(0)} ms per image (${r.ms.toFixed(0)} ms for ${r.images.length}` + (nar ? `, ${steps.length} steps: ${steps.join('+')} tokens)` : ')');
  } catch (e) {
    window.tessera.lastError = e.message;
    // a generation stopped by switching model or device is not an error to show
    if (e.name !== 'Disposed') status(`Error: ${e.message}`, true);
  } finally {
    busy = false;
    $('generate').disabled = !(generator && window.tessera.ready);
  }
}

// ---- Reconstruct ------------------------------------------------------------------------------

const draw = $('draw');
const dctx = draw.getContext('2d', { willReadFrequently: true });
let D = draw.width; // the drawing's side: the model's image size
let background = 0; // the model's background grey level (0 Fashion-MNIST, 255 emoji)
const grey = (v) => `rgb(${v},${v},${v})`;
function clearDrawing() { dctx.fillStyle = grey(background); dctx.fillRect(0, 0, D, D); }
clearDrawing();
/** Sizes the drawing to the model's images and paints it with the model's background. */
function setCanvas(info) {
  if (info.imageSize === D && info.background === background) return;
  D = info.imageSize; background = info.background ?? 0;
  draw.width = draw.height = D;
  $('pen').value = background < 128 ? '#ffffff' : '#000000';
  $('invert').parentElement.classList.toggle('hidden', info.dataset !== 'fashion-mnist');
  clearDrawing();
}
let drawing = false;
function stroke(e) {
  const r = draw.getBoundingClientRect();
  const x = (e.clientX - r.left) * D / r.width, y = (e.clientY - r.top) * D / r.height;
  dctx.fillStyle = $('pen').value;
  dctx.beginPath(); dctx.arc(x, y, 1.6 * D / 32, 0, 2 * Math.PI); dctx.fill();
}
draw.addEventListener('pointerdown', (e) => { drawing = true; stroke(e); });
draw.addEventListener('pointermove', (e) => drawing && stroke(e));
addEventListener('pointerup', () => { drawing = false; });
$('clear').onclick = clearDrawing;
$('upload').onchange = async () => {
  const f = $('upload').files[0];
  if (!f) return;
  const bmp = await createImageBitmap(f);
  // fit inside the canvas centred, on the model's background (Fashion-MNIST: inside 28 of 32 pixels)
  clearDrawing();
  const margin = generator?.info.dataset === 'fashion-mnist' ? 28 / 32 : 1;
  const s = (D * margin) / Math.max(bmp.width, bmp.height);
  const w = bmp.width * s, h = bmp.height * s;
  dctx.drawImage(bmp, (D - w) / 2, (D - h) / 2, w, h);
  if ($('invert').checked) invertDrawing();
};
function invertDrawing() {
  const d = dctx.getImageData(0, 0, D, D);
  for (let i = 0; i < d.data.length; i += 4) for (let k = 0; k < 3; k++) d.data[i + k] = 255 - d.data[i + k];
  dctx.putImageData(d, 0, 0);
}
$('invert').onchange = invertDrawing;

const tokenizerOnly = new Map(); // bundle path -> Generator (tokenizer only, no proposal download)
async function reconstructAll(image = dctx.getImageData(0, 0, D, D)) {
  const body = $('recon-table').tBodies[0];
  body.replaceChildren();
  const results = [];
  const dataset = generator?.info.dataset ?? 'fashion-mnist';
  // text-to-image bundles reuse a class-conditional bundle's tokenizer: not listed twice
  for (const b of index.bundles.filter((b) => datasetOf(b) === dataset && !b.text)) {
    const tr = body.insertRow();
    tr.insertCell().textContent = `${b.label}${b.teacher ? ` (${b.teacher_label ?? b.teacher})` : ''}`;
    const [c1, c2, c3, c4] = [tr.insertCell(), tr.insertCell(), tr.insertCell(), tr.insertCell()];
    c3.textContent = 'loading…';
    try {
      let g = tokenizerOnly.get(b.path);
      if (!g) {
        g = await loadGenerator({ modelUrl: 'models/' + b.path, device: $('device').value === 'webgpu' ? 'webgpu' : 'cpu', proposals: [] });
        tokenizerOnly.set(b.path, g);
      }
      const r = await g.reconstruct(image);
      const rec = document.createElement('canvas'); paint(rec, r.images[0]); c1.append(rec);
      const map = document.createElement('canvas'); paint(map, tokenMap(r.tokens[0], g.info.grid)); c2.append(map);
      const distinct = new Set(r.tokens[0]).size;
      c3.textContent = `${distinct} of ${g.info.codebookSize}`;
      // MSE against the input when the model works at the input's size
      let mse = null;
      if (r.images[0].data.length === image.data.length) {
        let se = 0;
        for (let i = 0; i < image.data.length; i += 4) se += ((image.data[i] - r.images[0].data[i]) / 255) ** 2;
        mse = se / (image.data.length / 4);
      }
      c4.textContent = mse === null ? '–' : mse.toFixed(4);
      results.push({ bundle: b.name, tokenizer: b.tokenizer, tokens: r.tokens[0], distinct, mse, device: r.device });
    } catch (e) {
      c3.textContent = `error: ${e.message}`;
      results.push({ bundle: b.name, tokenizer: b.tokenizer, error: e.message });
    }
  }
  window.tessera.lastReconstruction = results;
  return results;
}
$('reconstruct').onclick = () => reconstructAll();

// ---- Edit -------------------------------------------------------------------------------------

function showEditSource() {
  if (edit.image) paint($('edit-src'), edit.image);
  const [rows, cols] = gridOf();
  const m = new ImageData(cols, rows);
  edit.mask.forEach((on, p) => m.data.set(on ? [255, 40, 40, 255] : [0, 0, 0, 0], p * 4));
  paint($('edit-mask'), m);
  $('inpaint').disabled = !edit.tokens || !generator?.info.proposals.nar;
}
function selectForEdit(i, canvas) {
  document.querySelectorAll('#grid canvas').forEach((c) => c.classList.remove('selected'));
  canvas.classList.add('selected');
  edit.tokens = lastTokens[i].slice();
  edit.image = lastImages[i];
  edit.source = `generated image ${i + 1}`;
  showEditSource();
}
async function useDrawing() {
  const r = await generator.reconstruct(dctx.getImageData(0, 0, D, D));
  edit.tokens = r.tokens[0];
  edit.image = r.images[0];
  edit.source = 'drawing';
  showEditSource();
}
$('use-drawing').onclick = () => useDrawing().catch((e) => status(e.message, true, $('edit-status')));
let brushing = false;
function brush(e) {
  const r = $('edit-mask').getBoundingClientRect();
  const [rows, cols] = gridOf();
  const x = Math.floor((e.clientX - r.left) * cols / r.width), y = Math.floor((e.clientY - r.top) * rows / r.height);
  if (x >= 0 && x < cols && y >= 0 && y < rows) { edit.mask[y * cols + x] = true; showEditSource(); }
}
$('edit-mask').addEventListener('pointerdown', (e) => { brushing = true; brush(e); });
$('edit-mask').addEventListener('pointermove', (e) => brushing && brush(e));
addEventListener('pointerup', () => { brushing = false; });
$('clear-mask').onclick = () => { edit.mask.fill(false); showEditSource(); };

async function inpaint({ cells, count = 4, seed = Number($('seed').value), cls = Number($('class').value), prompt = $('prompt').value } = {}) {
  if (cells) { edit.mask.fill(false); cells.forEach((p) => { edit.mask[p] = true; }); showEditSource(); }
  if (!edit.tokens) throw new Error('select an image to edit first');
  const masked = edit.mask.filter(Boolean).length;
  if (!masked) throw new Error('brush over at least one cell');
  status(`Inpainting ${masked} tokens of the ${edit.source}, ${count} variants…`, false, $('edit-status'));
  const tokens = Array.from({ length: count }, () => edit.tokens);
  const mask = Array.from({ length: count }, () => edit.mask);
  // a text-to-image model inpaints what the prompt says; a class-conditional one, the class
  const r = await generator.inpaint({ tokens, mask, seed, ...(generator.info.text ? { prompt } : { class: cls }) });
  drawGrid($('edit-out'), r.images);
  status(`Done: ${masked} tokens resampled by NAR, ${tokensPerImage() - masked} kept (${r.msPerImage.toFixed(0)} ms per image).`, false, $('edit-status'));
  window.tessera.lastInpaint = { source: edit.tokens, mask: edit.mask.slice(), tokens: r.tokens };
  return window.tessera.lastInpaint;
}
$('inpaint').onclick = () => inpaint().catch((e) => status(e.message, true, $('edit-status')));

// ---- Start ------------------------------------------------------------------------------------

Object.assign(window.tessera, { generate, reconstructAll, inpaint, useDrawing, selectForEdit: (i) => selectForEdit(i, $('grid').children[i]) });
$('controls').addEventListener('submit', (e) => { e.preventDefault(); generate(); });
$('device').addEventListener('change', () => {
  // the tokenizer-only generators of the Reconstruct table ran on the old device: release them
  for (const g of tokenizerOnly.values()) g.dispose();
  tokenizerOnly.clear();
  return load();
});
$('model').addEventListener('change', load);
/** The tokenizers of one data set in the model list; its default (or first) selected. */
function showDataset(dataset) {
  const bundles = index.bundles.filter((b) => datasetOf(b) === dataset);
  $('model').replaceChildren(...bundles.map((b) => new Option(b.text
    ? `Text to image: ${b.label}${b.teacher ? ` (${b.teacher_label ?? b.teacher})` : ''}, ${b.text.encoder === 'learned' ? 'in-project text encoder' : `pretrained text encoder ${b.text.name ?? ''} (+${((b.download_bytes?.text_encoder ?? 0) / 1e6).toFixed(0)} MB download)`}`
    : `${b.label}${b.teacher ? ` (${b.teacher_label ?? b.teacher})` : ''} — ${b.family}`, b.path)));
  $('model').value = bundles.some((b) => b.path === index.default) ? index.default : bundles[0]?.path ?? '';
}
$('dataset').addEventListener('change', () => { showDataset($('dataset').value); return load(); });
$('proposal').addEventListener('change', applyDefaults);
if (params.get('device')) $('device').value = params.get('device');

try {
  index = await (await fetch('models/index.json', { cache: 'no-cache' })).json();
} catch (e) {
  status(`Could not read models/index.json: ${e.message}`, true);
}
window.tessera.index = index;
const datasets = [...new Set(index.bundles.map(datasetOf))];
$('dataset').replaceChildren(...datasets.map((d) => new Option(DATASET_LABELS[d] ?? d, d)));
const first = index.bundles.find((b) => b.path === (params.get('model') ?? index.default)) ?? index.bundles[0];
if (first) { $('dataset').value = datasetOf(first); showDataset(datasetOf(first)); $('model').value = first.path; }
// every shipped data set's sources and licences (CC-BY and CC-BY-SA art must be credited)
$('credits').textContent = [...new Set(index.bundles.flatMap((b) => b.credits ?? []))].join('; ') || 'see the model cards';
$('weights-credits').textContent = [...new Set(index.bundles.flatMap((b) => b.weights_credits ?? []))].join('; ') || 'none (every network trained here)';
if (params.get('proposal')) $('proposal').add(new Option(params.get('proposal'), params.get('proposal')));
$('proposal').value = params.get('proposal') ?? 'ar';
await load();
$('reconstruct').disabled = false;
// The visitor sees images at once: generate the first grid on load (skip with ?autostart=0).
if (generator && params.get('autostart') !== '0') await generate();
