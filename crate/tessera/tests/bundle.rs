//! Every corrupt-bundle case returns its typed error, and export -> load gives the outputs of the
//! model that was exported.
use burn::prelude::*;
use std::collections::BTreeMap;
use tessera::BundleError;
use tessera::bundle::weights::{module_to_tensors, to_safetensors};
use tessera::bundle::{Bundle, DatasetInfo, FileEntry, Manifest, ProposalEntry, ProposalSpec, Provenance, TokenizerSpec, sha256_hex};
use tessera::proposal::ProposalConfig;
use tessera::proposal::gpt::{Gpt, KvCache};
use tessera::proposal::maskgit::unmasking_schedule;
use tessera::sampling::Request;
use tessera::sampling::sampler::SamplingOptions;
use tessera::tokenizer::vqgan::{VqganConfig, VqganTokenizer};

struct Fixture {
    manifest: Manifest,
    tokenizer: Vec<u8>,
    proposal: Vec<u8>,
    nar: Vec<u8>,
    /// The exported models themselves.
    tok_model: VqganTokenizer,
    gpt_model: Gpt,
}

impl Fixture {
    fn proposal_only(&self) -> Vec<(&str, &[u8])> {
        vec![("ar", self.proposal.as_slice())]
    }
    fn load(&self, d: &Device) -> Result<Bundle, BundleError> {
        Bundle::from_bytes(self.manifest.clone(), &self.tokenizer, &[("ar", &self.proposal), ("nar", &self.nar)], None, d)
    }
}

fn fixture(device: &Device) -> Fixture {
    device.seed(1);
    let tok = VqganConfig { channels: 4, codebook_size: 16, code_dim: 4, ..Default::default() };
    let gpt = ProposalConfig { vocab_size: 16, num_classes: 3, block_size: 64, n_layer: 1, n_head: 2, n_embd: 8, text: None };
    let tok_model = tok.init(device).unwrap();
    let gpt_model = gpt.init_gpt(device).unwrap();
    let tokenizer = to_safetensors(&module_to_tensors(&tok_model));
    let proposal = to_safetensors(&module_to_tensors(&gpt_model));
    let mg = gpt.clone();
    let nar = to_safetensors(&module_to_tensors(&mg.init_maskgit(device).unwrap()));
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
        dataset: DatasetInfo { name: "synthetic".into(), image_size: 32, channels: 1, background: 0, credits: vec![], classes: vec!["a".into(), "b".into(), "c".into()] },
        grid: [8, 8],
        tokenizer: TokenizerSpec::Vqgan(tok),
        proposals,
        blank_token: 0,
        files,
        provenance: Provenance::default(),
        text: None,
    };
    Fixture { manifest, tokenizer, proposal, nar, tok_model, gpt_model }
}

fn json(m: &Manifest) -> String {
    serde_json::to_string(m).unwrap()
}

