//! Tessera in the browser. A thin wasm-bindgen layer over `tessera`: load a bundle from bytes
//! (checksums verified), pick a device (`webgpu`, `cpu`, or `auto` = WebGPU with a checked
//! fallback to CPU), generate with AR or NAR proposal networks with streamed tokens and previews,
//! inpaint (NAR), encode images to tokens (reconstruction) and decode tokens. Every entry point
//! validates its input before burn sees it and returns a rejected Promise on error; a failed call
//! leaves the model usable.
use burn::prelude::*;
#[cfg(feature = "webgpu")]
use burn::tensor::wgpu::WgpuBackend;
use js_sys::{Function, Object, Reflect, Uint8ClampedArray};
use serde::Deserialize;
#[cfg(feature = "webgpu")]
use std::cell::RefCell;
use std::rc::Rc;
use tessera::bundle::{Bundle, Manifest, PromptReport, Proposal, TEXT_ENCODER, TEXT_TOKENIZER, TextFiles};
use tessera::sampling::{MAX_COUNT, Request, decode, read_f32, to_rgba, tokens_tensor};
use tessera::sampling::sampler::SamplingOptions;
use tessera::TesseraError;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

#[cfg(feature = "webgpu")]
thread_local! {
    /// burn's WebGPU device may be initialised only once per module.
    static WEBGPU: RefCell<Option<Result<(Device, String), String>>> = const { RefCell::new(None) };
}

// Static constructors run once, here. wasm-ld links a module with constructors (`inventory`
// registrations from pliron, a cubecl dependency) as a "new-style command": it wraps *every* export
// in a call to `__wasm_call_ctors` unless the program calls that function itself (LLVM D81689). So
// each JS -> wasm crossing re-ran them (38.7 ms per `info()` call, 11-14 ms per progress event). One
// explicit call at instantiation turns the wrapping off; `constructor_runs` lets a test check it.
#[cfg(target_arch = "wasm32")]
unsafe extern "C" {
    fn __wasm_call_ctors();
}

static CONSTRUCTOR_RUNS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

