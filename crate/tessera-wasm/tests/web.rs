//! The wasm API in a real browser (`wasm-pack test --headless --chrome`, run by `scripts/test.sh`):
//! a shipped bundle loads from bytes and generates; every corrupt-bundle case is a rejected promise
//! with the error kind `BundleError`; bad options reject (`InvalidOption` / `InvalidTokens`) and the
//! next call succeeds; a progress callback can cancel (`AbortError`); WebGPU and CPU agree on logits
//! (|diff| < 1e-3) and decoded pixels (at most one grey level).
#![cfg(target_arch = "wasm32")]
use js_sys::{Function, Object, Reflect, Uint8Array};
use serde_json::{Value, json};
use tessera_wasm::{Tessera, load_model};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const MANIFEST: &str = include_str!("../../../models/fmnist-vqgan/manifest.json");
const TOKENIZER: &[u8] = include_bytes!("../../../models/fmnist-vqgan/tokenizer.safetensors");
const AR: &[u8] = include_bytes!("../../../models/fmnist-vqgan/ar.safetensors");
const NAR: &[u8] = include_bytes!("../../../models/fmnist-vqgan/nar.safetensors");

fn files(tokenizer: &[u8], proposals: &[(&str, &[u8])]) -> JsValue {
    let o = Object::new();
    Reflect::set(&o, &"tokenizer".into(), &Uint8Array::from(tokenizer)).unwrap();
    for (name, bytes) in proposals {
        Reflect::set(&o, &(*name).into(), &Uint8Array::from(*bytes)).unwrap();
    }
    o.into()
}

async fn load(device: &str) -> Tessera {
    load_model(MANIFEST.into(), files(TOKENIZER, &[("ar", AR), ("nar", NAR)]), device.into()).await.unwrap_or_else(|e| panic!("load on {device}: {e:?}"))
}

/// The error kind (`error.name`) of a rejection.
fn kind(e: &JsValue) -> String {
    Reflect::get(e, &"name".into()).ok().and_then(|n| n.as_string()).unwrap_or_default()
}

async fn settle(p: js_sys::Promise) -> Result<JsValue, JsValue> {
    JsFuture::from(p).await
}

/// A JSON value as the plain JS object/array a caller passes.
fn opts(v: Value) -> JsValue {
    js_sys::JSON::parse(&v.to_string()).unwrap()
}

fn tokens_of(result: &JsValue) -> Vec<Vec<u32>> {
    let t = js_sys::Array::from(&Reflect::get(result, &"tokens".into()).unwrap());
    t.iter().map(|row| js_sys::Uint32Array::from(row).to_vec()).collect()
}

/// The static constructors ran once: by the end the test harness has called this module's exports
/// from JS many times (each of which re-ran them when wasm-ld wrapped every export).
#[wasm_bindgen_test]
async fn static_constructors_run_once_not_per_call() {
    let m = load("cpu").await;
    for _ in 0..3 {
        m.info().unwrap();
    }
    assert_eq!(tessera_wasm::constructor_runs(), 1);
}

#[wasm_bindgen_test]
async fn a_shipped_bundle_loads_from_bytes_and_generates() {
    let m = load("cpu").await;
    let info = m.info().unwrap();
    assert_eq!(Reflect::get(&info, &"tokenizer".into()).unwrap().as_string().unwrap(), "vqgan");
    let r = settle(m.generate(opts(json!({"class": "Bag", "count": 2, "seed": 1})), None)).await.unwrap();
    let t = tokens_of(&r);
    assert_eq!((t.len(), t[0].len()), (2, 64));
    let again = settle(m.generate(opts(json!({"class": "Bag", "count": 2, "seed": 1})), None)).await.unwrap();
    assert_eq!(tokens_of(&again), t, "same seed, same tokens");
}