#[test]
fn valid_bundle_loads() {
    let d = Device::flex();
    let f = fixture(&d);
    let m = Manifest::parse(&json(&f.manifest)).unwrap();
    let b = Bundle::from_bytes(m, &f.tokenizer, &f.proposal_only(), None, &d).unwrap();
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

/// What a hostile manifest tried: sizes that disagree across dataset, tokenizer and proposals, and
/// absurd sizes. Each is a typed error at parse time, before any tensor is allocated.
#[test]
fn inconsistent_or_absurd_sizes_are_rejected_before_allocation() {
    let d = Device::flex();
    let base = serde_json::to_value(&fixture(&d).manifest).unwrap();
    let cases: Vec<(&str, Box<dyn Fn(&mut serde_json::Value)>)> = vec![
        ("dataset image size", Box::new(|v| v["dataset"]["image_size"] = 64.into())),
        ("image channels", Box::new(|v| v["dataset"]["channels"] = 3.into())),
        ("tokenizer grid", Box::new(|v| v["tokenizer"]["config"]["grid"] = 7.into())),
        ("tokenizer channels 0", Box::new(|v| v["tokenizer"]["config"]["channels"] = 0.into())),
        ("huge code_dim", Box::new(|v| v["tokenizer"]["config"]["code_dim"] = 1_000_000_000u64.into())),
        ("huge codebook", Box::new(|v| v["tokenizer"]["config"]["codebook_size"] = 100_000_000u64.into())),
        ("huge n_layer", Box::new(|v| v["proposals"]["ar"]["model"]["config"]["n_layer"] = 100_000_000u64.into())),
        ("n_head 0", Box::new(|v| v["proposals"]["nar"]["model"]["config"]["n_head"] = 0.into())),
        ("n_head 3", Box::new(|v| v["proposals"]["nar"]["model"]["config"]["n_head"] = 3.into())),
        ("budget", Box::new(|v| {
            let c = &mut v["proposals"]["ar"]["model"]["config"];
            c["n_embd"] = 4096.into();
            c["n_layer"] = 64.into();
        })),
        ("no classes", Box::new(|v| v["dataset"]["classes"] = serde_json::json!([]))),
        ("proposal classes", Box::new(|v| v["proposals"]["ar"]["model"]["config"]["num_classes"] = 4.into())),
        ("image size 0", Box::new(|v| {
            v["dataset"]["image_size"] = 0.into();
            v["tokenizer"]["config"]["image_size"] = 0.into();
            v["tokenizer"]["config"]["grid"] = 0.into();
        })),
    ];
    for (what, edit) in cases {
        let mut v = base.clone();
        edit(&mut v);
        let r = Manifest::parse(&v.to_string());
        assert!(matches!(r, Err(BundleError::Invalid(_) | BundleError::Config(_))), "{what}: {r:?}");
    }
    // a Cluster teacher whose patch does not give the decoder's 4x upsampling
    let mut v = base.clone();
    v["tokenizer"] = serde_json::json!({"kind": "cluster", "config": {"teacher": {"image_channels": 1, "image_size": 32, "patch": 8, "n_layer": 1,
        "n_head": 2, "n_embd": 8, "num_classes": 3}, "teacher_name": "t", "codebook_size": 16, "channels": 4}});
    v["grid"] = serde_json::json!([4, 4]);
    assert!(matches!(Manifest::parse(&v.to_string()), Err(BundleError::Config(_))));
    // a Cluster bundle whose teacher is EfficientNet-Lite: valid, then every bad size is a typed error
    let lite = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut v = base.clone();
        let mut t = serde_json::json!({"name": "efficientnet-lite0", "width": 1.0, "depth": 1.0, "blocks": 11, "head": false, "num_classes": 0,
            "image_size": 32, "image_channels": 1, "input_size": 128});
        edit(&mut t);
        v["tokenizer"] = serde_json::json!({"kind": "cluster", "config": {"teacher": t, "teacher_name": "lite0", "codebook_size": 16, "channels": 4}});
        Manifest::parse(&v.to_string())
    };
    assert!(lite(&|_| {}).is_ok(), "{:?}", lite(&|_| {}));
    for (what, edit) in [
        ("no blocks", Box::new(|t: &mut serde_json::Value| t["blocks"] = 0.into()) as Box<dyn Fn(&mut serde_json::Value)>),
        ("more blocks than Lite0 has", Box::new(|t: &mut serde_json::Value| t["blocks"] = 99.into())),
        ("input not a multiple of the stride", Box::new(|t: &mut serde_json::Value| t["input_size"] = 100.into())),
        ("a grid that is not image/4", Box::new(|t: &mut serde_json::Value| t["input_size"] = 64.into())),
        ("two channels", Box::new(|t: &mut serde_json::Value| t["image_channels"] = 2.into())),
        ("a huge input", Box::new(|t: &mut serde_json::Value| t["input_size"] = 1_000_000.into())),
        ("infinite width", Box::new(|t: &mut serde_json::Value| t["width"] = 1e300.into())),
    ] {
        assert!(matches!(lite(&*edit), Err(BundleError::Invalid(_) | BundleError::Config(_) | BundleError::BadJson(_))), "{what}: {:?}", lite(&*edit));
    }
    // the old name of the VQGAN tokenizer still reads
    let mut v = base.clone();
    v["tokenizer"]["kind"] = "vq".into();
    assert!(matches!(Manifest::parse(&v.to_string()).unwrap().tokenizer, TokenizerSpec::Vqgan(_)));
    // a manifest built in code is checked by `from_bytes` too
    let f = fixture(&d);
    let mut m = f.manifest.clone();
    m.dataset.image_size = 64;
    assert!(matches!(Bundle::from_bytes(m, &f.tokenizer, &f.proposal_only(), None, &d), Err(BundleError::Invalid(_))));
}

