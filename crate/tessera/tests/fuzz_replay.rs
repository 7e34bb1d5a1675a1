//! The bounded part of the bundle fuzzer, run by `cargo test`: the committed libFuzzer corpus
//! (`crate/tessera/fuzz/corpus/bundle`, grown by `scripts/fuzz.sh`) and a few thousand seeded
//! mutations of the seed inputs go through the fuzz entry point; none may panic. Seeds: every
//! shipped manifest, and a tiny valid bundle (which must load). `TESSERA_FUZZ_SEEDS=DIR` writes the
//! seeds there (for `scripts/fuzz.sh`).
use burn::prelude::*;
use std::path::{Path, PathBuf};
use tessera::bundle::fuzz_entry::{join, load_untrusted};
use tessera::bundle::fixture::{TinyBundle, TinyCondition};
use tessera::bundle::{TEXT_ENCODER, TEXT_TOKENIZER};
use tessera::rng::Rng;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A tiny bundle (`tessera::bundle::fixture`) as the fuzz input's parts: `[manifest, tokenizer,
/// ar, nar]`, then for a text-to-image bundle its prompt tokenizer (so that mutations reach the
/// `tokenizers` JSON parser) and a pretrained encoder's weights.
fn parts(condition: TinyCondition, d: &Device) -> Vec<Vec<u8>> {
    let t = TinyBundle::new(condition, 8, 4, 3, d);
    let mut parts = vec![serde_json::to_vec(&t.manifest).unwrap(), t.files["tokenizer"].clone()];
    parts.extend(t.proposals().into_iter().map(|(_, b)| b.to_vec()));
    parts.extend([TEXT_TOKENIZER, TEXT_ENCODER].iter().filter_map(|r| t.files.get(*r).cloned()));
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
    let tiny = parts(TinyCondition::Class { classes: 2 }, d);
    out.push(with_mode(0, &tiny));
    out.push(with_mode(1, &tiny));
    out.push(with_mode(0, &parts(TinyCondition::Learned, d)));
    out.push(with_mode(0, &parts(TinyCondition::Pretrained, d)));
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
    assert!(load_untrusted(&seeds[3], &d), "the tiny bundle over a pretrained text encoder must load");
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