#[wasm_bindgen_test]
async fn every_corrupt_bundle_is_a_rejected_promise_with_a_kind() {
    let mut flipped = TOKENIZER.to_vec();
    flipped[1000] ^= 0x40;
    let manifest: Value = serde_json::from_str(MANIFEST).unwrap();
    let edit = |f: &dyn Fn(&mut Value)| {
        let mut m = manifest.clone();
        f(&mut m);
        m.to_string()
    };
    let cases: Vec<(&str, String, &[u8], &str)> = vec![
        ("truncated file", MANIFEST.into(), &TOKENIZER[..TOKENIZER.len() - 7], "BundleError"),
        ("flipped byte", MANIFEST.into(), &flipped, "BundleError"),
        ("not JSON", "{".into(), TOKENIZER, "BundleError"),
        ("future version", edit(&|m| m["format_version"] = 9.into()), TOKENIZER, "BundleError"),
        ("image size disagrees", edit(&|m| m["dataset"]["image_size"] = 64.into()), TOKENIZER, "BundleError"),
        ("absurd n_layer", edit(&|m| m["proposals"]["ar"]["model"]["config"]["n_layer"] = 100_000_000.into()), TOKENIZER, "BundleError"),
        ("absurd code_dim", edit(&|m| m["tokenizer"]["config"]["code_dim"] = 1_000_000_000u64.into()), TOKENIZER, "BundleError"),
    ];
    for (what, manifest, tokenizer, want) in cases {
        let r = load_model(manifest, files(tokenizer, &[]), "cpu".into()).await;
        let e = r.err().unwrap_or_else(|| panic!("{what}: loaded"));
        assert_eq!(kind(&e), want, "{what}: {e:?}");
    }
    let e = load_model(MANIFEST.into(), files(TOKENIZER, &[]), "tpu".into()).await.err().unwrap();
    assert_eq!(kind(&e), "InvalidOption");
    let e = load_model(MANIFEST.into(), files(TOKENIZER, &[("gan", AR)]), "cpu".into()).await.err().unwrap();
    assert_eq!(kind(&e), "InvalidOption");
}

#[wasm_bindgen_test]
async fn bad_options_reject_and_the_next_call_succeeds() {
    let m = load("cpu").await;
    for (o, want) in [
        (json!({"class": "Bag", "temperature": -1}), "InvalidOption"),
        (json!({"class": "Nope"}), "InvalidOption"),
        (json!({"class": 10}), "InvalidOption"),
        (json!({"class": 1, "count": 0}), "InvalidOption"),
        (json!({"class": 1, "colour": "red"}), "InvalidOption"),
        (json!({"class": 1, "proposal": "nar", "count": 1, "given": [[1, 2, 3]]}), "InvalidTokens"),
        (json!({"class": 1, "proposal": "ar", "count": 1, "given": [vec![Value::Null; 64]]}), "InvalidOption"),
    ] {
        let e = settle(m.generate(opts(o.clone()), None)).await.err().unwrap_or_else(|| panic!("{o} accepted"));
        assert_eq!(kind(&e), want, "{o}");
    }
    let e = settle(m.decode(opts(json!([vec![9999; 64]])))).await.err().unwrap();
    assert_eq!(kind(&e), "InvalidTokens");
    let e = settle(m.reconstruct(vec![0; 10], 1)).await.err().unwrap();
    assert_eq!(kind(&e), "InvalidOption");
    let r = settle(m.generate(opts(json!({"class": 1, "proposal": "nar", "count": 1})), None)).await.unwrap();
    assert_eq!(tokens_of(&r)[0].len(), 64);
}

#[wasm_bindgen_test]
async fn a_progress_callback_can_cancel_between_steps() {
    let m = load("cpu").await;
    let calls = std::rc::Rc::new(std::cell::Cell::new(0));
    let c = calls.clone();
    // stop after the third step
    let cb = Closure::<dyn FnMut(JsValue) -> JsValue>::new(move |_ev: JsValue| {
        c.set(c.get() + 1);
        JsValue::from_bool(c.get() < 3)
    });
    let f: &Function = cb.as_ref().unchecked_ref();
    let e = settle(m.generate(opts(json!({"class": 1, "count": 1})), Some(f.clone()))).await.err().unwrap();
    assert_eq!(kind(&e), "AbortError");
    assert_eq!(calls.get(), 3, "no step after the cancel");
    // a Promise resolving to false cancels too
    let cb2 = Closure::<dyn FnMut(JsValue) -> JsValue>::new(|_ev: JsValue| js_sys::Promise::resolve(&JsValue::FALSE).into());
    let e = settle(m.generate(opts(json!({"class": 1, "count": 1, "proposal": "nar"})), Some(cb2.as_ref().unchecked_ref::<Function>().clone()))).await.err().unwrap();
    assert_eq!(kind(&e), "AbortError");
    let r = settle(m.generate(opts(json!({"class": 1, "count": 1})), None)).await.unwrap();
    assert_eq!(tokens_of(&r)[0].len(), 64, "the model stays usable after a cancel");
}

