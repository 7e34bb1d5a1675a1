//! The bounded part of the bundle fuzzer, run by `cargo test`: the committed libFuzzer corpus
//! (`crate/tessera/fuzz/corpus/bundle`, grown by `scripts/fuzz.sh`) and a few thousand seeded
//! mutations of the seed inputs go through the fuzz entry point; none may panic. Seeds: every
//! shipped manifest, and a tiny valid bundle (which must load). `TESSERA_FUZZ_SEEDS=DIR` writes the
//! seeds there (for `scripts/fuzz.sh`).
use burn::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tessera::bundle::fuzz_entry::{join, load_untrusted};
use tessera::bundle::weights::{module_to_tensors, to_safetensors};
use tessera::bundle::{DatasetInfo, FORMAT, FORMAT_VERSION, FileEntry, Manifest, ProposalEntry, ProposalSpec, Provenance, TokenizerSpec, sha256_hex};
use tessera::proposal::ProposalConfig;
use tessera::rng::Rng;
use tessera::sampling::sampler::SamplingOptions;
use tessera::tokenizer::vqgan::VqganConfig;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A complete, valid bundle of a few kilobytes: `[manifest, tokenizer, ar, nar]`.
fn tiny_bundle(d: &Device) -> Vec<Vec<u8>> {
    d.seed(3);
    let tok = VqganConfig { channels: 2, codebook_size: 8, code_dim: 2, ..Default::default() };
    let p = ProposalConfig { vocab_size: 8, num_classes: 2, block_size: 64, n_layer: 1, n_head: 1, n_embd: 4, text: None };
    let t = to_safetensors(&module_to_tensors(&tok.init(d).unwrap()));
    let ar = to_safetensors(&module_to_tensors(&p.init_gpt(d).unwrap()));
    let nar = to_safetensors(&module_to_tensors(&p.init_maskgit(d).unwrap()));
    let entry = |name: &str, b: &[u8]| FileEntry { path: format!("{name}.safetensors"), bytes: b.len() as u64, sha256: sha256_hex(b) };
    let m = Manifest {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        name: "tiny".into(),
        dataset: DatasetInfo { name: "synthetic".into(), image_size: 32, channels: 1, background: 0, credits: vec![], classes: vec!["a".into(), "b".into()] },
        grid: [8, 8],
        tokenizer: TokenizerSpec::Vqgan(tok),
        proposals: BTreeMap::from([
            ("ar".to_string(), ProposalEntry { model: ProposalSpec::Ar(p.clone()), sampling: SamplingOptions::default() }),
            ("nar".to_string(), ProposalEntry { model: ProposalSpec::Nar(p), sampling: SamplingOptions::default() }),
        ]),
        blank_token: 0,
        files: BTreeMap::from([("tokenizer".to_string(), entry("tokenizer", &t)), ("ar".to_string(), entry("ar", &ar)), ("nar".to_string(), entry("nar", &nar))]),
        provenance: Provenance::default(),
        text: None,
    };
    vec![serde_json::to_vec(&m).unwrap(), t, ar, nar]
}

/// The same as a text-to-image bundle (format version 3): `[manifest, tokenizer, ar, nar, text
/// tokenizer]`, so that mutations reach the prompt tokenizer's parser (`tokenizer.json`).
fn tiny_t2i_bundle(d: &Device) -> Vec<Vec<u8>> {
    use tessera::proposal::condition::{TextConditionConfig, TextEncoderSpec};
    let mut parts = tiny_bundle(d);
    let mut m: Manifest = serde_json::from_slice(&parts[0]).unwrap();
    let vocab: std::collections::HashMap<String, u32> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "red", "apple"].iter().enumerate().map(|(i, w)| (w.to_string(), i as u32)).collect();
    let model = tokenizers::models::wordlevel::WordLevel::builder().vocab(vocab.into_iter().collect()).unk_token("[UNK]".into()).build().unwrap();
    let mut tk = tokenizers::Tokenizer::new(model);
    tk.with_pre_tokenizer(Some(tokenizers::pre_tokenizers::whitespace::Whitespace {}));
    let json = tk.to_string(false).unwrap().into_bytes();
    let text = TextConditionConfig { n_ctx: 4, encoder: TextEncoderSpec::Learned { vocab_size: 6, n_embd: 4, n_layer: 1, n_head: 1 } };
    let mut p = match &m.proposals["ar"].model { ProposalSpec::Ar(p) => p.clone(), _ => unreachable!() };
    p.text = Some(text.clone());
    let ar = to_safetensors(&module_to_tensors(&p.init_gpt(d).unwrap()));
    let nar = to_safetensors(&module_to_tensors(&p.init_maskgit(d).unwrap()));
    m.proposals.get_mut("ar").unwrap().model = ProposalSpec::Ar(p.clone());
    m.proposals.get_mut("nar").unwrap().model = ProposalSpec::Nar(p);
    let entry = |path: &str, b: &[u8]| FileEntry { path: path.into(), bytes: b.len() as u64, sha256: sha256_hex(b) };
    m.files.insert("ar".into(), entry("ar.safetensors", &ar));
    m.files.insert("nar".into(), entry("nar.safetensors", &nar));
    m.files.insert(tessera::bundle::TEXT_TOKENIZER.into(), entry("text_tokenizer.json", &json));
    m.format_version = tessera::bundle::FORMAT_VERSION_TEXT;
    m.text = Some(tessera::bundle::TextInfo { n_ctx: 4, encoder: text.encoder, words: vec!["red".into(), "apple".into()], examples: vec!["red apple".into()] });
    parts[0] = serde_json::to_vec(&m).unwrap();
    parts[2] = ar;
    parts[3] = nar;
    parts.push(json);
    parts
}

