// The Tessera demo page: a thin UI over the tessera-web package (the same code users install).
import { loadGenerator } from './tessera/src/index.js';

const $ = (id) => document.getElementById(id);
const pageStart = performance.now();
const params = new URLSearchParams(location.search);
const modelUrl = params.get('model') || 'models/fmnist-vq-ar/';
let generator = null;
let busy = false;

// State exposed for tests and curious visitors.
window.tessera = { ready: false, runs: 0, lastResult: null, lastError: null, firstImageMs: null, info: null };

function status(text, error = false) {
  $('status').textContent = text;
  $('status').classList.toggle('error', error);
}

function draw(images) {
  const grid = $('grid');
  while (grid.children.length > images.length) grid.lastChild.remove();
  while (grid.children.length < images.length) grid.append(document.createElement('canvas'));
  images.forEach((img, i) => {
    const c = grid.children[i];
    c.width = img.width; c.height = img.height;
    c.getContext('2d').putImageData(img, 0, 0);
  });
}

async function load(device) {
  $('generate').disabled = true;
  window.tessera.ready = false;
  generator?.dispose();
  generator = null;
  status(`Loading the model on ${device}…`);
  try {
    generator = await loadGenerator({
      modelUrl, device,
      onProgress: (p) => p.stage === 'download'
        ? status(`Downloading ${p.file}: ${(p.loaded / 1024).toFixed(0)} KiB${p.cached ? ' (cached)' : ''}`)
        : status(`Starting ${p.device}…`),
    });
  } catch (e) {
    status(`Could not load the model: ${e.message}`, true);
    window.tessera.lastError = e.message;
    return;
  }
  const info = generator.info;
  window.tessera.info = info;
  const sel = $('class');
  if (!sel.options.length) info.classes.forEach((name, i) => sel.add(new Option(name, String(i))));
  // defaults are f32 in the model: show them rounded (0.92, not 0.9200000166893005)
  for (const [k, v] of Object.entries(info.defaults)) if ($(k).value === '') $(k).value = String(+Number(v).toPrecision(6));
  status(`Ready on ${info.device === 'webgpu' ? 'WebGPU' : 'CPU'} (${info.adapter})${info.fallbackReason ? ` — fell back: ${info.fallbackReason}` : ''}. Loaded in ${info.loadMs.toFixed(0)} ms.`);
  $('generate').disabled = false;
  window.tessera.ready = true;
}

function options() {
  const num = (id) => Number($(id).value);
  return {
    class: num('class'), count: num('count'), seed: num('seed'), temperature: num('temperature'),
    topK: num('topK'), topP: num('topP'), guidance: num('guidance'),
  };
}

async function generate(opts = options()) {
  if (!generator || busy) return;
  // keep the form in step with what runs (tests and scripts call this directly)
  for (const k of ['class', 'count', 'seed', 'temperature', 'topK', 'topP', 'guidance']) if (opts[k] !== undefined && $(k)) $(k).value = String(opts[k]);
  busy = true;
  $('generate').disabled = true;
  $('progress').max = generator.info.grid[0] * generator.info.grid[1];
  const className = generator.info.classes[opts.class] ?? opts.class;
  status(`Generating ${opts.count} × ${className}…`);
  try {
    const r = await generator.generate({
      ...opts,
      onToken: (e) => { $('progress').value = e.position; },
      onPreview: (e) => draw(e.images),
    });
    draw(r.images);
    window.tessera.runs += 1;
    window.tessera.lastResult = { tokens: r.tokens, device: r.device, msPerImage: r.msPerImage, ms: r.ms, options: opts };
    window.tessera.lastError = null;
    if (window.tessera.firstImageMs === null) window.tessera.firstImageMs = performance.now() - pageStart;
    const dev = r.device === 'webgpu' ? 'WebGPU' : 'CPU';
    status(`Done: ${r.images.length} × ${className} on ${dev}.`);
    $('stats').textContent = `${dev}: ${r.msPerImage.toFixed(0)} ms per image (${r.ms.toFixed(0)} ms for ${r.images.length}).`;
  } catch (e) {
    window.tessera.lastError = e.message;
    status(`Error: ${e.message}`, true);
  } finally {
    busy = false;
    $('generate').disabled = false;
  }
}

window.tessera.generate = generate;
$('controls').addEventListener('submit', (e) => { e.preventDefault(); generate(); });
$('device').addEventListener('change', () => load($('device').value));
if (params.get('device')) $('device').value = params.get('device');

await load($('device').value);
// The visitor sees images at once: generate the first grid on load (skip with ?autostart=0).
if (generator && params.get('autostart') !== '0') await generate();