#[wasm_bindgen_test]
async fn webgpu_and_cpu_agree_on_logits_and_pixels() {
    let (gpu, cpu) = (load("webgpu").await, load("cpu").await);
    let k = 256u32;
    let prefix: Vec<Value> = (0..40u32).map(|i| json!((i * 29) % k)).collect();
    let grid: Vec<Value> = (0..64u32).map(|i| if i % 3 == 0 { json!((i * 29) % k) } else { Value::Null }).collect();
    let (mut max_diff, mut max_abs) = (0f32, 0f32);
    for (proposal, tokens) in [("ar", &prefix), ("nar", &grid)] {
        for class in [0usize, 7, 10] {
            let t = opts(json!([tokens]));
            let a = js_sys::Float32Array::from(settle(gpu.proposal_logits(proposal.into(), class, t.clone(), None)).await.unwrap()).to_vec();
            let b = js_sys::Float32Array::from(settle(cpu.proposal_logits(proposal.into(), class, t, None)).await.unwrap()).to_vec();
            assert_eq!(a.len(), b.len());
            for (x, y) in a.iter().zip(&b) {
                max_diff = max_diff.max((x - y).abs());
                max_abs = max_abs.max(y.abs());
            }
        }
    }
    assert!(max_diff < 1e-3, "logits differ by {max_diff} (max |logit| {max_abs})");
    let tokens = opts(json!([(0..64u32).map(|i| (i * 29) % k).collect::<Vec<_>>()]));
    let px = |r: JsValue| js_sys::Uint8ClampedArray::from(Reflect::get(&r, &"pixels".into()).unwrap()).to_vec();
    let a = px(settle(gpu.decode(tokens.clone())).await.unwrap());
    let b = px(settle(cpu.decode(tokens)).await.unwrap());
    let worst = a.iter().zip(&b).map(|(x, y)| (*x as i32 - *y as i32).abs()).max().unwrap();
    assert!(worst <= 1, "decoded pixels differ by {worst} grey levels");
}

