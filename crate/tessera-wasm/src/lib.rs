//! Tessera in the browser. A thin wasm-bindgen layer over `tessera`: load a bundle from bytes
//! (checksums verified), pick a device (`webgpu`, `cpu`, or `auto` = WebGPU with a checked
//! fallback to CPU), generate with streamed tokens and previews, decode tokens. Every entry point
//! validates its input before burn sees it and returns a rejected Promise on error; a failed call
//! leaves the model usable.
use burn::prelude::*;
use burn::tensor::wgpu::WgpuBackend;
use js_sys::{Function, Object, Reflect, Uint8ClampedArray};
use serde::Deserialize;
use std::cell::RefCell;
use std::rc::Rc;
use tessera::bundle::{Bundle, Manifest};
use tessera::generate::{ArSampling, Request, decode, read_f32, to_rgba, tokens_tensor};
use tessera::sampler::SamplingOptions;
use tessera::TesseraError;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

thread_local! {
    /// burn's WebGPU device may be initialised only once per module.
    static WEBGPU: RefCell<Option<Result<(Device, String), String>>> = const { RefCell::new(None) };
}

#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
    // cubecl reports WGSL compile errors only through `log`
    let _ = console_log::init_with_level(log::Level::Warn);
}

fn js_err(e: impl std::fmt::Display) -> JsValue {
    js_sys::Error::new(&e.to_string()).into()
}

fn now() -> f64 {
    js_sys::Date::now()
}

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
    let per = a.manifest.proposal_config().block_size;
    let k = a.manifest.tokenizer_config().codebook_size;
    let (x, _) = decode(&a.tokenizer, tokens_tensor(tokens, per, k, da)?).await?;
    let (y, _) = decode(&b.tokenizer, tokens_tensor(tokens, per, k, db)?).await?;
    Ok(x.iter().zip(&y).map(|(p, q)| (p - q).abs()).fold(0.0, f32::max))
}

/// Loads a bundle from its manifest text and the bytes of its `tokenizer` and `proposal` files on
/// `device` ("webgpu", "cpu" or "auto"). Rejects with a message on any invalid input.
#[wasm_bindgen(js_name = loadModel)]
pub async fn load_model(manifest: String, tokenizer: Vec<u8>, proposal: Vec<u8>, device: String) -> Result<Tessera, JsValue> {
    let t0 = now();
    let manifest = Manifest::parse(&manifest).map_err(js_err)?;
    let cpu = Device::flex();
    let load = |d: &Device| Bundle::from_bytes(manifest.clone(), &tokenizer, &proposal, d).map_err(js_err);
    let (bundle, dev, name, adapter, fallback_reason) = match device.as_str() {
        "cpu" => (load(&cpu)?, cpu, "cpu", "burn flex (wasm simd128)".to_string(), None),
        "webgpu" => {
            let (d, adapter) = webgpu_device().await.map_err(js_err)?;
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
                    let k = manifest.tokenizer_config().codebook_size as u32;
                    let probe: Vec<Vec<u32>> = (0..2u32).map(|i| (0..manifest.proposal_config().block_size as u32).map(|j| (j * 37 + i * 11) % k).collect()).collect();
                    match max_abs_diff(&gpu_bundle, &d, &cpu_bundle, &cpu, &probe).await {
                        Ok(diff) if diff < 1e-3 => (gpu_bundle, d, "webgpu", adapter, None),
                        Ok(diff) => (cpu_bundle, cpu, "cpu", "burn flex (wasm simd128)".into(), Some(format!("WebGPU results differ from CPU (max abs diff {diff})"))),
                        Err(e) => (cpu_bundle, cpu, "cpu", "burn flex (wasm simd128)".into(), Some(format!("WebGPU failed: {e}"))),
                    }
                }
            }
        }
        other => return Err(js_err(format!("unknown device '{other}': use \"webgpu\", \"cpu\" or \"auto\""))),
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
    class: ClassRef,
    #[serde(default = "one")]
    count: usize,
    seed: Option<f64>,
    temperature: Option<f32>,
    top_k: Option<usize>,
    top_p: Option<f32>,
    guidance: Option<f32>,
    /// Post a preview image every this many tokens (0 = never; default: one grid row).
    preview_every: Option<usize>,
}
fn one() -> usize {
    1
}

fn set(o: &Object, k: &str, v: impl Into<JsValue>) {
    let _ = Reflect::set(o, &k.into(), &v.into());
}

fn rgba_array(images: &[Vec<u8>]) -> Uint8ClampedArray {
    let flat: Vec<u8> = images.concat();
    Uint8ClampedArray::from(flat.as_slice())
}

impl Inner {
    fn request(&self, opts: JsValue) -> Result<(Request, usize), TesseraError> {
        let o: GenerateOptions = serde_wasm_bindgen::from_value(opts).map_err(|e| TesseraError::InvalidOption(e.to_string()))?;
        let m = &self.bundle.manifest;
        let class = match o.class {
            ClassRef::Index(i) => i,
            ClassRef::Name(n) => m.dataset.classes.iter().position(|c| c.eq_ignore_ascii_case(&n)).ok_or_else(|| {
                TesseraError::InvalidOption(format!("unknown class '{n}'; classes: {}", m.dataset.classes.join(", ")))
            })?,
        };
        let seed = match o.seed {
            None => 0,
            Some(s) if s.is_finite() && s >= 0.0 && s.fract() == 0.0 && s <= 9007199254740991.0 => s as u64,
            Some(s) => return Err(TesseraError::InvalidOption(format!("seed must be a non-negative integer, got {s}"))),
        };
        let d = &m.sampling;
        let options = SamplingOptions {
            seed,
            temperature: o.temperature.unwrap_or(d.temperature),
            top_k: o.top_k.unwrap_or(d.top_k),
            top_p: o.top_p.unwrap_or(d.top_p),
            guidance: o.guidance.unwrap_or(d.guidance),
        };
        let req = Request { class, count: o.count, options };
        req.validate(m.proposal_config())?;
        Ok((req, o.preview_every.unwrap_or(m.grid[1])))
    }

