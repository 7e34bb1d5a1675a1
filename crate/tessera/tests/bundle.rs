//! Every corrupt-bundle case returns its typed error, and export -> load gives identical outputs.
use burn::prelude::*;
use std::collections::BTreeMap;
use tessera::bundle::{Bundle, DatasetInfo, FileEntry, Manifest, ProposalEntry, ProposalSpec, Provenance, TokenizerSpec, sha256_hex};
use tessera::generate::Request;
use tessera::gpt::GptConfig;
use tessera::maskgit::{MaskGitConfig, unmasking_schedule};
use tessera::sampler::SamplingOptions;
use tessera::vq::VqTokenizerConfig;
use tessera::weights::{module_to_tensors, to_safetensors};
use tessera::BundleError;

struct Fixture {
    manifest: Manifest,
    tokenizer: Vec<u8>,
    proposal: Vec<u8>,
    nar: Vec<u8>,
}

impl Fixture {
    fn proposal_only(&self) -> Vec<(&str, &[u8])> {
        vec![("ar", self.proposal.as_slice())]
    }
    fn load(&self, d: &Device) -> Result<Bundle, BundleError> {
        Bundle::from_bytes(self.manifest.clone(), &self.tokenizer, &[("ar", &self.proposal), ("nar", &self.nar)], d)
    }
}

fn fixture(device: &Device) -> Fixture {
    device.seed(1);
    let tok = VqTokenizerConfig { channels: 4, codebook_size: 16, code_dim: 4, ..Default::default() };
    let gpt = GptConfig { vocab_size: 16, num_classes: 3, block_size: 64, n_layer: 1, n_head: 2, n_embd: 8 };
    let tokenizer = to_safetensors(&module_to_tensors(&tok.init(device)));
    let proposal = to_safetensors(&module_to_tensors(&gpt.init(device)));
    let mg = MaskGitConfig { vocab_size: 16, num_classes: 3, block_size: 64, n_layer: 1, n_head: 2, n_embd: 8 };
    let nar = to_safetensors(&module_to_tensors(&mg.init(device)));
    let entry = |p: &str, b: &[u8]| FileEntry { path: p.into(), bytes: b.len() as u64, sha256: sha256_hex(b) };
    let files = BTreeMap::from([
        ("tokenizer".to_string(), entry("tokenizer.safetensors", &tokenizer)),
        ("ar".to_string(), entry("ar.safetensors", &proposal)),
        ("nar".to_string(), entry("nar.safetensors", &nar)),
    ]);
    let proposals = BTreeMap::from([
        ("ar".to_string(), ProposalEntry { model: ProposalSpec::Ar(gpt), sampling: SamplingOptions::default() }),
        ("nar".to_string(), ProposalEntry { model: ProposalSpec::Nar(mg), sampling: SamplingOptions { steps: 8, ..Default::default() } }),
    ]);
    let manifest = Manifest {
        format: tessera::bundle::FORMAT.into(),
        format_version: tessera::bundle::FORMAT_VERSION,
        name: "tiny".into(),
        dataset: DatasetInfo { name: "synthetic".into(), image_size: 32, channels: 1, classes: vec!["a".into(), "b".into(), "c".into()] },
        grid: [8, 8],
        tokenizer: TokenizerSpec::Vq(tok),
        proposals,
        blank_token: 0,
        files,
        provenance: Provenance::default(),
    };
    Fixture { manifest, tokenizer, proposal, nar }
}

fn json(m: &Manifest) -> String {
    serde_json::to_string(m).unwrap()
}

#[test]
fn valid_bundle_loads() {
    let d = Device::flex();
    let f = fixture(&d);
    let m = Manifest::parse(&json(&f.manifest)).unwrap();
    let b = Bundle::from_bytes(m, &f.tokenizer, &f.proposal_only(), &d).unwrap();
    assert_eq!(b.proposals.len(), 1, "only the proposals asked for are loaded");
    f.load(&d).unwrap();
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
    m.files.get_mut("ar").unwrap().path = "../../etc/passwd".into();
    assert!(matches!(Manifest::parse(&json(&m)), Err(BundleError::Invalid(_))));
    let mut m = fixture(&d).manifest;
    m.files.remove("nar");
    assert!(matches!(Manifest::parse(&json(&m)), Err(BundleError::Invalid(_))));
}