/// A Cluster bundle whose encoder is the EfficientNet-Lite0 teacher (its stages to block 10, on a
/// 4x upsampled colour image; weights random but identical on both devices): encoding runs the
/// teacher in the browser, and WebGPU agrees with the CPU on its tokens and decoded pixels.
#[wasm_bindgen_test]
async fn an_efficientnet_cluster_tokenizer_encodes_alike_on_webgpu_and_cpu() {
    use std::collections::BTreeMap;
    use tessera::bundle::weights::{module_to_tensors, to_safetensors};
    use tessera::bundle::{DatasetInfo, FileEntry, Manifest, ProposalEntry, ProposalSpec, Provenance, sha256_hex};
    use tessera::proposal::ProposalConfig;
    use tessera::sampling::sampler::SamplingOptions;
    use tessera::teacher::TeacherConfig;
    use tessera::teacher::efficientnet::EfficientNetConfig;
    use tessera::tokenizer::TokenizerSpec;
    use tessera::tokenizer::cluster::ClusterConfig;
    let d = burn::prelude::Device::flex();
    d.seed(5);
    let cfg = ClusterConfig { teacher: TeacherConfig::EfficientNet(EfficientNetConfig::lite0_teacher(32, 3)), teacher_name: "lite0".into(), codebook_size: 64, channels: 8, decoder_output: Default::default() };
    let mut tensors = module_to_tensors(&cfg.init(&d).unwrap());
    // Fixed weights that keep the signal alive through 11 blocks (He-scaled convs, zero biases;
    // burn's default init fades it to the biases, and every image would encode alike), and 64 fixed
    // codebook directions (k-means fills them in training; init leaves them zero).
    for (name, t) in tensors.iter_mut() {
        let salt = name.len() as f32;
        if name.starts_with("encoder.") && name.ends_with(".weight") {
            let fan_in: usize = t.shape[1..].iter().product();
            let scale = (6.0 / fan_in as f32).sqrt();
            t.values = (0..t.values.len()).map(|i| (i as f32 * 0.7311 + salt).sin() * scale).collect();
        } else if name.starts_with("encoder.") {
            t.values.iter_mut().for_each(|v| *v = 0.0);
        }
    }
    let cb = tensors.get_mut("quantizer.codebook").unwrap();
    cb.values = (0..cb.values.len()).map(|i| ((i as f32) * 0.7311).sin()).collect();
    let tok = to_safetensors(&tensors);
    let gpt = ProposalConfig { vocab_size: 64, num_classes: 2, block_size: 64, n_layer: 1, n_head: 2, n_embd: 16, text: None };
    let ar = to_safetensors(&module_to_tensors(&gpt.init_gpt(&d).unwrap()));
    let entry = |p: &str, b: &[u8]| FileEntry { path: p.into(), bytes: b.len() as u64, sha256: sha256_hex(b) };
    let manifest = Manifest {
        format: tessera::bundle::FORMAT.into(),
        format_version: tessera::bundle::FORMAT_VERSION,
        name: "lite0-cluster".into(),
        dataset: DatasetInfo { name: "synthetic".into(), image_size: 32, channels: 3, background: 255, credits: vec![], classes: vec!["a".into(), "b".into()] },
        grid: [8, 8],
        tokenizer: TokenizerSpec::Cluster(cfg),
        proposals: BTreeMap::from([("ar".to_string(), ProposalEntry { model: ProposalSpec::Ar(gpt), sampling: SamplingOptions::default() })]),
        blank_token: 0,
        files: BTreeMap::from([("tokenizer".to_string(), entry("tokenizer.safetensors", &tok)), ("ar".to_string(), entry("ar.safetensors", &ar))]),
        provenance: Provenance::default(),
        text: None,
    };
    let text = serde_json::to_string(&manifest).unwrap();
    let load = |device: &'static str| {
        let text = text.clone();
        let (tok, ar) = (tok.clone(), ar.clone());
        async move { load_model(text, files(&tok, &[("ar", &ar)]), device.into()).await.unwrap_or_else(|e| panic!("load on {device}: {e:?}")) }
    };
    let (gpu, cpu) = (load("webgpu").await, load("cpu").await);
    // two colour images: a red disc and a blue bar, half transparent around them
    let mut rgba = vec![0u8; 2 * 32 * 32 * 4];
    for (i, px) in rgba.chunks_mut(4).enumerate() {
        let (n, y, x) = (i / 1024, (i % 1024) / 32, i % 32);
        let inside = if n == 0 { (x as i32 - 15).pow(2) + (y as i32 - 16).pow(2) < 100 } else { (8..24).contains(&x) && (12..20).contains(&y) };
        px.copy_from_slice(&if inside { if n == 0 { [220, 30, 40, 255] } else { [30, 50, 210, 255] } } else { [0, 0, 0, 0] });
    }
    let a = settle(gpu.reconstruct(rgba.clone(), 2)).await.unwrap();
    let b = settle(cpu.reconstruct(rgba, 2)).await.unwrap();
    let (ta, tb) = (tokens_of(&a), tokens_of(&b));
    assert_eq!((ta.len(), ta[0].len()), (2, 64));
    let differ = ta.iter().flatten().zip(tb.iter().flatten()).filter(|(x, y)| x != y).count();
    assert!(differ <= 2, "WebGPU and CPU disagree on {differ} of 128 Cluster tokens");
    assert!(ta[0] != ta[1], "the two images encode differently");
    let px = |r: JsValue| js_sys::Uint8ClampedArray::from(Reflect::get(&r, &"pixels".into()).unwrap()).to_vec();
    let t = opts(json!(tb));
    let worst = px(settle(gpu.decode(t.clone())).await.unwrap()).iter().zip(&px(settle(cpu.decode(t)).await.unwrap())).map(|(x, y)| (*x as i32 - *y as i32).abs()).max().unwrap();
    assert!(worst <= 1, "decoded pixels differ by {worst} levels");
}