#[test]
fn checksum_truncation_and_shape() {
    let d = Device::flex();
    let f = fixture(&d);
    // truncated: size differs from the manifest
    let r = Bundle::from_bytes(f.manifest.clone(), &f.tokenizer[..f.tokenizer.len() - 10], &f.proposal_only(), None, &d);
    assert!(matches!(r, Err(BundleError::Truncated { .. })), "{r:?}");
    // same size, flipped byte: checksum
    let mut flipped = f.proposal.clone();
    let n = flipped.len();
    flipped[n - 3] ^= 0x55;
    let r = Bundle::from_bytes(f.manifest.clone(), &f.tokenizer, &[("ar", &flipped)], None, &d);
    assert!(matches!(r, Err(BundleError::ChecksumMismatch { .. })), "{r:?}");
    // checksums right but weights of another shape (manifest updated consistently)
    let other = ProposalConfig { vocab_size: 16, num_classes: 3, block_size: 64, n_layer: 1, n_head: 2, n_embd: 16, text: None };
    let wrong = to_safetensors(&module_to_tensors(&other.init_gpt(&d).unwrap()));
    let mut m = f.manifest.clone();
    m.files.insert("ar".into(), FileEntry { path: "ar.safetensors".into(), bytes: wrong.len() as u64, sha256: sha256_hex(&wrong) });
    let r = Bundle::from_bytes(m, &f.tokenizer, &[("ar", &wrong)], None, &d);
    assert!(matches!(r, Err(BundleError::WrongShape { .. })), "{r:?}");
    // garbage that passes the checksum is still not a safetensors file
    let junk = vec![7u8; 100];
    let mut m = f.manifest.clone();
    m.files.insert("ar".into(), FileEntry { path: "ar.safetensors".into(), bytes: 100, sha256: sha256_hex(&junk) });
    let r = Bundle::from_bytes(m, &f.tokenizer, &[("ar", &junk)], None, &d);
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
    // the loaded bundle computes what the exported models computed: the AR network's logits over a
    // whole sampling run, and the tokenizer's decode of the sampled tokens
    let req = Request { class: 1, count: 2, options: SamplingOptions { seed: 5, ..a.defaults("ar").unwrap() }, prompt: None };
    let tokens = pollster::block_on(a.sampler("ar", req, None, &d).unwrap().run(64)).unwrap();
    let tessera::bundle::Proposal::Ar(loaded) = &a.proposals["ar"] else { panic!("ar is a GPT") };
    let (mut c1, mut c2) = (KvCache::default(), KvCache::default());
    let cls = Tensor::<1, Int>::from_data(TensorData::new(vec![1i64, 1], [2]), &d);
    for pos in 0..64 {
        let prev = (pos > 0).then(|| Tensor::<1, Int>::from_data(TensorData::new(vec![tokens[0][pos - 1] as i64, tokens[1][pos - 1] as i64], [2]), &d));
        let x: Vec<f32> = f.gpt_model.step(&mut c1, cls.clone(), prev.clone()).into_data().try_to_vec().unwrap();
        let y: Vec<f32> = loaded.step(&mut c2, cls.clone(), prev).into_data().try_to_vec().unwrap();
        assert_eq!(x, y, "logits at position {pos}");
    }
    let t = tessera::sampling::tokens_tensor(&tokens, 64, 16, &d).unwrap();
    let x: Vec<f32> = f.tok_model.decode(t.clone()).into_data().try_to_vec().unwrap();
    let y: Vec<f32> = a.tokenizer.decode(t).into_data().try_to_vec().unwrap();
    assert_eq!(x, y);
    // and the manifest on disk is read back as written
    assert_eq!(a.manifest, f.manifest);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn nar_reveals_per_schedule_and_inpainting_keeps_given_tokens() {
    let d = Device::flex();
    let b = fixture(&d).load(&d).unwrap();
    let opts = SamplingOptions { seed: 3, steps: 8, guidance: 1.5, ..Default::default() };
    // whole images: the number of tokens revealed per step follows the cosine schedule
    let req = Request { class: 0, count: 2, options: opts.clone(), prompt: None };
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
    use tessera::bundle::weights::from_safetensors;
    use tessera::teacher::vit::VitConfig;
    use tessera::tokenizer::AnyTokenizer;
    use tessera::tokenizer::cluster::ClusterConfig;
    use tessera::tokenizer::fsq::FsqConfig;
    use tessera::tokenizer::vqkd::VqKdConfig;
    let d = Device::flex();
    d.seed(11);
    let teacher = VitConfig { n_layer: 1, n_head: 2, n_embd: 8, ..Default::default() };
    let specs = [
        TokenizerSpec::Vqgan(VqganConfig { channels: 4, codebook_size: 16, code_dim: 4, ..Default::default() }),
        TokenizerSpec::Fsq(FsqConfig { channels: 4, ..Default::default() }),
        TokenizerSpec::Vqkd(VqKdConfig { image_channels: 1, image_size: 32, grid: 8, channels: 4, codebook_size: 16, code_dim: 4, teacher_dim: 8, teacher_name: "t".into(), decay: 0.99, commitment: 0.25, decoder_output: Default::default() }),
        TokenizerSpec::Cluster(ClusterConfig { teacher: teacher.into(), teacher_name: "t".into(), codebook_size: 16, channels: 4, decoder_output: Default::default() }),
    ];
    let images = Tensor::<4>::random([2, 1, 32, 32], burn::tensor::Distribution::Uniform(-1.0, 1.0), &d);
    for spec in specs {
        let fresh = spec.load(Default::default(), "x", &d);
        assert!(matches!(fresh, Err(BundleError::MissingTensor { .. })), "{}: empty file must fail", spec.kind());
        let mut exported = spec.init(&d).unwrap();
        if let AnyTokenizer::Cluster(t) = &mut exported {
            // unit-norm, distinct centroids (k-means would set them)
            let c: Vec<f32> = (0..16 * 8).map(|i| if i % 8 == (i / 8) % 8 { 1.0 } else { 0.0 }).collect();
            t.quantizer = tessera::tokenizer::quantizer::CosineQuantizer::new(Tensor::from_data(TensorData::new(c, [16, 8]), &d));
        }
        let bytes = to_safetensors(&module_to_tensors_any(&exported));
        let a = spec.load(from_safetensors("a", &bytes).unwrap(), "a", &d).unwrap();
        let ta = a.encode(images.clone());
        assert_eq!(ta.dims(), [2, 64], "{}", spec.kind());
        let tv: Vec<i64> = ta.clone().into_data().convert::<i64>().try_to_vec().unwrap();
        assert!(tv.iter().all(|&t| (t as usize) < spec.codebook_size()));
        assert_eq!(tv, exported.encode(images.clone()).into_data().convert::<i64>().try_to_vec::<i64>().unwrap());
        let x: Vec<f32> = a.decode(ta.clone()).into_data().try_to_vec().unwrap();
        let y: Vec<f32> = exported.decode(ta).into_data().try_to_vec().unwrap();
        assert_eq!(x.len(), 2 * 32 * 32);
        assert_eq!(x, y);
    }
}

fn module_to_tensors_any(t: &tessera::tokenizer::AnyTokenizer) -> tessera::bundle::weights::NamedTensors {
    use tessera::tokenizer::AnyTokenizer::*;
    match t {
        Vqgan(m) => module_to_tensors(m),
        Fsq(m) => module_to_tensors(m),
        Vqkd(m) => module_to_tensors(m),
        Cluster(m) => module_to_tensors(m),
    }
}