    async fn generate(self: Rc<Self>, opts: JsValue, on_progress: Option<Function>) -> Result<JsValue, TesseraError> {
        let (req, preview_every) = self.request(opts)?;
        let t0 = now();
        let m = &self.bundle.manifest;
        let (per, k) = (m.proposal_config().block_size, m.tokenizer_config().codebook_size);
        let count = req.count;
        let mut s = ArSampling::new(&self.bundle.proposal, m.proposal_config(), req, &self.device)?;
        while !s.done() {
            s.step().await?;
            if let Some(cb) = &on_progress {
                let ev = Object::new();
                set(&ev, "position", s.position() as u32);
                set(&ev, "total", s.total() as u32);
                let last: Vec<u32> = s.tokens.iter().map(|t| *t.last().expect("stepped")).collect();
                set(&ev, "tokens", js_sys::Uint32Array::from(last.as_slice()));
                if preview_every > 0 && (s.position() % preview_every == 0) && !s.done() {
                    let filled: Vec<Vec<u32>> = s.tokens.iter().map(|t| {
                        let mut f = t.clone();
                        f.resize(per, m.blank_token);
                        f
                    }).collect();
                    let (px, shape) = decode(&self.bundle.tokenizer, tokens_tensor(&filled, per, k, &self.device)?).await?;
                    set(&ev, "preview", rgba_array(&to_rgba(&px, shape)));
                }
                let _ = cb.call1(&JsValue::NULL, &ev);
            }
        }
        let tokens = s.tokens;
        let (px, shape) = decode(&self.bundle.tokenizer, tokens_tensor(&tokens, per, k, &self.device)?).await?;
        let out = self.images_object(&px, shape);
        let tok = js_sys::Array::new();
        for t in &tokens {
            tok.push(&js_sys::Uint32Array::from(t.as_slice()));
        }
        set(&out, "tokens", tok);
        let ms = now() - t0;
        set(&out, "ms", ms);
        set(&out, "msPerImage", ms / count as f64);
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
        let tokens = self.parse_tokens(tokens)?;
        let m = &self.bundle.manifest;
        let t = tokens_tensor(&tokens, m.proposal_config().block_size, m.tokenizer_config().codebook_size, &self.device)?;
        let (px, shape) = decode(&self.bundle.tokenizer, t).await?;
        Ok(self.images_object(&px, shape).into())
    }

    /// Logits of the proposal network for `[class] + tokens` (every position), flattened.
    async fn logits(self: Rc<Self>, class: usize, tokens: JsValue) -> Result<JsValue, TesseraError> {
        let m = &self.bundle.manifest;
        let cfg = m.proposal_config();
        let tokens = self.parse_tokens(tokens)?;
        if class > cfg.num_classes {
            return Err(TesseraError::InvalidOption(format!("class must be in 0..={} (the last is the null class)", cfg.num_classes)));
        }
        let [row] = tokens.as_slice() else { return Err(TesseraError::InvalidTokens("expected exactly one token array".into())) };
        if row.len() >= cfg.block_size || row.iter().any(|&t| t as usize >= cfg.vocab_size) {
            return Err(TesseraError::InvalidTokens(format!("need fewer than {} tokens below {}", cfg.block_size, cfg.vocab_size)));
        }
        let cls = Tensor::<1, Int>::from_data(TensorData::new(vec![class as i64], [1]), &self.device);
        let t = Tensor::<2, Int>::from_data(TensorData::new(row.iter().map(|&v| v as i64).collect::<Vec<_>>(), [1, row.len()]), &self.device);
        let logits = self.bundle.proposal.forward(cls, t);
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
        set(&o, "classes", serde_wasm_bindgen::to_value(&m.dataset.classes).map_err(js_err)?);
        set(&o, "imageSize", m.dataset.image_size as u32);
        set(&o, "grid", serde_wasm_bindgen::to_value(&m.grid).map_err(js_err)?);
        set(&o, "codebookSize", m.tokenizer_config().codebook_size as u32);
        set(&o, "device", i.device_name);
        set(&o, "adapter", i.adapter.as_str());
        set(&o, "loadMs", i.load_ms);
        if let Some(r) = &i.fallback_reason {
            set(&o, "fallbackReason", r.as_str());
        }
        let s = &m.sampling;
        let d = Object::new();
        set(&d, "temperature", s.temperature);
        set(&d, "topK", s.top_k as u32);
        set(&d, "topP", s.top_p);
        set(&d, "guidance", s.guidance);
        set(&o, "defaults", d);
        Ok(o.into())
    }

    /// Generates images. `options`: `{ class, count?, seed?, temperature?, topK?, topP?, guidance?,
    /// previewEvery? }`; `onProgress(event)` is called after every sampled token.
    pub fn generate(&self, options: JsValue, on_progress: Option<Function>) -> js_sys::Promise {
        promise(self.inner.clone().generate(options, on_progress))
    }

    /// Decodes token grids (`number[][]`, raster order) to RGBA images.
    pub fn decode(&self, tokens: JsValue) -> js_sys::Promise {
        promise(self.inner.clone().decode(tokens))
    }

    /// Proposal-network logits for `[class] + tokens` (testing and debugging).
    #[wasm_bindgen(js_name = proposalLogits)]
    pub fn proposal_logits(&self, class: usize, tokens: JsValue) -> js_sys::Promise {
        promise(self.inner.clone().logits(class, tokens))
    }
}