/// Text to image in wasm: a tiny text-conditioned bundle (`tessera::bundle::fixture`) loads with
/// its prompt tokenizer, generates from a prompt with the same tokens on WebGPU and CPU, reports
/// what it cannot read, and refuses a class, a missing prompt tokenizer and an over-long prompt
/// with typed errors.
#[wasm_bindgen_test]
async fn a_text_to_image_bundle_generates_from_a_prompt() {
    text_to_image(tessera::bundle::fixture::TinyCondition::Learned).await;
}

/// The same over a pretrained text encoder (a tiny random BERT in all-MiniLM-L6-v2's code): its
/// weights are one more file of the bundle, it runs in the browser on the bundle's device, and a
/// bundle loaded without it is a `BundleError`.
#[wasm_bindgen_test]
async fn a_pretrained_text_encoder_runs_in_the_browser() {
    text_to_image(tessera::bundle::fixture::TinyCondition::Pretrained).await;
}

async fn text_to_image(condition: tessera::bundle::fixture::TinyCondition) {
    use burn::prelude::*;
    use tessera::bundle::fixture::{TinyBundle, TinyCondition};
    use tessera::bundle::{TEXT_ENCODER, TEXT_TOKENIZER};
    let t = TinyBundle::new(condition, 16, 16, 5, &Device::flex());
    let pretrained = condition == TinyCondition::Pretrained;
    let (tok, ar, nar) = (&t.files["tokenizer"], &t.files["ar"], &t.files["nar"]);
    let manifest = t.manifest.clone();
    let json_text = serde_json::to_string(&manifest).unwrap();
    // the prompt side's files: (tokenizer, encoder) present or not
    let with_text = |tokenizer: bool, encoder: bool| {
        let f = files(tok, &[("ar", ar), ("nar", nar)]);
        for (role, on) in [(TEXT_TOKENIZER, tokenizer), (TEXT_ENCODER, encoder)] {
            if let (true, Some(b)) = (on, t.files.get(role)) {
                Reflect::set(&f, &role.into(), &Uint8Array::from(b.as_slice())).unwrap();
            }
        }
        f
    };
    // the prompt tokenizer (and a pretrained encoder) are part of the bundle: without them, a BundleError
    let missing = load_model(json_text.clone(), with_text(false, true), "cpu".into()).await.err().expect("loads without its prompt tokenizer");
    assert_eq!(kind(&missing), if pretrained { "InvalidOption" } else { "BundleError" }, "an encoder without its tokenizer is a wrong files object");
    if pretrained {
        let missing = load_model(json_text.clone(), with_text(true, false), "cpu".into()).await.err().expect("loads without its text encoder");
        assert_eq!(kind(&missing), "BundleError");
    }
    let (cpu, gpu) = (load_model(json_text.clone(), with_text(true, true), "cpu".into()).await.unwrap(), load_model(json_text, with_text(true, true), "webgpu".into()).await.unwrap());
    let info = cpu.info().unwrap();
    let t = Reflect::get(&info, &"text".into()).unwrap();
    assert_eq!(Reflect::get(&t, &"nCtx".into()).unwrap().as_f64(), Some(6.0));
    assert_eq!(Reflect::get(&t, &"encoder".into()).unwrap().as_string().as_deref(), Some(if pretrained { "pretrained" } else { "learned" }));
    assert_eq!(Reflect::get(&t, &"encoderBytes".into()).unwrap().as_f64().unwrap() > 0.0, pretrained);
    let req = json!({"prompt": "Red apple", "count": 2, "seed": 3, "previewEvery": 0});
    let a = settle(cpu.generate(opts(req.clone()), None)).await.unwrap();
    let b = settle(gpu.generate(opts(req.clone()), None)).await.unwrap();
    assert_eq!(tokens_of(&a), tokens_of(&b), "same prompt, same seed: same tokens on WebGPU and CPU");
    assert_eq!(tokens_of(&a), tokens_of(&settle(cpu.generate(opts(req), None)).await.unwrap()));
    let report = |r: &JsValue, k: &str| -> Vec<String> {
        js_sys::Array::from(&Reflect::get(&Reflect::get(r, &"prompt".into()).unwrap(), &k.into()).unwrap()).iter().map(|v| v.as_string().unwrap()).collect()
    };
    let ids = js_sys::Uint32Array::from(Reflect::get(&Reflect::get(&a, &"prompt".into()).unwrap(), &"ids".into()).unwrap()).to_vec();
    assert_eq!(ids, [2, 4, 5, 3]);
    // a word outside the vocabulary and a word training never showed are both reported
    let odd = settle(cpu.generate(opts(json!({"prompt": "green 🍎 apple", "proposal": "nar", "previewEvery": 0})), None)).await.unwrap();
    assert_eq!((report(&odd, "unknown"), report(&odd, "unseen")), (vec!["🍎".to_string()], vec!["green".to_string()]));
    // the empty prompt is unconditional
    assert_eq!(tokens_of(&settle(cpu.generate(opts(json!({"prompt": "", "previewEvery": 0})), None)).await.unwrap())[0].len(), 64);
    for bad in [json!({"class": 0}), json!({}), json!({"prompt": "x".repeat(1001)}), json!({"prompt": 7})] {
        let e = settle(cpu.generate(opts(bad.clone()), None)).await.err().unwrap_or_else(|| panic!("{bad} was accepted"));
        assert_eq!(kind(&e), "InvalidOption", "{bad}");
    }
    // the logits take the prompt too, and agree across devices
    let la = js_sys::Float32Array::from(settle(cpu.proposal_logits("ar".into(), 0, opts(json!([[1, 2]])), Some("red apple".into()))).await.unwrap()).to_vec();
    let lb = js_sys::Float32Array::from(settle(gpu.proposal_logits("ar".into(), 0, opts(json!([[1, 2]])), Some("red apple".into()))).await.unwrap()).to_vec();
    assert_eq!(la.len(), 3 * 16);
    assert!(la.iter().zip(&lb).all(|(x, y)| (x - y).abs() < 1e-3));
}

