//! Every shipped bundle gives the same tokens and pixels for fixed seeds as when the fixture was
//! written (`tests/fixtures/pinned.json`): AR and NAR samples, NAR inpainting, and the tokens of an
//! encoded image. A refactor of the model code must not move a single token. Regenerate the fixture
//! (only on purpose, e.g. after retraining a bundle) with `TESSERA_PIN_WRITE=1 cargo test --release
//! -p tessera --test pinned`.
use burn::prelude::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use tessera::bundle::Bundle;
use tessera::sampling::{Request, decode, to_rgba, tokens_tensor};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A fixed, smooth grey test image `[1, channels, 32, 32]` in [-1, 1] (a blob, like a garment on
/// black; the same grey in every channel of a colour bundle).
fn test_image(channels: usize, device: &Device) -> Tensor<4> {
    let px: Vec<f32> = (0..32 * 32)
        .map(|i| {
            let (y, x) = ((i / 32) as f32 - 15.5, (i % 32) as f32 - 15.5);
            let r = (x * x / 120.0 + y * y / 200.0).sqrt();
            (1.0 - r).clamp(-1.0, 1.0) * 0.9 + 0.05 * ((x * 0.7).sin() * (y * 0.4).cos())
        })
        .collect();
    let px: Vec<f32> = (0..channels).flat_map(|_| px.iter().copied()).collect();
    Tensor::from_data(TensorData::new(px, [1, channels, 32, 32]), device)
}

/// Hex of the grey channel (1-channel bundles) or of R, G and B (colour bundles).
fn pixel_hex(rgba: &[u8], channels: usize) -> String {
    rgba.chunks(4).flat_map(|p| p[..channels.min(3)].iter()).map(|v| format!("{v:02x}")).collect()
}

async fn pixels(b: &Bundle, tokens: &[Vec<u32>], d: &Device) -> Vec<String> {
    let t = &b.manifest.tokenizer;
    let (px, shape) = decode(&b.tokenizer, tokens_tensor(tokens, t.tokens_per_image(), t.codebook_size(), d).unwrap()).await.unwrap();
    to_rgba(&px, shape).iter().map(|im| pixel_hex(im, b.manifest.dataset.channels)).collect()
}

async fn record(name: &str, d: &Device) -> Value {
    let b = Bundle::load_dir(&root().join("models").join(name), d).unwrap();
    // text-to-image bundles: a prompt instead of the class
    let prompt = |p: &str| b.manifest.text.as_ref().map(|_| pollster::block_on(b.encode_prompt(p)).unwrap().0);
    let mut out = serde_json::Map::new();
    for proposal in ["ar", "nar"] {
        let options = tessera::sampling::sampler::SamplingOptions { seed: 11, ..b.defaults(proposal).unwrap() };
        let req = Request { class: 7, count: 2, options, prompt: prompt("red apple") };
        let tokens = b.sampler(proposal, req, None, d).unwrap().run(b.manifest.tokenizer.tokens_per_image()).await.unwrap();
        out.insert(proposal.into(), json!({ "tokens": tokens, "pixels": pixels(&b, &tokens, d).await }));
    }
    // Encode the test image, then inpaint its left half with NAR.
    let enc: Vec<i64> = b.tokenizer.encode(test_image(b.manifest.dataset.channels, d)).into_data().convert::<i64>().try_to_vec().unwrap();
    let enc: Vec<u32> = enc.into_iter().map(|v| v as u32).collect();
    let given: Vec<Option<u32>> = enc.iter().enumerate().map(|(i, &t)| if i % 8 < 4 { None } else { Some(t) }).collect();
    let options = tessera::sampling::sampler::SamplingOptions { seed: 5, ..b.defaults("nar").unwrap() };
    let inpainted = b.sampler("nar", Request { class: 2, count: 1, options, prompt: prompt("green apple") }, Some(vec![given]), d).unwrap().run(64).await.unwrap();
    out.insert("encoded".into(), json!({ "tokens": [enc.clone()], "pixels": pixels(&b, &[enc], d).await }));
    out.insert("inpainted".into(), json!({ "tokens": inpainted, "pixels": pixels(&b, &inpainted, d).await }));
    Value::Object(out)
}

fn bundles() -> Vec<String> {
    let index: Value = serde_json::from_str(&std::fs::read_to_string(root().join("models/index.json")).unwrap()).unwrap();
    index["bundles"].as_array().unwrap().iter().map(|b| b["name"].as_str().unwrap().to_string()).collect()
}

#[test]
fn shipped_bundles_give_pinned_tokens_and_pixels() {
    let d = Device::flex();
    let fixture = root().join("tests/fixtures/pinned.json");
    let now: serde_json::Map<String, Value> = bundles().iter().map(|n| (n.clone(), pollster::block_on(record(n, &d)))).collect();
    if std::env::var("TESSERA_PIN_WRITE").is_ok() {
        std::fs::write(&fixture, serde_json::to_string_pretty(&now).unwrap()).unwrap();
        return;
    }
    let pinned: serde_json::Map<String, Value> = serde_json::from_str(&std::fs::read_to_string(&fixture).unwrap()).unwrap();
    assert_eq!(pinned.keys().collect::<Vec<_>>(), now.keys().collect::<Vec<_>>(), "the shipped bundles changed");
    for (name, want) in &pinned {
        for (case, w) in want.as_object().unwrap() {
            let got = &now[name][case];
            assert_eq!(got["tokens"], w["tokens"], "{name} {case}: tokens moved");
            // Pixels: at most one grey level apart (float summation order may differ across CPUs).
            for (g, w) in got["pixels"].as_array().unwrap().iter().zip(w["pixels"].as_array().unwrap()) {
                let (g, w) = (g.as_str().unwrap().as_bytes(), w.as_str().unwrap().as_bytes());
                assert_eq!(g.len(), w.len());
                let level = |s: &[u8], i: usize| u8::from_str_radix(std::str::from_utf8(&s[2 * i..2 * i + 2]).unwrap(), 16).unwrap() as i32;
                let worst = (0..g.len() / 2).map(|i| (level(g, i) - level(w, i)).abs()).max().unwrap();
                assert!(worst <= 1, "{name} {case}: a pixel moved by {worst} grey levels");
            }
        }
    }
}
