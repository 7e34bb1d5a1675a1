//! Every corrupt-bundle case returns its typed error, and export -> load gives identical outputs.
use burn::prelude::*;
use std::collections::BTreeMap;
use tessera::bundle::{Bundle, DatasetInfo, FileEntry, Manifest, ProposalSpec, Provenance, TokenizerSpec, sha256_hex};
use tessera::generate::{ArSampling, Request};
use tessera::gpt::GptConfig;
use tessera::sampler::SamplingOptions;
use tessera::vq::VqTokenizerConfig;
use tessera::weights::{module_to_tensors, to_safetensors};
use tessera::BundleError;

struct Fixture {
    manifest: Manifest,
    tokenizer: Vec<u8>,
    proposal: Vec<u8>,
}

fn fixture(device: &Device) -> Fixture {
    device.seed(1);
    let tok = VqTokenizerConfig { channels: 4, codebook_size: 16, code_dim: 4, ..Default::default() };
    let gpt = GptConfig { vocab_size: 16, num_classes: 3, block_size: 64, n_layer: 1, n_head: 2, n_embd: 8 };
    let tokenizer = to_safetensors(&module_to_tensors(&tok.init(device)));
    let proposal = to_safetensors(&module_to_tensors(&gpt.init(device)));
    let entry = |p: &str, b: &[u8]| FileEntry { path: p.into(), bytes: b.len() as u64, sha256: sha256_hex(b) };
    let files = BTreeMap::from([
        ("tokenizer".to_string(), entry("tokenizer.safetensors", &tokenizer)),
        ("proposal".to_string(), entry("proposal.safetensors", &proposal)),
    ]);
    let manifest = Manifest {
        format: tessera::bundle::FORMAT.into(),
        format_version: tessera::bundle::FORMAT_VERSION,
        name: "tiny".into(),
        dataset: DatasetInfo { name: "synthetic".into(), image_size: 32, channels: 1, classes: vec!["a".into(), "b".into(), "c".into()] },
        grid: [8, 8],
        tokenizer: TokenizerSpec::Vq(tok),
        proposal: ProposalSpec::Ar(gpt),
        blank_token: 0,
        sampling: SamplingOptions::default(),
        classifier: None,
        files,
        provenance: Provenance::default(),
    };
    Fixture { manifest, tokenizer, proposal }
}

fn json(m: &Manifest) -> String {
    serde_json::to_string(m).unwrap()
}

#[test]
fn valid_bundle_loads() {
    let d = Device::flex();
    let f = fixture(&d);
    let m = Manifest::parse(&json(&f.manifest)).unwrap();
    Bundle::from_bytes(m, &f.tokenizer, &f.proposal, &d).unwrap();
}

#[test]
fn bad_json_and_version() {
    assert!(matches!(Manifest::parse("{not json"), Err(BundleError::BadJson(_))));
    let d = Device::flex();
    let mut m = fixture(&d).manifest;
    m.format_version = 99;
    assert!(matches!(Manifest::parse(&json(&m)), Err(BundleError::UnsupportedVersion { version: 99, .. })));
    let mut v: serde_json::Value = serde_json::from_str(&json(&fixture(&d).manifest)).unwrap();
    v["format"] = "something-else".into();
    assert!(matches!(Manifest::parse(&v.to_string()), Err(BundleError::UnsupportedVersion { .. })));
    // right version, broken schema
    v["format"] = tessera::bundle::FORMAT.into();
    v.as_object_mut().unwrap().remove("grid");
    assert!(matches!(Manifest::parse(&v.to_string()), Err(BundleError::BadJson(_))));
}

#[test]
fn inconsistent_manifest_is_rejected() {
    let d = Device::flex();
    let mut m = fixture(&d).manifest;
    m.grid = [4, 4];
    assert!(matches!(Manifest::parse(&json(&m)), Err(BundleError::Invalid(_))));
    let mut m = fixture(&d).manifest;
    m.files.get_mut("proposal").unwrap().path = "../../etc/passwd".into();
    assert!(matches!(Manifest::parse(&json(&m)), Err(BundleError::Invalid(_))));
}

#[test]
fn checksum_truncation_and_shape() {
    let d = Device::flex();
    let f = fixture(&d);
    // truncated: size differs from the manifest
    let r = Bundle::from_bytes(f.manifest.clone(), &f.tokenizer[..f.tokenizer.len() - 10], &f.proposal, &d);
    assert!(matches!(r, Err(BundleError::Truncated { .. })), "{r:?}");
    // same size, flipped byte: checksum
    let mut flipped = f.proposal.clone();
    let n = flipped.len();
    flipped[n - 3] ^= 0x55;
    let r = Bundle::from_bytes(f.manifest.clone(), &f.tokenizer, &flipped, &d);
    assert!(matches!(r, Err(BundleError::ChecksumMismatch { .. })), "{r:?}");
    // checksums right but weights of another shape (manifest updated consistently)
    let other = GptConfig { vocab_size: 16, num_classes: 3, block_size: 64, n_layer: 1, n_head: 2, n_embd: 16 };
    let wrong = to_safetensors(&module_to_tensors(&other.init(&d)));
    let mut m = f.manifest.clone();
    m.files.insert("proposal".into(), FileEntry { path: "proposal.safetensors".into(), bytes: wrong.len() as u64, sha256: sha256_hex(&wrong) });
    let r = Bundle::from_bytes(m, &f.tokenizer, &wrong, &d);
    assert!(matches!(r, Err(BundleError::WrongShape { .. })), "{r:?}");
    // garbage that passes the checksum is still not a safetensors file
    let junk = vec![7u8; 100];
    let mut m = f.manifest.clone();
    m.files.insert("proposal".into(), FileEntry { path: "proposal.safetensors".into(), bytes: 100, sha256: sha256_hex(&junk) });
    let r = Bundle::from_bytes(m, &f.tokenizer, &junk, &d);
    assert!(matches!(r, Err(BundleError::BadWeights { .. })), "{r:?}");
}

#[test]
fn missing_file_and_round_trip_from_disk() {
    let d = Device::flex();
    let f = fixture(&d);
    let dir = std::env::temp_dir().join(format!("tessera-bundle-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("manifest.json"), json(&f.manifest)).unwrap();
    std::fs::write(dir.join("tokenizer.safetensors"), &f.tokenizer).unwrap();
    assert!(matches!(Bundle::load_dir(&dir, &d), Err(BundleError::MissingFile(_))));
    std::fs::write(dir.join("proposal.safetensors"), &f.proposal).unwrap();
    let a = Bundle::load_dir(&dir, &d).unwrap();
    let b = Bundle::load_dir(&dir, &d).unwrap();
    // identical weights -> identical samples and decodes
    let req = Request { class: 1, count: 2, options: SamplingOptions { seed: 5, ..Default::default() } };
    let ta = pollster::block_on(ArSampling::new(&a.proposal, a.manifest.proposal_config(), req.clone(), &d).unwrap().run()).unwrap();
    let tb = pollster::block_on(ArSampling::new(&b.proposal, b.manifest.proposal_config(), req, &d).unwrap().run()).unwrap();
    assert_eq!(ta, tb);
    assert_eq!(module_to_tensors(&a.tokenizer), module_to_tensors(&b.tokenizer));
    std::fs::remove_dir_all(&dir).ok();
}