/// The GEMM every f32 product of the CPU engine runs (`burn_flex::gemm_v128`, simd128 here): bit for
/// bit the f32 sum over k in order, multiply then add (what its scalar build gives natively,
/// `crate/tessera/tests/flex_matmul.rs`), on partial blocks, k = 0, transposed operands, accumulation.
#[wasm_bindgen_test]
fn simd128_gemm_sums_in_order() {
    use burn_flex::gemm_v128::gemm_at;
    let values = |n: usize, seed: u32| -> Vec<f32> { (0..n).map(|i| ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8) as f32 / (1u32 << 23) as f32 - 1.0).collect() };
    for &(m, k, n) in &[(1, 1, 1), (4, 8, 8), (5, 3, 9), (7, 0, 5), (65, 32, 65), (130, 128, 40), (3, 17, 1), (261, 9, 20)] {
        for layout in 0..3 {
            let (a, b) = (values(m * k * 2 + 1, m as u32), values(k * n * 3 + 1, 7 * n as u32));
            // B's columns contiguous (read in place), 3 apart (packed), or B and A transposed
            let (a_st, b_st) = [((k, 1), (n + 2, 1)), ((k, 1), (3 * n, 3)), ((1, m.max(1)), (1, k.max(1)))][layout];
            for accumulate in [false, true] {
                let start = values(m * n, 99);
                let mut got = start.clone();
                gemm_at(&a, a_st, &b, b_st, (m, k, n), &mut got, accumulate, false);
                for i in 0..m {
                    for j in 0..n {
                        let mut acc = 0.0f32;
                        for q in 0..k {
                            acc += a[i * a_st.0 + q * a_st.1] * b[q * b_st.0 + j * b_st.1];
                        }
                        let want = if accumulate { start[i * n + j] + acc } else { acc };
                        assert_eq!(got[i * n + j].to_bits(), want.to_bits(), "{m}x{k}x{n} layout {layout} accumulate {accumulate}: ({i}, {j})");
                    }
                }
            }
        }
    }
}