#[test]
fn checksum_truncation_and_shape() {
    let d = Device::flex();
    let f = fixture(&d);
    // truncated: size differs from the manifest
    let r = Bundle::from_bytes(f.manifest.clone(), &f.tokenizer[..f.tokenizer.len() - 10], &f.proposal_only(), &d);
    assert!(matches!(r, Err(BundleError::Truncated { .. })), "{r:?}");
    // same size, flipped byte: checksum
    let mut flipped = f.proposal.clone();
    let n = flipped.len();
    flipped[n - 3] ^= 0x55;
    let r = Bundle::from_bytes(f.manifest.clone(), &f.tokenizer, &[("ar", &flipped)], &d);
    assert!(matches!(r, Err(BundleError::ChecksumMismatch { .. })), "{r:?}");
    // checksums right but weights of another shape (manifest updated consistently)
    let other = GptConfig { vocab_size: 16, num_classes: 3, block_size: 64, n_layer: 1, n_head: 2, n_embd: 16 };
    let wrong = to_safetensors(&module_to_tensors(&other.init(&d)));
    let mut m = f.manifest.clone();
    m.files.insert("ar".into(), FileEntry { path: "ar.safetensors".into(), bytes: wrong.len() as u64, sha256: sha256_hex(&wrong) });
    let r = Bundle::from_bytes(m, &f.tokenizer, &[("ar", &wrong)], &d);
    assert!(matches!(r, Err(BundleError::WrongShape { .. })), "{r:?}");
    // garbage that passes the checksum is still not a safetensors file
    let junk = vec![7u8; 100];
    let mut m = f.manifest.clone();
    m.files.insert("ar".into(), FileEntry { path: "ar.safetensors".into(), bytes: 100, sha256: sha256_hex(&junk) });
    let r = Bundle::from_bytes(m, &f.tokenizer, &[("ar", &junk)], &d);
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
    std::fs::write(dir.join("ar.safetensors"), &f.proposal).unwrap();
    std::fs::write(dir.join("nar.safetensors"), &f.nar).unwrap();
    let a = Bundle::load_dir(&dir, &d).unwrap();
    let b = Bundle::load_dir(&dir, &d).unwrap();
    // identical weights -> identical samples (both proposal networks) and decodes
    for name in ["ar", "nar"] {
        let req = Request { class: 1, count: 2, options: SamplingOptions { seed: 5, ..a.defaults(name).unwrap() } };
        let ta = pollster::block_on(a.sampler(name, req.clone(), None, &d).unwrap().run(64)).unwrap();
        let tb = pollster::block_on(b.sampler(name, req, None, &d).unwrap().run(64)).unwrap();
        assert_eq!(ta, tb);
        let t = tessera::generate::tokens_tensor(&ta, 64, 16, &d).unwrap();
        let x: Vec<f32> = a.tokenizer.decode(t.clone()).into_data().try_to_vec().unwrap();
        let y: Vec<f32> = b.tokenizer.decode(t).into_data().try_to_vec().unwrap();
        assert_eq!(x, y);
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn nar_reveals_per_schedule_and_inpainting_keeps_given_tokens() {
    let d = Device::flex();
    let b = fixture(&d).load(&d).unwrap();
    let opts = SamplingOptions { seed: 3, steps: 8, guidance: 1.5, ..Default::default() };
    // whole images: the number of tokens revealed per step follows the cosine schedule
    let req = Request { class: 0, count: 2, options: opts.clone() };
    let mut s = b.sampler("nar", req.clone(), None, &d).unwrap();
    let schedule = unmasking_schedule(64, 8);
    let mut masked = 64;
    let mut steps = 0;
    while !s.done() {
        pollster::block_on(s.step()).unwrap();
        for revealed in s.last_step() {
            assert_eq!(revealed.len(), masked - schedule[steps], "step {steps}");
        }
        masked = schedule[steps];
        steps += 1;
    }
    assert_eq!(steps, 8);
    // inpainting: given tokens never change; the 20 masked positions are revealed per schedule
    let given: Vec<Vec<Option<u32>>> = (0..2).map(|i| (0..64).map(|p| if (p + i) % 3 == 0 { None } else { Some(((p * 5 + i) % 16) as u32) }).collect()).collect();
    let mut s = b.sampler("nar", req.clone(), Some(given.clone()), &d).unwrap();
    let holes: Vec<usize> = given.iter().map(|g| g.iter().filter(|v| v.is_none()).count()).collect();
    let mut step = 0;
    while !s.done() {
        pollster::block_on(s.step()).unwrap();
        for (i, revealed) in s.last_step().iter().enumerate() {
            let sched = unmasking_schedule(holes[i], 8);
            let before = if step == 0 { holes[i] } else { sched[step - 1] };
            assert_eq!(revealed.len(), before - sched[step]);
            assert!(revealed.iter().all(|(p, _)| given[i][*p].is_none()), "revealed a given position");
        }
        step += 1;
    }
    let out = pollster::block_on(s.run(64)).unwrap();
    for (g, o) in given.iter().zip(&out) {
        for (p, v) in g.iter().enumerate() {
            if let Some(v) = v {
                assert_eq!(o[p], *v, "given token at {p} changed");
            }
        }
    }
    // deterministic given the seed; AR refuses inpainting; bad grids are typed errors
    let again = pollster::block_on(b.sampler("nar", req.clone(), Some(given.clone()), &d).unwrap().run(64)).unwrap();
    assert_eq!(again, out);
    assert!(b.sampler("ar", req.clone(), Some(given.clone()), &d).is_err());
    assert!(b.sampler("nar", req.clone(), Some(vec![vec![None; 63]; 2]), &d).is_err());
    assert!(b.sampler("nar", req.clone(), Some(vec![vec![Some(16); 64]; 2]), &d).is_err());
    assert!(b.sampler("gan", req, None, &d).is_err());
}

/// Every tokenizer kind goes through the bundle format: save -> load gives the same encode/decode.
#[test]
fn every_tokenizer_kind_round_trips() {
    use tessera::cluster::ClusterConfig;
    use tessera::fsq::FsqConfig;
    use tessera::vit::VitConfig;
    use tessera::vqkd::VqKdConfig;
    use tessera::weights::{from_safetensors, to_safetensors};
    let d = Device::flex();
    d.seed(11);
    let teacher = VitConfig { n_layer: 1, n_head: 2, n_embd: 8, ..Default::default() };
    let specs = [
        TokenizerSpec::Fsq(FsqConfig { channels: 4, ..Default::default() }),
        TokenizerSpec::Vqkd(VqKdConfig { image_channels: 1, image_size: 32, grid: 8, channels: 4, codebook_size: 16, code_dim: 4, teacher_dim: 8, teacher_name: "t".into(), decay: 0.99, commitment: 0.25, decoder_output: Default::default() }),
        TokenizerSpec::Cluster(ClusterConfig { teacher, teacher_name: "t".into(), codebook_size: 16, channels: 4, decoder_output: Default::default() }),
    ];
    let images = Tensor::<4>::random([2, 1, 32, 32], burn::tensor::Distribution::Uniform(-1.0, 1.0), &d);
    for spec in specs {
        let fresh = spec.load(Default::default(), "x", &d);
        assert!(matches!(fresh, Err(BundleError::MissingTensor { .. })), "{}: empty file must fail", spec.kind());
        let model = match &spec {
            TokenizerSpec::Fsq(c) => module_to_tensors(&c.init(&d)),
            TokenizerSpec::Vqkd(c) => module_to_tensors(&c.init(&d)),
            TokenizerSpec::Cluster(c) => {
                let mut t = module_to_tensors(&c.init(&d));
                // unit-norm, distinct centroids
                let cb = t.get_mut("codebook").unwrap();
                for (i, v) in cb.values.iter_mut().enumerate() {
                    *v = if i % 8 == (i / 8) % 8 { 1.0 } else { 0.0 };
                }
                t
            }
            TokenizerSpec::Vq(c) => module_to_tensors(&c.init(&d)),
        };
        let bytes = to_safetensors(&model);
        let a = spec.load(from_safetensors("a", &bytes).unwrap(), "a", &d).unwrap();
        let b = spec.load(from_safetensors("b", &bytes).unwrap(), "b", &d).unwrap();
        let ta = a.encode(images.clone());
        assert_eq!(ta.dims(), [2, 64], "{}", spec.kind());
        let tv: Vec<i64> = ta.clone().into_data().convert::<i64>().try_to_vec().unwrap();
        assert!(tv.iter().all(|&t| (t as usize) < spec.codebook_size()));
        assert_eq!(tv, b.encode(images.clone()).into_data().convert::<i64>().try_to_vec::<i64>().unwrap());
        let x: Vec<f32> = a.decode(ta.clone()).into_data().try_to_vec().unwrap();
        let y: Vec<f32> = b.decode(ta).into_data().try_to_vec().unwrap();
        assert_eq!(x.len(), 2 * 32 * 32);
        assert_eq!(x, y);
    }
}
