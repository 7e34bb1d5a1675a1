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
            let a = js_sys::Float32Array::from(settle(gpu.proposal_logits(proposal.into(), class, t.clone())).await.unwrap()).to_vec();
            let b = js_sys::Float32Array::from(settle(cpu.proposal_logits(proposal.into(), class, t)).await.unwrap()).to_vec();
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