extern "C" fn count_constructor_run() {
    CONSTRUCTOR_RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// One more static constructor, registered the way `inventory` registers its own.
#[cfg(target_arch = "wasm32")]
#[used]
#[unsafe(link_section = ".init_array")]
static COUNT_CONSTRUCTOR_RUNS: extern "C" fn() = count_constructor_run;

/// How many times the module's static constructors have run (1 once instantiated).
#[wasm_bindgen(js_name = constructorRuns, skip_typescript)]
pub fn constructor_runs() -> u32 {
    CONSTRUCTOR_RUNS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Runs the static constructors exactly once (twice would link `inventory`'s registry into a
/// cycle): at instantiation (`start`) and, for hosts that never call `start` (wasm-bindgen-test),
/// before any model is built. Without them cubecl's WebGPU kernels fail to expand.
fn ensure_constructors() {
    #[cfg(target_arch = "wasm32")]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| unsafe { __wasm_call_ctors() });
    }
}

#[wasm_bindgen(start)]
pub fn start() {
    ensure_constructors();
    console_error_panic_hook::set_once();
    // cubecl reports WGSL compile errors only through `log`
    let _ = console_log::init_with_level(log::Level::Warn);
}

/// A JS `Error` whose `name` is the error's kind (`protocol.js`'s ERROR_KINDS), so that callers
/// can branch on it without parsing the message.
fn js_error(kind: &str, message: &str) -> JsValue {
    let e = js_sys::Error::new(message);
    e.set_name(kind);
    e.into()
}

fn kind(e: &TesseraError) -> &'static str {
    match e {
        TesseraError::Bundle(_) => "BundleError",
        TesseraError::InvalidOption(_) => "InvalidOption",
        TesseraError::InvalidTokens(_) => "InvalidTokens",
        TesseraError::Device(_) => "DeviceError",
        TesseraError::Cancelled => "AbortError",
    }
}

fn js_err(e: TesseraError) -> JsValue {
    js_error(kind(&e), &e.to_string())
}

fn bundle_err(e: tessera::BundleError) -> JsValue {
    js_err(TesseraError::Bundle(e))
}

fn option_err(message: impl std::fmt::Display) -> JsValue {
    js_error("InvalidOption", &message.to_string())
}

fn now() -> f64 {
    js_sys::Date::now()
}

#[cfg(feature = "webgpu")]
async fn webgpu_device() -> Result<(Device, String), String> {
    if let Some(r) = WEBGPU.with(|w| w.borrow().clone()) {
        return r;
    }
    let r = match Device::wgpu_options().graphics_api(WgpuBackend::WebGpu).init_with_setup_async().await {
        Ok((device, setup)) => {
            let i = setup.adapter.get_info();
            let name = [i.name.as_str(), i.driver.as_str(), i.driver_info.as_str()].iter().filter(|s| !s.is_empty()).cloned().collect::<Vec<_>>().join(" ");
            Ok((device, if name.is_empty() { format!("{:?} adapter (unnamed)", i.device_type) } else { name }))
        }
        Err(e) => Err(format!("WebGPU is not available: {e:?}")),
    };
    WEBGPU.with(|w| *w.borrow_mut() = Some(r.clone()));
    r
}

/// The CPU-only engine has no WebGPU backend: "webgpu" is refused, "auto" runs on the CPU.
#[cfg(not(feature = "webgpu"))]
async fn webgpu_device() -> Result<(Device, String), String> {
    Err(format!("WebGPU is not available: this is the CPU-only engine ({ENGINE}); load the full engine for WebGPU"))
}

/// Which build of the module this is: "full" (WebGPU + CPU), "cpu" (CPU only, smaller) or
/// "cpu-threads" (CPU only, on a pool of wasm threads).
const ENGINE: &str = if cfg!(feature = "webgpu") { "full" } else if cfg!(feature = "threads") { "cpu-threads" } else { "cpu" };

/// The threaded engine's pool: `await initThreadPool(n)` once after `init()` and before `loadModel`
/// (n Web Workers sharing the module's memory; the page must be cross-origin isolated).
#[cfg(feature = "threads")]
pub use wasm_bindgen_rayon::init_thread_pool;

/// Threads the CPU backend computes on (1 without the thread pool).
fn cpu_threads() -> u32 {
    #[cfg(feature = "threads")]
    return rayon::current_num_threads() as u32;
    #[cfg(not(feature = "threads"))]
    1
}

/// A loaded model on one device.
#[wasm_bindgen]
pub struct Tessera {
    inner: Rc<Inner>,
}

struct Inner {
    bundle: Bundle,
    device: Device,
    device_name: &'static str,
    adapter: String,
    fallback_reason: Option<String>,
    load_ms: f64,
}

/// Largest absolute difference between two decodings of the same tokens.
async fn max_abs_diff(a: &Bundle, da: &Device, b: &Bundle, db: &Device, tokens: &[Vec<u32>]) -> Result<f32, TesseraError> {
    let per = a.manifest.tokenizer.tokens_per_image();
    let k = a.manifest.tokenizer.codebook_size();
    let (x, _) = decode(&a.tokenizer, tokens_tensor(tokens, per, k, da)?).await?;
    let (y, _) = decode(&b.tokenizer, tokens_tensor(tokens, per, k, db)?).await?;
    Ok(x.iter().zip(&y).map(|(p, q)| (p - q).abs()).fold(0.0, f32::max))
}

/// Loads a bundle from its manifest text and its weights files (`files`: an object mapping roles
/// to `Uint8Array`s: `tokenizer`, plus any of the manifest's proposal networks, e.g. `ar`, `nar`)
/// on `device` ("webgpu", "cpu" or "auto"). Rejects with a message on any invalid input.
#[wasm_bindgen(js_name = loadModel)]
pub async fn load_model(manifest: String, files_obj: JsValue, device: String) -> Result<Tessera, JsValue> {
    ensure_constructors();
    let t0 = now();
    if !["webgpu", "cpu", "auto"].contains(&device.as_str()) {
        return Err(option_err(format!("unknown device '{device}': use \"webgpu\", \"cpu\" or \"auto\"")));
    }
    let manifest = Manifest::parse(&manifest).map_err(bundle_err)?;
    let mut files = std::collections::BTreeMap::new();
    if !files_obj.is_object() {
        return Err(option_err("files must be an object mapping roles to Uint8Arrays"));
    }
    for key in Object::keys(&Object::from(files_obj.clone())) {
        let role = key.as_string().unwrap_or_default();
        let v = Reflect::get(&files_obj, &key)?;
        let bytes = v.dyn_into::<js_sys::Uint8Array>().map_err(|_| option_err(format!("files['{role}'] is not a Uint8Array")))?;
        files.insert(role, bytes.to_vec());
    }
    let tokenizer = files.remove("tokenizer").ok_or_else(|| option_err("files: missing 'tokenizer'"))?;
    let text_tokenizer = files.remove(TEXT_TOKENIZER);
    let text_encoder = files.remove(TEXT_ENCODER);
    if let Some(role) = files.keys().find(|r| !manifest.proposals.contains_key(*r)) {
        return Err(option_err(format!("files: '{role}' is not a proposal network of this bundle")));
    }
    let proposals: Vec<(&str, &[u8])> = files.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
    let cpu = Device::flex();
    if text_encoder.is_some() && text_tokenizer.is_none() {
        return Err(option_err(format!("files: '{TEXT_ENCODER}' without '{TEXT_TOKENIZER}'")));
    }
    let text = text_tokenizer.as_deref().map(|tokenizer| TextFiles { tokenizer, encoder: text_encoder.as_deref() });
    let load = |d: &Device| Bundle::from_bytes(manifest.clone(), &tokenizer, &proposals, text, d).map_err(bundle_err);
    let (bundle, dev, name, adapter, fallback_reason) = match device.as_str() {
        "cpu" => (load(&cpu)?, cpu, "cpu", "burn flex (wasm simd128)".to_string(), None),
        "webgpu" => {
            let (d, adapter) = webgpu_device().await.map_err(|e| js_error("DeviceError", &e))?;
            (load(&d)?, d, "webgpu", adapter, None)
        }
        "auto" => {
            let cpu_bundle = load(&cpu)?;
            match webgpu_device().await {
                Err(e) => (cpu_bundle, cpu, "cpu", "burn flex (wasm simd128)".into(), Some(e)),
                Ok((d, adapter)) => {
                    // Guard against a WebGPU path that runs but computes wrong values: decode a
                    // few token grids on both devices and compare before trusting it.
                    let gpu_bundle = load(&d)?;
                    let k = manifest.tokenizer.codebook_size() as u32;
                    let probe: Vec<Vec<u32>> = (0..2u32).map(|i| (0..manifest.tokenizer.tokens_per_image() as u32).map(|j| (j * 37 + i * 11) % k).collect()).collect();
                    match max_abs_diff(&gpu_bundle, &d, &cpu_bundle, &cpu, &probe).await {
                        Ok(diff) if diff < 1e-3 => (gpu_bundle, d, "webgpu", adapter, None),
                        Ok(diff) => (cpu_bundle, cpu, "cpu", "burn flex (wasm simd128)".into(), Some(format!("WebGPU results differ from CPU (max abs diff {diff})"))),
                        Err(e) => (cpu_bundle, cpu, "cpu", "burn flex (wasm simd128)".into(), Some(format!("WebGPU failed: {e}"))),
                    }
                }
            }
        }
        other => return Err(option_err(format!("unknown device '{other}'"))),
    };
    Ok(Tessera { inner: Rc::new(Inner { bundle, device: dev, device_name: name, adapter, fallback_reason, load_ms: now() - t0 }) })
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ClassRef {
    Index(usize),
    Name(String),
}

/// Options of `generate` (camelCase in JS). Unknown keys are rejected so typos do not pass silently.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct GenerateOptions {
    /// Proposal network: "ar" or "nar" (default: "ar" when loaded, else the first loaded).
    proposal: Option<String>,
    /// Class-conditional bundles: the class (index or name).
    class: Option<ClassRef>,
    /// Text-to-image bundles: the prompt ("" = unconditional).
    prompt: Option<String>,
    #[serde(default = "one")]
    count: usize,
    seed: Option<f64>,
    temperature: Option<f32>,
    top_k: Option<usize>,
    top_p: Option<f32>,
    guidance: Option<f32>,
    /// NAR: parallel decoding steps.
    steps: Option<usize>,
    /// NAR: Gumbel noise on confidences, annealed to 0.
    confidence_noise: Option<f32>,
    /// NAR inpainting: one grid per image; numbers are kept, `null`s are resampled.
    given: Option<Vec<Vec<Option<u32>>>>,
    /// Post a preview image every this many steps (0 = never; default: one grid row for AR,
    /// every step for NAR).
    preview_every: Option<usize>,
}
fn one() -> usize {
    1
}

/// The keys of `GenerateOptions` as JS passes them (protocol.js's GENERATE_OPTIONS).
const GENERATE_OPTIONS: [&str; 13] =
    ["proposal", "class", "prompt", "count", "seed", "temperature", "topK", "topP", "guidance", "steps", "confidenceNoise", "given", "previewEvery"];

fn set(o: &Object, k: &str, v: impl Into<JsValue>) {
    let _ = Reflect::set(o, &k.into(), &v.into());
}

fn token_arrays(tokens: &[Vec<u32>]) -> js_sys::Array {
    let a = js_sys::Array::new();
    for t in tokens {
        a.push(&js_sys::Uint32Array::from(t.as_slice()));
    }
    a
}

fn strings(v: &[String]) -> js_sys::Array {
    v.iter().map(|w| JsValue::from_str(w)).collect()
}

/// `{ ids: Uint32Array, unknown: string[], unseen: string[], truncated }`: what a prompt became.
fn report_object(r: &PromptReport) -> Object {
    let o = Object::new();
    set(&o, "ids", js_sys::Uint32Array::from(r.ids.as_slice()));
    set(&o, "unknown", strings(&r.unknown));
    set(&o, "unseen", strings(&r.unseen));
    set(&o, "truncated", r.truncated);
    o
}

fn rgba_array(images: &[Vec<u8>]) -> Uint8ClampedArray {
    let flat: Vec<u8> = images.concat();
    Uint8ClampedArray::from(flat.as_slice())
}

impl Inner {
    async fn request(&self, o: GenerateOptions) -> Result<(String, Request, usize, Option<PromptReport>), TesseraError> {
        let m = &self.bundle.manifest;
        let proposal = match o.proposal {
            Some(p) => p,
            None if self.bundle.proposals.contains_key("ar") => "ar".into(),
            None => self.bundle.proposals.keys().next().cloned().ok_or_else(|| TesseraError::InvalidOption("no proposal network loaded".into()))?,
        };
        let entry = m.proposal(&proposal)?;
        let (class, prompt) = match (o.class, o.prompt, &m.text) {
            (Some(_), _, Some(_)) => return Err(TesseraError::InvalidOption("this model generates from a prompt: give `prompt`, not `class` (\"\" = unconditional)".into())),
            (None, None, Some(_)) => return Err(TesseraError::InvalidOption("this model generates from a prompt: give `prompt` (\"\" = unconditional)".into())),
            (None, Some(p), Some(_)) => (0, Some(p)),
            (_, Some(_), None) => return Err(TesseraError::InvalidOption("this model is class-conditional: give `class`, not `prompt`".into())),
            (None, None, None) => return Err(TesseraError::InvalidOption("missing option `class` (an index or a class name)".into())),
            (Some(ClassRef::Index(i)), None, None) => (i, None),
            (Some(ClassRef::Name(n)), None, None) => (
                m.dataset.classes.iter().position(|c| c.eq_ignore_ascii_case(&n)).ok_or_else(|| {
                    TesseraError::InvalidOption(format!("unknown class '{n}'; classes: {}", m.dataset.classes.join(", ")))
                })?,
                None,
            ),
        };
        let seed = match o.seed {
            None => 0,
            Some(s) if s.is_finite() && s >= 0.0 && s.fract() == 0.0 && s <= 9007199254740991.0 => s as u64,
            Some(s) => return Err(TesseraError::InvalidOption(format!("seed must be a non-negative integer, got {s}"))),
        };
        let d = &entry.sampling;
        let options = SamplingOptions {
            seed,
            temperature: o.temperature.unwrap_or(d.temperature),
            top_k: o.top_k.unwrap_or(d.top_k),
            top_p: o.top_p.unwrap_or(d.top_p),
            guidance: o.guidance.unwrap_or(d.guidance),
            steps: o.steps.unwrap_or(d.steps),
            confidence_noise: o.confidence_noise.unwrap_or(d.confidence_noise),
        };
        let (prompt, report) = match prompt {
            Some(p) => self.bundle.encode_prompt(&p).await.map(|(p, r)| (Some(p), Some(r)))?,
            None => (None, None),
        };
        let req = Request { class, count: o.count, options, prompt };
        req.validate(entry.model.num_classes(), entry.model.vocab_size())?;
        let every = o.preview_every.unwrap_or(if entry.model.kind() == "nar" { 1 } else { m.grid[1] });
        Ok((proposal, req, every, report))
    }

    async fn generate(self: Rc<Self>, opts: JsValue, on_progress: Option<Function>) -> Result<JsValue, TesseraError> {
        // Unknown keys are typos: refuse them here (serde-wasm-bindgen does not apply `deny_unknown_fields`).
        if opts.is_object() {
            for key in Object::keys(&Object::from(opts.clone())) {
                let key = key.as_string().unwrap_or_default();
                if !GENERATE_OPTIONS.contains(&key.as_str()) {
                    return Err(TesseraError::InvalidOption(format!("unknown option '{key}'; expected one of {}", GENERATE_OPTIONS.join(", "))));
                }
            }
        }
        let mut o: GenerateOptions = serde_wasm_bindgen::from_value(opts).map_err(|e| TesseraError::InvalidOption(e.to_string()))?;
        let given = o.given.take();
        let (proposal, req, preview_every, report) = self.request(o).await?;
        let t0 = now();
        let m = &self.bundle.manifest;
        let (per, k) = (m.tokenizer.tokens_per_image(), m.tokenizer.codebook_size());
        let count = req.count;
        let mut s = self.bundle.sampler(&proposal, req, given, &self.device)?;
        while !s.done() {
            s.step().await?;
            if let Some(cb) = &on_progress {
                let ev = Object::new();
                let (pos, total) = s.progress();
                set(&ev, "position", pos as u32);
                set(&ev, "total", total as u32);
                // tokens set by this step, every image in one flat array ([position, token, ...]
                // image after image) and how many each image has: two typed arrays per event
                // whatever the batch, so a step costs the same few JS <-> wasm crossings
                let rows = s.last_step();
                let counts: Vec<u32> = rows.iter().map(|r| r.len() as u32).collect();
                let flat: Vec<u32> = rows.iter().flatten().flat_map(|&(p, t)| [p as u32, t]).collect();
                set(&ev, "revealed", js_sys::Uint32Array::from(flat.as_slice()));
                set(&ev, "revealedCounts", js_sys::Uint32Array::from(counts.as_slice()));
                if preview_every > 0 && pos % preview_every == 0 && !s.done() {
                    let filled = s.filled(m.blank_token, per);
                    let (px, shape) = decode(&self.bundle.tokenizer, tokens_tensor(&filled, per, k, &self.device)?).await?;
                    set(&ev, "preview", rgba_array(&to_rgba(&px, shape)));
                }
                // The callback may stop the run: `false`, or a Promise resolving to `false` (the
                // worker yields to its message queue there, so a 'cancel' can arrive between steps).
                let verdict = match cb.call1(&JsValue::NULL, &ev) {
                    Ok(v) if v.is_instance_of::<js_sys::Promise>() => wasm_bindgen_futures::JsFuture::from(js_sys::Promise::from(v)).await.unwrap_or(JsValue::TRUE),
                    Ok(v) => v,
                    Err(_) => JsValue::TRUE,
                };
                if verdict.as_bool() == Some(false) {
                    return Err(TesseraError::Cancelled);
                }
            }
        }
        let tokens = s.filled(0, per);
        let (px, shape) = decode(&self.bundle.tokenizer, tokens_tensor(&tokens, per, k, &self.device)?).await?;
        let out = self.images_object(&px, shape);
        set(&out, "tokens", token_arrays(&tokens));
        set(&out, "proposal", proposal.as_str());
        if let Some(r) = &report {
            set(&out, "prompt", report_object(r));
        }
        let ms = now() - t0;
        set(&out, "ms", ms);
        set(&out, "msPerImage", ms / count as f64);
        Ok(out.into())
    }

    /// RGBA images (`count` x size x size x 4 bytes) -> tokens and their reconstructions.
    async fn reconstruct(self: Rc<Self>, rgba: Vec<u8>, count: usize) -> Result<JsValue, TesseraError> {
        let m = &self.bundle.manifest;
        let (s, c) = (m.dataset.image_size, m.dataset.channels);
        if count == 0 || count > MAX_COUNT || rgba.len() != count * s * s * 4 {
            return Err(TesseraError::InvalidOption(format!("expected 1..={MAX_COUNT} RGBA images of {s}x{s} ({} bytes each), got {} bytes for {count}", s * s * 4, rgba.len())));
        }
        // [n, c, s, s] in [-1, 1]: alpha composited on the training background (as the data
        // was); grey = luminance for one-channel models
        let bg = m.dataset.background as f32;
        let mut x = vec![0f32; count * c * s * s];
        for i in 0..count {
            for p in 0..s * s {
                let q = &rgba[(i * s * s + p) * 4..(i * s * s + p) * 4 + 4];
                let a = q[3] as f32 / 255.0;
                let mix = |v: u8| (v as f32 * a + bg * (1.0 - a)).round() as u8;
                let px = [mix(q[0]), mix(q[1]), mix(q[2])];
                let f = |v: u8| v as f32 / 127.5 - 1.0;
                if c == 1 {
                    x[i * s * s + p] = f(((px[0] as f32 * 0.299 + px[1] as f32 * 0.587 + px[2] as f32 * 0.114).round()) as u8);
                } else {
                    for ch in 0..c {
                        x[(i * c + ch) * s * s + p] = f(px[ch.min(2)]);
                    }
                }
            }
        }
        let images = Tensor::<4>::from_data(TensorData::new(x, [count, c, s, s]), &self.device);
        let tokens = self.bundle.tokenizer.encode(images);
        let data = tokens.clone().into_data_async().await.map_err(|e| TesseraError::Device(format!("{e:?}")))?;
        let flat: Vec<i64> = data.convert::<i64>().try_to_vec().map_err(|e| TesseraError::Device(format!("{e:?}")))?;
        let per = m.tokenizer.tokens_per_image();
        let rows: Vec<Vec<u32>> = flat.chunks(per).map(|r| r.iter().map(|&v| v as u32).collect()).collect();
        let (px, shape) = decode(&self.bundle.tokenizer, tokens).await?;
        let out = self.images_object(&px, shape);
        set(&out, "tokens", token_arrays(&rows));
        Ok(out.into())
    }

    fn images_object(&self, px: &[f32], shape: [usize; 4]) -> Object {
        let out = Object::new();
        set(&out, "pixels", rgba_array(&to_rgba(px, shape)));
        set(&out, "count", shape[0] as u32);
        set(&out, "width", shape[3] as u32);
        set(&out, "height", shape[2] as u32);
        set(&out, "device", self.device_name);
        out
    }

    fn parse_tokens(&self, tokens: JsValue) -> Result<Vec<Vec<u32>>, TesseraError> {
        serde_wasm_bindgen::from_value(tokens).map_err(|e| TesseraError::InvalidTokens(format!("expected an array of token arrays: {e}")))
    }

    async fn decode(self: Rc<Self>, tokens: JsValue) -> Result<JsValue, TesseraError> {
        let m = &self.bundle.manifest;
        let per = m.tokenizer.tokens_per_image();
        // one flat Uint32Array of whole grids (one copy into wasm), or an array of grids
        let tokens = match tokens.dyn_into::<js_sys::Uint32Array>() {
            Ok(flat) if flat.length() as usize % per == 0 => flat.to_vec().chunks(per).map(<[u32]>::to_vec).collect(),
            Ok(flat) => return Err(TesseraError::InvalidTokens(format!("a flat token array needs whole grids of {per} tokens, got {}", flat.length()))),
            Err(v) => self.parse_tokens(v)?,
        };
        let t = tokens_tensor(&tokens, m.tokenizer.tokens_per_image(), m.tokenizer.codebook_size(), &self.device)?;
        let (px, shape) = decode(&self.bundle.tokenizer, t).await?;
        Ok(self.images_object(&px, shape).into())
    }

    /// Logits of a proposal network, flattened: AR, for `[class] + tokens` at every position;
    /// NAR, for a full grid (`null` = mask token) at every position.
    async fn logits(self: Rc<Self>, proposal: String, class: usize, tokens: JsValue, prompt: Option<String>) -> Result<JsValue, TesseraError> {
        let m = &self.bundle.manifest;
        let entry = m.proposal(&proposal)?;
        let (classes, vocab) = (entry.model.num_classes(), entry.model.vocab_size());
        let per = m.tokenizer.tokens_per_image();
        if class > classes {
            return Err(TesseraError::InvalidOption(format!("class must be in 0..={classes} (the last is the null class)")));
        }
        let rows: Vec<Vec<Option<u32>>> = serde_wasm_bindgen::from_value(tokens).map_err(|e| TesseraError::InvalidTokens(format!("expected an array of token arrays: {e}")))?;
        let [row] = rows.as_slice() else { return Err(TesseraError::InvalidTokens("expected exactly one token array".into())) };
        if row.iter().flatten().any(|&t| t as usize >= vocab) {
            return Err(TesseraError::InvalidTokens(format!("tokens must be below {vocab}")));
        }
        // the condition as sampling builds it: the class (the last index is the null class), or the prompt
        let prompts = match (&prompt, &m.text) {
            (Some(p), Some(_)) => Some(self.bundle.encode_prompt(p).await?.0),
            (None, None) => None,
            (Some(_), None) => return Err(TesseraError::InvalidOption("this model is class-conditional: it takes a class, not a prompt".into())),
            (None, Some(_)) => return Err(TesseraError::InvalidOption("this model generates from a prompt: give one".into())),
        };
        let req = Request { class, count: 1, options: SamplingOptions::default(), prompt: prompts };
        let cond = req.condition(entry.model.config(), 1, false, &self.device)?;
        let logits = match self.bundle.proposals.get(&proposal) {
            Some(Proposal::Ar(g)) => {
                if row.len() >= per || row.iter().any(|t| t.is_none()) {
                    return Err(TesseraError::InvalidTokens(format!("AR: need fewer than {per} tokens, no nulls")));
                }
                let t = Tensor::<2, Int>::from_data(TensorData::new(row.iter().map(|&v| v.unwrap_or(0) as i64).collect::<Vec<_>>(), [1, row.len()]), &self.device);
                g.forward_with(&cond, t)?
            }
            Some(Proposal::Nar(n)) => {
                if row.len() != per {
                    return Err(TesseraError::InvalidTokens(format!("NAR: need a full grid of {per} entries")));
                }
                let t = Tensor::<2, Int>::from_data(TensorData::new(row.iter().map(|&v| v.map_or(vocab as i64, |v| v as i64)).collect::<Vec<_>>(), [1, per]), &self.device);
                n.forward_with(&cond, t)?
            }
            None => return Err(TesseraError::InvalidOption(format!("proposal network '{proposal}' was not loaded"))),
        };
        let v = read_f32(logits).await?;
        Ok(js_sys::Float32Array::from(v.as_slice()).into())
    }
}

fn promise<F>(f: F) -> js_sys::Promise
where
    F: std::future::Future<Output = Result<JsValue, TesseraError>> + 'static,
{
    future_to_promise(async move { f.await.map_err(js_err) })
}

#[wasm_bindgen]
impl Tessera {
    /// Model and device information (JSON-compatible object).
    pub fn info(&self) -> Result<JsValue, JsValue> {
        let i = &self.inner;
        let m = &i.bundle.manifest;
        let o = Object::new();
        set(&o, "name", m.name.as_str());
        set(&o, "classes", serde_wasm_bindgen::to_value(&m.dataset.classes).map_err(option_err)?);
        set(&o, "imageSize", m.dataset.image_size as u32);
        set(&o, "channels", m.dataset.channels as u32);
        set(&o, "dataset", m.dataset.name.as_str());
        set(&o, "background", m.dataset.background as u32);
        set(&o, "credits", serde_wasm_bindgen::to_value(&m.dataset.credits).map_err(option_err)?);
        set(&o, "grid", serde_wasm_bindgen::to_value(&m.grid).map_err(option_err)?);
        set(&o, "tokenizer", m.tokenizer.kind().name());
        set(&o, "codebookSize", m.tokenizer.codebook_size() as u32);
        set(&o, "device", i.device_name);
        set(&o, "adapter", i.adapter.as_str());
        set(&o, "loadMs", i.load_ms);
        set(&o, "engine", ENGINE);
        set(&o, "threads", cpu_threads());
        if let Some(r) = &i.fallback_reason {
            set(&o, "fallbackReason", r.as_str());
        }
        let props = Object::new();
        for name in i.bundle.proposals.keys() {
            let e = m.proposal(name).map_err(js_err)?;
            let s = &e.sampling;
            let d = Object::new();
            set(&d, "kind", e.model.kind());
            set(&d, "temperature", s.temperature);
            set(&d, "topK", s.top_k as u32);
            set(&d, "topP", s.top_p);
            set(&d, "guidance", s.guidance);
            set(&d, "steps", s.steps as u32);
            set(&d, "confidenceNoise", s.confidence_noise);
            set(&props, name, d);
        }
        set(&o, "proposals", props);
        if let Some(t) = &m.text {
            let text = Object::new();
            set(&text, "nCtx", t.n_ctx as u32);
            let (kind, name) = match &t.encoder {
                tessera::proposal::condition::TextEncoderSpec::Learned { .. } => ("learned", "in-project (trained with the proposal network)".to_string()),
                tessera::proposal::condition::TextEncoderSpec::Pretrained { name, .. } => ("pretrained", name.clone()),
            };
            set(&text, "encoder", kind);
            set(&text, "encoderName", name.as_str());
            // a pretrained encoder is its own download (tens of MB): its size, for the page to show
            set(&text, "encoderBytes", m.files.get(TEXT_ENCODER).map_or(0.0, |f| f.bytes as f64));
            set(&text, "words", strings(&t.words));
            set(&text, "examples", strings(&t.examples));
            set(&o, "text", text);
        }
        Ok(o.into())
    }

    /// Generates images. `options`: `{ proposal?, class, count?, seed?, temperature?, topK?, topP?,
    /// guidance?, steps?, confidenceNoise?, given?, previewEvery? }`; `onProgress(event)` is called
    /// after every step (a token for AR, a parallel decoding step for NAR).
    pub fn generate(&self, options: JsValue, on_progress: Option<Function>) -> js_sys::Promise {
        promise(self.inner.clone().generate(options, on_progress))
    }

    /// Encodes RGBA images (`count` images of imageSize x imageSize, concatenated) to tokens and
    /// decodes them again: the tokenizer's reconstruction.
    pub fn reconstruct(&self, rgba: Vec<u8>, count: usize) -> js_sys::Promise {
        promise(self.inner.clone().reconstruct(rgba, count))
    }

    /// Decodes token grids to RGBA images: `number[][]` (one raster-order grid per image) or one
    /// flat `Uint32Array` of whole grids.
    pub fn decode(&self, tokens: JsValue) -> js_sys::Promise {
        promise(self.inner.clone().decode(tokens))
    }

    /// Proposal-network logits (testing and debugging); see `Inner::logits`.
    /// `prompt`: text-to-image bundles (then `class` is ignored).
    #[wasm_bindgen(js_name = proposalLogits)]
    pub fn proposal_logits(&self, proposal: String, class: usize, tokens: JsValue, prompt: Option<String>) -> js_sys::Promise {
        promise(self.inner.clone().logits(proposal, class, tokens, prompt))
    }
}

/// A text tokenizer (`tokenizer.json`) in the browser: the same `tokenizers` code as natively, so a
/// prompt has the same ids in both (the package test compares them with the reference fixture).
#[wasm_bindgen(js_name = TextTokenizer)]
pub struct WasmTextTokenizer {
    inner: tessera::text::vocab::TextTokenizer,
}

#[wasm_bindgen(js_class = TextTokenizer)]
impl WasmTextTokenizer {
    /// Parses `tokenizer.json` bytes; ids are cut at `max_len`.
    #[wasm_bindgen(constructor)]
    pub fn new(json: &[u8], max_len: usize) -> Result<WasmTextTokenizer, JsValue> {
        ensure_constructors();
        let inner = tessera::text::vocab::TextTokenizer::from_json("tokenizer.json", json, max_len).map_err(bundle_err)?;
        Ok(Self { inner })
    }
    /// `{ ids: Uint32Array, unknown: string[], truncated: boolean }` for `prompt`.
    pub fn encode(&self, prompt: &str) -> Result<JsValue, JsValue> {
        let e = self.inner.encode(prompt).map_err(js_err)?;
        let o = js_sys::Object::new();
        let set = |k: &str, v: &JsValue| js_sys::Reflect::set(&o, &k.into(), v).map(|_| ());
        set("ids", &js_sys::Uint32Array::from(e.ids.as_slice()).into())?;
        set("unknown", &e.unknown.iter().map(|w| JsValue::from_str(w)).collect::<js_sys::Array>().into())?;
        set("truncated", &e.truncated.into())?;
        Ok(o.into())
    }
    #[wasm_bindgen(getter, js_name = vocabSize)]
    pub fn vocab_size(&self) -> usize {
        self.inner.vocab_size()
    }
}