fn with_mode(mode: u8, parts: &[Vec<u8>]) -> Vec<u8> {
    let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
    let mut v = vec![mode];
    v.extend(join(&refs));
    v
}

fn seeds(d: &Device) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let tiny = tiny_bundle(d);
    out.push(with_mode(0, &tiny));
    out.push(with_mode(1, &tiny));
    out.push(with_mode(0, &tiny_t2i_bundle(d)));
    // a Cluster manifest whose teacher is EfficientNet-Lite (its config has its own sizes to break)
    let mut lite: serde_json::Value = serde_json::from_slice(&tiny[0]).unwrap();
    lite["tokenizer"] = serde_json::json!({"kind": "cluster", "config": {"teacher": {"name": "efficientnet-lite0", "width": 1.0, "depth": 1.0,
        "blocks": 11, "head": false, "num_classes": 0, "image_size": 32, "image_channels": 1, "input_size": 128}, "teacher_name": "lite0", "codebook_size": 8, "channels": 2}});
    out.push(with_mode(0, &[serde_json::to_vec(&lite).unwrap()]));
    for entry in std::fs::read_dir(root().join("models")).unwrap().flatten() {
        if let Ok(m) = std::fs::read(entry.path().join("manifest.json")) {
            out.push(with_mode(0, &[m.clone()]));
            out.push(with_mode(1, &[m, tiny[1].clone()]));
        }
    }
    out
}

/// One random edit of `x`: flip, insert, delete, truncate, or overwrite a run with a digit string
/// (which moves numbers in the JSON).
fn mutate(x: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut v = x.to_vec();
    let at = |rng: &mut Rng, n: usize| (rng.next_u64() % n.max(1) as u64) as usize;
    for _ in 0..1 + at(rng, 4) {
        let n = v.len();
        match rng.next_u64() % 5 {
            0 if n > 0 => {
                let i = at(rng, n);
                v[i] ^= 1 << (rng.next_u64() % 8);
            }
            1 => {
                let i = at(rng, n + 1);
                v.insert(i, rng.next_u64() as u8);
            }
            2 if n > 0 => {
                v.remove(at(rng, n));
            }
            3 => v.truncate(at(rng, n + 1)),
            _ if n > 0 => {
                let i = at(rng, n);
                let digits = ["0", "1", "99999999999", "-1", "1e300", "4294967296", "null", "\"\""][at(rng, 8)];
                for (k, b) in digits.bytes().enumerate() {
                    if let Some(slot) = v.get_mut(i + k) {
                        *slot = b;
                    }
                }
            }
            _ => {}
        }
    }
    v
}

#[test]
fn fuzz_seeds_corpus_and_mutations_never_panic() {
    let d = Device::flex();
    let seeds = seeds(&d);
    assert!(load_untrusted(&seeds[0], &d), "the tiny bundle must load");
    assert!(load_untrusted(&seeds[1], &d), "the tiny bundle must load with rewritten checksums too");
    assert!(load_untrusted(&seeds[2], &d), "the tiny text-to-image bundle must load");
    if let Ok(dir) = std::env::var("TESSERA_FUZZ_SEEDS") {
        std::fs::create_dir_all(&dir).unwrap();
        for (i, s) in seeds.iter().enumerate() {
            std::fs::write(Path::new(&dir).join(format!("seed-{i:02}")), s).unwrap();
        }
    }
    let corpus = root().join("crate/tessera/fuzz/corpus/bundle");
    let mut replayed = 0;
    for entry in std::fs::read_dir(&corpus).into_iter().flatten().flatten() {
        load_untrusted(&std::fs::read(entry.path()).unwrap(), &d);
        replayed += 1;
    }
    let mut rng = Rng::new(2026, 12);
    let (mut loaded, n) = (0, 3000);
    for i in 0..n {
        let s = &seeds[i % seeds.len()];
        loaded += load_untrusted(&mutate(s, &mut rng), &d) as usize;
    }
    eprintln!("fuzz replay: {} seeds, {replayed} corpus inputs, {n} mutations ({loaded} still loaded)", seeds.len());
}
