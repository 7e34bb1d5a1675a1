//! Native generation and evaluation of a bundle (`generate`, `eval`): the `EvalReport` of every
//! metric, computed with the in-project evaluator (not Inception).
use crate::data::{self, DataInfo, DataSpec, Shape, Split, images_tensor};
use crate::SampleArgs;
use crate::metrics;
use anyhow::{Context, Result, bail};
use burn::prelude::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;
use tessera::bundle::{Bundle, FileEntry, Manifest, PromptReport, Proposal, ProposalSpec, Provenance, TokenizerSpec};
use tessera::proposal::condition::{Condition, TextInput};

/// Text-to-image evaluation: images sampled per held-out caption.
pub const PER_PROMPT: usize = 10;
use tessera::sampling::Prompts;
use tessera::train::classifier::{Classifier, ClassifierConfig};
use tessera::sampling::{Request, decode, to_rgba, tokens_tensor};
use tessera::sampling::sampler::SamplingOptions;
use tessera::tokenizer::TokenizerKind;
use tessera::tokenizer::vqgan::VqganConfig;
use tessera::bundle::weights::{from_safetensors, load_module};

/// Sampling defaults stored in the bundle: AR uses the paper's top-k/top-p settings scaled to a
/// 256-code book (top-k 100, capped at the codebook size); NAR uses MaskGIT's (10 steps, confidence
/// noise 4.5); both guidance 1.75.
pub fn default_sampling(kind: &str, codebook_size: usize) -> SamplingOptions {
    match kind {
        "nar" => SamplingOptions { seed: 0, temperature: 1.0, top_k: 0, top_p: 1.0, guidance: 1.75, steps: 10, confidence_noise: 4.5 },
        _ => SamplingOptions { seed: 0, temperature: 1.0, top_k: 100.min(codebook_size), top_p: 0.92, guidance: 1.75, ..Default::default() },
    }
}

pub fn sampling(d: &SamplingOptions, a: &SampleArgs) -> SamplingOptions {
    SamplingOptions {
        seed: a.seed,
        temperature: a.temperature.unwrap_or(d.temperature),
        top_k: a.top_k.unwrap_or(d.top_k),
        top_p: a.top_p.unwrap_or(d.top_p),
        guidance: a.guidance.unwrap_or(d.guidance),
        steps: a.steps.unwrap_or(d.steps),
        confidence_noise: a.confidence_noise.unwrap_or(d.confidence_noise),
    }
}

/// The tokenizer spec a run saved (older VQ runs saved the bare VQ config).
pub fn tokenizer_spec(config: &serde_json::Value) -> Result<TokenizerSpec> {
    serde_json::from_value::<TokenizerSpec>(config.clone())
        .or_else(|_| serde_json::from_value::<VqganConfig>(config.clone()).map(TokenizerSpec::Vqgan))
        .context("unrecognised tokenizer config in the run")
}

pub(crate) fn git_commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn class_index(m: &Manifest, s: &str) -> Result<usize> {
    if let Ok(i) = s.parse::<usize>() {
        if i < m.dataset.classes.len() {
            return Ok(i);
        }
    }
    m.dataset
        .classes
        .iter()
        .position(|c| c.eq_ignore_ascii_case(s))
        .with_context(|| format!("unknown class '{s}'; classes: {}", m.dataset.classes.join(", ")))
}

/// Samples `count` images of `class` with proposal network `proposal` and decodes them:
/// (tokens, pixels in [-1, 1]).
pub fn sample(b: &Bundle, proposal: &str, class: usize, count: usize, opts: &SamplingOptions, device: &Device) -> Result<(Vec<Vec<u32>>, Vec<f32>)> {
    sample_request(b, proposal, Request { class, count, options: opts.clone(), prompt: None }, device)
}

/// A prompt as a text-to-image bundle's proposal networks read it (ids, and a pretrained text
/// encoder's states from the bundle's own `text_encoder` file, as in the browser).
pub fn encode_prompt(b: &Bundle, prompt: &str) -> Result<(Prompts, PromptReport)> {
    Ok(pollster::block_on(b.encode_prompt(prompt))?)
}

/// What a prompt's report says to a user (nothing when the model reads all of it).
pub fn prompt_warnings(prompt: &str, r: &PromptReport) -> Vec<String> {
    let mut w = Vec::new();
    if !r.unknown.is_empty() {
        w.push(format!("{prompt:?}: characters outside the vocabulary in {}", r.unknown.join(", ")));
    }
    if !r.unseen.is_empty() {
        w.push(format!("{prompt:?}: never seen in training: {}", r.unseen.join(", ")));
    }
    if r.truncated {
        w.push(format!("{prompt:?}: longer than the model's text positions, cut"));
    }
    w
}

/// Samples a request and decodes it: (tokens, pixels in [-1, 1]).
pub fn sample_request(b: &Bundle, proposal: &str, req: Request, device: &Device) -> Result<(Vec<Vec<u32>>, Vec<f32>)> {
    let per = b.manifest.tokenizer.tokens_per_image();
    let tokens = pollster::block_on(b.sampler(proposal, req, None, device)?.run(per))?;
    let t = tokens_tensor(&tokens, per, b.manifest.tokenizer.codebook_size(), device)?;
    let (pixels, _) = pollster::block_on(decode(&b.tokenizer, t))?;
    Ok((tokens, pixels))
}

/// Writes images (`[n, c, s, s]` in [-1, 1]) as a grid PNG with `cols` columns.
pub fn write_grid(pixels: &[f32], shape: Shape, n: usize, cols: usize, path: &Path) -> Result<()> {
    let size = shape.size;
    let rgba = to_rgba(pixels, [n, shape.channels, size, size]);
    let rows = n.div_ceil(cols);
    let (pad, cell) = (2, size + 2);
    let mut img = image::RgbaImage::from_pixel((cols * cell + pad) as u32, (rows * cell + pad) as u32, image::Rgba([40, 40, 40, 255]));
    for (i, im) in rgba.iter().enumerate() {
        let (ox, oy) = (pad + (i % cols) * cell, pad + (i / cols) * cell);
        for p in 0..size * size {
            let px = image::Rgba([im[p * 4], im[p * 4 + 1], im[p * 4 + 2], im[p * 4 + 3]]);
            img.put_pixel((ox + p % size) as u32, (oy + p / size) as u32, px);
        }
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).ok();
    }
    img.save(path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Which classes a grid shows: one by name, every class, or at most `n` spread evenly over the list
/// (a figure of 95 emoji classes x 8 samples was a 1.8 MB PNG).
#[derive(Debug, Clone, Copy)]
pub enum GridClasses<'a> {
    One(&'a str),
    All,
    Spread(usize),
}

/// What `generate` writes beside its grid PNG: the tokens as JSON, the pixels as raw f32.
#[derive(Debug, Clone, Copy, Default)]
pub struct Outputs<'a> {
    pub tokens: Option<&'a Path>,
    pub pixels: Option<&'a Path>,
}

impl Outputs<'_> {
    fn write(&self, proposal: &str, opts: &SamplingOptions, samples: Vec<Value>, pixels: &[f32]) -> Result<()> {
        if let Some(p) = self.tokens {
            std::fs::write(p, serde_json::to_string(&json!({"proposal": proposal, "options": opts, "samples": samples}))?).with_context(|| format!("writing {}", p.display()))?;
        }
        if let Some(p) = self.pixels {
            let bytes: Vec<u8> = pixels.iter().flat_map(|v| v.to_le_bytes()).collect();
            std::fs::write(p, bytes).with_context(|| format!("writing {}", p.display()))?;
        }
        Ok(())
    }
}

#[allow(clippy::too_many_arguments)]
pub fn generate_grid(dir: &Path, proposal: &str, class: Option<&str>, prompts: &[String], max_classes: Option<usize>, count: usize, a: &SampleArgs, out: &Path, outputs: Outputs, device: &Device) -> Result<()> {
    let b = Bundle::load_dir(dir, device)?;
    match (&b.manifest.text, class) {
        (Some(_), Some(_)) => bail!("{} is a text-to-image bundle: give --prompt, not --class", dir.display()),
        (None, _) if !prompts.is_empty() => bail!("{} is class-conditional: give --class, not --prompt", dir.display()),
        (Some(t), None) => {
            // no prompt given: the bundle's example prompts, at most 8 spread over them
            let chosen: Vec<String> = if prompts.is_empty() { spread(t.examples.len(), 8.min(t.examples.len())).into_iter().filter_map(|i| t.examples.get(i).cloned()).collect() } else { prompts.to_vec() };
            generate_prompt_grid(&b, proposal, &chosen, count, a, out, outputs, device)
        }
        (None, _) => {
            let which = match (class, max_classes) {
                (Some(c), _) => GridClasses::One(c),
                (None, Some(n)) => GridClasses::Spread(n),
                (None, None) => GridClasses::All,
            };
            generate_grid_of(dir, proposal, which, count, a, out, outputs, device)
        }
    }
}

/// One row per prompt: `count` images each (text-to-image bundles).
#[allow(clippy::too_many_arguments)]
pub fn generate_prompt_grid(b: &Bundle, proposal: &str, prompts: &[String], count: usize, a: &SampleArgs, out: &Path, outputs: Outputs, device: &Device) -> Result<()> {
    if prompts.is_empty() {
        bail!("no prompt to generate from (the bundle lists no example prompts: give --prompt)");
    }
    let opts = sampling(&b.defaults(proposal)?, a);
    let t0 = Instant::now();
    let (mut all_pixels, mut all_tokens) = (Vec::new(), Vec::new());
    for prompt in prompts {
        let (p, report) = encode_prompt(b, prompt)?;
        for w in prompt_warnings(prompt, &report) {
            eprintln!("warning: {w}");
        }
        let (tokens, pixels) = sample_request(b, proposal, Request { class: 0, count, options: opts.clone(), prompt: Some(p) }, device)?;
        all_pixels.extend(pixels);
        all_tokens.push(json!({"prompt": prompt, "ids": report.ids, "unknown": report.unknown, "unseen": report.unseen, "truncated": report.truncated, "tokens": tokens}));
    }
    let n = prompts.len() * count;
    write_grid(&all_pixels, manifest_shape(&b.manifest), n, count, out)?;
    eprintln!("{n} images for {} prompt(s) in {:.2}s -> {}", prompts.len(), t0.elapsed().as_secs_f64(), out.display());
    outputs.write(proposal, &opts, all_tokens, &all_pixels)
}

#[allow(clippy::too_many_arguments)]
pub fn generate_grid_of(dir: &Path, proposal: &str, which: GridClasses, count: usize, a: &SampleArgs, out: &Path, outputs: Outputs, device: &Device) -> Result<()> {
    let b = Bundle::load_dir(dir, device)?;
    let opts = sampling(&b.defaults(proposal)?, a);
    let total = b.manifest.dataset.classes.len();
    let classes: Vec<usize> = match which {
        GridClasses::One(c) => vec![class_index(&b.manifest, c)?],
        GridClasses::Spread(n) if n > 0 && n < total => spread(total, n),
        _ => (0..total).collect(),
    };
    let mut all_pixels = Vec::new();
    let mut all_tokens = Vec::new();
    let t0 = Instant::now();
    for &c in &classes {
        let (tokens, pixels) = sample(&b, proposal, c, count, &opts, device)?;
        all_pixels.extend(pixels);
        all_tokens.push(json!({"class": c, "name": b.manifest.dataset.classes[c], "tokens": tokens}));
    }
    let n = classes.len() * count;
    write_grid(&all_pixels, manifest_shape(&b.manifest), n, count, out)?;
    eprintln!("{} images in {:.2}s -> {}", n, t0.elapsed().as_secs_f64(), out.display());
    outputs.write(proposal, &opts, all_tokens, &all_pixels)
}

/// `n` of `total` indices spread evenly, first and last included (for n >= 2).
pub fn spread(total: usize, n: usize) -> Vec<usize> {
    if n <= 1 || total <= 1 {
        return vec![0];
    }
    (0..n).map(|i| i * (total - 1) / (n - 1)).collect()
}

/// The evaluator's card (`models/evaluator/evaluator.json`): a CNN classifier trained apart from
/// every teacher and tokenizer — and apart from the classifier behind VQGAN's perceptual loss, so
/// a tokenizer cannot have been optimised against the network that scores it. Frozen and shipped.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct EvaluatorCard {
    pub format: String,
    pub name: String,
    pub config: ClassifierConfig,
    pub file: FileEntry,
    pub test_accuracy: f64,
    pub provenance: Provenance,
    /// The data it was trained on (cards written before this field: Fashion-MNIST).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<DataInfo>,
}

pub(crate) const EVALUATOR_FORMAT: &str = "tessera-evaluator";

pub struct Evaluator {
    pub card: EvaluatorCard,
    pub model: Classifier,
}

/// Loads `dir/evaluator.json` and its weights (size and checksum checked first).
pub fn load_evaluator(dir: &Path, device: &Device) -> Result<Evaluator> {
    let json_path = dir.join("evaluator.json");
    let text = std::fs::read_to_string(&json_path).with_context(|| format!("reading {} (export one with `tessera-train export-evaluator`)", json_path.display()))?;
    let card: EvaluatorCard = serde_json::from_str(&text).with_context(|| format!("parsing {}", json_path.display()))?;
    if card.format != EVALUATOR_FORMAT {
        bail!("{} is not an evaluator card (format '{}')", json_path.display(), card.format);
    }
    let f = &card.file;
    f.validate()?;
    let bytes = std::fs::read(dir.join(&f.path))?;
    f.verify(&bytes).with_context(|| format!("checking {} against {}", f.path, json_path.display()))?;
    let model = load_module(card.config.init(device)?, from_safetensors(&f.path, &bytes)?, &f.path, device, false)?;
    Ok(Evaluator { card, model })
}

impl Evaluator {
    /// The evaluator must have been trained on the data it scores (same classes and channels).
    pub fn check(&self, data: &DataInfo) -> Result<()> {
        let (name, classes) = match &self.card.data {
            Some(d) => (d.name.clone(), d.classes.clone()),
            None => ("fashion-mnist".to_string(), data::fmnist::CLASSES.iter().map(|s| s.to_string()).collect()),
        };
        if name != data.name || classes != data.classes || self.card.config.in_channels != data.shape.channels {
            bail!(
                "the evaluator '{}' was trained on {name} ({} classes, {} channels), not on {} ({} classes, {} channels): train one with `train --stage evaluator --data ...`",
                self.card.name, classes.len(), self.card.config.in_channels, data.name, data.classes.len(), data.shape.channels
            );
        }
        Ok(())
    }
}

/// Image shape of a bundle.
pub fn manifest_shape(m: &Manifest) -> Shape {
    Shape { size: m.dataset.image_size, channels: m.dataset.channels }
}

/// The data a bundle's figures are measured on: `--data`, else the data set the bundle names.
fn bundle_data(m: &Manifest, data: Option<&DataSpec>) -> Result<DataSpec> {
    match data {
        Some(d) => Ok(d.clone()),
        None => m.dataset.name.parse().map_err(|_| anyhow::anyhow!("bundle '{}' was trained on '{}': say where its images are with --data", m.name, m.dataset.name)),
    }
}

/// Accuracy of a classifier on the test split.
pub(crate) fn test_accuracy(model: &Classifier, spec: &DataSpec, shape: Shape, device: &Device) -> Result<f64> {
    let test = data::load(spec, Split::Test, Some(shape))?;
    let mut correct = 0;
    for start in (0..test.len()).step_by(500) {
        let idx: Vec<usize> = (start..(start + 500).min(test.len())).collect();
        let (x, y) = test.batch(&idx);
        let xt = images_tensor(x, idx.len(), shape, device);
        let (_, probs) = evaluator_outputs(model, xt);
        correct += argmax_chunks(&probs, probs.len() / idx.len()).iter().zip(&y).filter(|(p, t)| **p as i64 == **t).count();
    }
    Ok(correct as f64 / test.len() as f64)
}

/// The evaluator's view of a batch: penultimate features (`FID_eval`) and class probabilities
/// (`IS_eval`, class consistency), as host vectors.
fn evaluator_outputs(ev: &Classifier, x: Tensor<4>) -> (Vec<f32>, Vec<f32>) {
    let features = ev.features(x);
    let probs = burn::tensor::activation::softmax(ev.logits(features.clone()), 1).into_data().convert::<f32>().try_to_vec::<f32>().expect("floats");
    (features.into_data().convert::<f32>().try_to_vec::<f32>().expect("floats"), probs)
}

fn argmax_chunks(probs: &[f32], k: usize) -> Vec<usize> {
    probs.chunks(k).map(|r| r.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(i, _)| i)).collect()
}

/// Perplexity of a proposal network on the test tokens: `exp(mean cross-entropy)`. AR: next-token
/// prediction over the whole sequence after the class token. NAR: the masked tokens under MaskGIT's
/// training masks (cosine-schedule ratio; fixed seed, so every bundle sees the same masks).
fn proposal_ppl(p: &Proposal, spec: &ProposalSpec, tokens: &[u32], cond: &dyn Fn(std::ops::Range<usize>) -> Result<Condition>, n: usize, per: usize, device: &Device) -> Result<f64> {
    let (mut nll, mut count) = (0f64, 0f64);
    let mut rng = tessera::rng::Rng::new(0x9E11, 0);
    for start in (0..n).step_by(250) {
        let b = (n - start).min(250);
        let toks: Vec<i64> = tokens[start * per..(start + b) * per].iter().map(|&t| t as i64).collect();
        let t = Tensor::<2, Int>::from_data(TensorData::new(toks, [b, per]), device);
        let c = cond(start..start + b)?;
        let (loss, weight) = match (p, spec) {
            (Proposal::Ar(g), _) => (g.loss_with(&c, t)?, (b * per) as f64),
            (Proposal::Nar(m), ProposalSpec::Nar(cfg)) => {
                let mut mask = Vec::with_capacity(b * per);
                for _ in 0..b {
                    let k = tessera::proposal::maskgit::training_mask_count(rng.uniform(), per);
                    mask.extend(crate::train::random_mask(&mut rng, per, k));
                }
                let masked = mask.iter().filter(|&&v| v).count() as f64;
                (m.loss_with(&c, t, Tensor::from_data(TensorData::new(mask, [b, per]), device), cfg.mask_token())?, masked)
            }
            _ => bail!("proposal network and manifest entry disagree on AR vs NAR"),
        };
        nll += loss.into_scalar::<f64>() * weight;
        count += weight;
    }
    Ok((nll / count).exp())
}

/// A metric that may be undefined (NaN, written as JSON `null` and read back as NaN).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct Metric(pub f64);

impl serde::Serialize for Metric {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        if self.0.is_finite() { s.serialize_f64(self.0) } else { s.serialize_none() }
    }
}

impl<'de> serde::Deserialize<'de> for Metric {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(Metric(<Option<f64> as serde::Deserialize>::deserialize(d)?.unwrap_or(f64::NAN)))
    }
}

fn nan() -> Metric {
    Metric(f64::NAN)
}

/// The evaluator a report was scored with.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct EvaluatorRef {
    pub name: String,
    pub sha256: String,
    pub test_accuracy: f64,
    pub feature_dim: usize,
}

/// One proposal network's figures in an [`EvalReport`].
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct ProposalReport {
    /// Perplexity on the test set's tokens.
    pub ppl: Metric,
    pub fid_eval: Metric,
    /// FID on EfficientNet-Lite2 features (`fid_lite.rs`; null when its weights are missing).
    #[serde(default = "nan")]
    pub fid_lite2: Metric,
    pub is_eval: Metric,
    /// Share of samples the evaluator assigns to the requested class, over all classes.
    pub class_consistency_mean: Metric,
    pub class_consistency: BTreeMap<String, Metric>,
    pub samples: usize,
    /// Text to image: mean CLIPScore_tiny (the in-project tiny CLIP, not OpenAI's) of the samples
    /// with their own caption, and with a caption of another class (null when not measured).
    #[serde(default = "nan")]
    pub clip_score: Metric,
    #[serde(default = "nan")]
    pub clip_score_mismatched: Metric,
    pub sampling: SamplingOptions,
    pub generation_seconds: f64,
}

fn mean_or_nan(v: &[f64]) -> f64 {
    if v.is_empty() { f64::NAN } else { v.iter().sum::<f64>() / v.len() as f64 }
}

/// What `eval` measures of a bundle (`eval.json`); the table reads it back as this type.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct EvalReport {
    pub bundle: String,
    pub tokenizer: TokenizerKind,
    pub evaluator: EvaluatorRef,
    pub notes: String,
    pub test_images: usize,
    pub reconstruction_mse_01: Metric,
    pub reconstruction_psnr_db: Metric,
    pub rfid_eval: Metric,
    /// rFID and the real-image floor on EfficientNet-Lite2 features (null when not measured).
    #[serde(default = "nan")]
    pub rfid_lite2: Metric,
    #[serde(default = "nan")]
    pub fid_lite2_real_floor: Metric,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fid_lite2_network: Option<String>,
    pub codebook_size: usize,
    pub codebook_usage: Metric,
    pub code_entropy_bits: Metric,
    pub code_entropy_max_bits: Metric,
    pub code_purity: Metric,
    pub code_majority_class: Vec<Option<usize>>,
    pub evaluator_test_accuracy: Metric,
    pub is_eval_test_images: Metric,
    pub fid_eval_real_floor: Metric,
    pub samples_per_class: usize,
    pub proposals: BTreeMap<String, ProposalReport>,
    /// Training and evaluation time of the run (written by `table`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timing: Option<serde_json::Value>,
    /// The tiny CLIP behind `clip_score` (name, sha256, its own test figures), when used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip_scorer: Option<serde_json::Value>,
}

/// `eval`: evaluates a bundle, prints the JSON and writes it to `out`.
#[allow(clippy::too_many_arguments)]
pub fn evaluate(dir: &Path, evaluator: &Path, data: Option<&DataSpec>, per_class: usize, a: &SampleArgs, out: Option<&Path>, recon_png: Option<&Path>, clip: Option<&Path>, device: &Device) -> Result<()> {
    let result = evaluate_bundle(dir, evaluator, data, per_class, None, a, recon_png, clip, device)?;
    println!("{}", serde_json::to_string_pretty(&result)?);
    if let Some(p) = out {
        std::fs::write(p, serde_json::to_string_pretty(&result)? + "\n")?;
    }
    Ok(())
}

/// Every metric of one bundle (see `metrics.rs`): reconstruction and codebook statistics on the
/// test set (its first `test_limit` images when given), PPL of each proposal network on the test
/// tokens, FID_eval / IS_eval / class consistency of `per_class` samples per class. A
/// text-to-image bundle is conditioned on held-out captions instead: the test split's emoji (never
/// trained on) with their captions; PPL with each test image's first caption, samples `PER_PROMPT`
/// per caption, cycling over the captions of the class's test images, and class consistency
/// against the class of the image the caption describes.
#[allow(clippy::too_many_arguments)]
pub fn evaluate_bundle(dir: &Path, evaluator: &Path, data: Option<&DataSpec>, per_class: usize, test_limit: Option<usize>, a: &SampleArgs, recon_png: Option<&Path>, clip: Option<&Path>, device: &Device) -> Result<EvalReport> {
    let b = Bundle::load_dir(dir, device)?;
    let clip = match (clip, &b.manifest.text) {
        (Some(c), Some(_)) => Some(crate::clip_score::ClipScorer::load(c, device)?),
        (Some(_), None) => bail!("--clip scores text-to-image bundles; {} is class-conditional", dir.display()),
        (None, _) => None,
    };
    let ev = load_evaluator(evaluator, device)?;
    let evaluator = &ev.model;
    let spec = bundle_data(&b.manifest, data)?;
    let shape = manifest_shape(&b.manifest);
    let mut test = data::load(&spec, Split::Test, Some(shape))?;
    if test.info.classes != b.manifest.dataset.classes {
        bail!("{spec} has other classes ({}) than bundle '{}' ({})", test.info.classes.len(), b.manifest.name, b.manifest.dataset.classes.len());
    }
    ev.check(&test.info)?;
    let lite = crate::fid_lite::LiteFid::load(shape.size, shape.channels, device)?;
    let feature_cache = crate::fid_lite::features_dir();
    let (mut real_l, mut rec_l) = (Vec::new(), Vec::new());
    if let Some(n) = test_limit {
        test = test.truncate(n);
    }
    let k = b.manifest.tokenizer.codebook_size();
    let n_classes = b.manifest.dataset.classes.len();
    let per = b.manifest.tokenizer.tokens_per_image();
    // Test set: reconstruction, code statistics, evaluator features of real and reconstructed images.
    let (mut se, mut counts, mut correct) = (0f64, vec![0u64; k], 0usize);
    let mut class_counts = vec![vec![0u64; n_classes]; k]; // code x class of the image it came from
    let (mut real_f, mut real_p, mut rec_f) = (Vec::new(), Vec::new(), Vec::new());
    let (mut all_tokens, mut labels) = (Vec::with_capacity(test.len() * per), Vec::with_capacity(test.len()));
    for start in (0..test.len()).step_by(500) {
        let idx: Vec<usize> = (start..(start + 500).min(test.len())).collect();
        let (x, y) = test.batch(&idx);
        let xt = images_tensor(x.clone(), idx.len(), shape, device);
        let tokens = b.tokenizer.encode(xt.clone());
        for (j, t) in tokens.clone().into_data().convert::<i64>().try_to_vec::<i64>().expect("ints").into_iter().enumerate() {
            counts[t as usize] += 1;
            class_counts[t as usize][y[j / per] as usize] += 1;
            all_tokens.push(t as u32);
        }
        let rec_t = b.tokenizer.decode(tokens);
        if let Some(l) = &lite {
            real_l.extend(l.features_cached(&feature_cache, &x, idx.len(), shape, device)?);
            rec_l.extend(l.features(rec_t.clone())?);
        }
        let rec: Vec<f32> = rec_t.clone().into_data().convert::<f32>().try_to_vec().expect("floats");
        se += rec.iter().zip(&x).map(|(r, o)| ((r - o) as f64 / 2.0).powi(2)).sum::<f64>(); // on the [0, 1] scale
        let (f, p) = evaluator_outputs(evaluator, xt);
        correct += argmax_chunks(&p, n_classes).iter().zip(&y).filter(|(p, t)| **p as i64 == **t).count();
        real_f.extend(f);
        real_p.extend(p);
        rec_f.extend(evaluator_outputs(evaluator, rec_t).0);
        labels.extend(y);
        if start == 0 && idx.len() >= 16 {
            if let Some(p) = recon_png {
                let mut both = x[..16 * shape.pixels()].to_vec();
                both.extend_from_slice(&rec[..16 * shape.pixels()]);
                write_grid(&both, shape, 32, 16, p)?;
            }
        }
    }
    let d = real_f.len() / test.len();
    let mse = se / (test.len() * shape.pixels()) as f64;
    let psnr = 10.0 * (1.0 / mse).log10();
    let accuracy = correct as f64 / test.len() as f64;
    let rfid = metrics::fid(&real_f, &rec_f, d);
    // The floor of FID_eval at the sample count used below: real training images vs the test set.
    let n_samples = per_class * n_classes;
    let train = data::load(&spec, Split::Train, Some(shape))?;
    let (mut floor_f, mut floor_l) = (Vec::new(), Vec::new());
    for start in (0..n_samples.min(train.len())).step_by(500) {
        let idx: Vec<usize> = (start..(start + 500).min(n_samples).min(train.len())).map(|i| i * (train.len() / n_samples.max(1)).max(1)).collect();
        let (x, _) = train.batch(&idx);
        if let Some(l) = &lite {
            floor_l.extend(l.features_cached(&feature_cache, &x, idx.len(), shape, device)?);
        }
        let xt = images_tensor(x, idx.len(), shape, device);
        floor_f.extend(evaluator_outputs(evaluator, xt).0);
    }
    let fid_floor = metrics::fid(&floor_f, &real_f, d);
    let lite_fid = |a: &[f32], b: &[f32]| if lite.is_some() && !a.is_empty() { crate::fid_lite::fid(a, b) } else { f64::NAN };
    // Every proposal network: PPL on the test tokens, then class-balanced samples.
    let text = b.manifest.text.as_ref();
    if text.is_some() && test.texts.is_empty() {
        bail!("{spec} has no captions: a text-to-image bundle is evaluated on held-out captions");
    }
    // held-out captions by class: (test image, caption), every phrasing of every test emoji
    let mut captions_of: Vec<Vec<String>> = vec![Vec::new(); n_classes];
    if text.is_some() {
        for i in 0..test.len() {
            captions_of[test.labels[i] as usize].extend(test.captions(i).map(str::to_string));
        }
    }
    let first_captions: Vec<String> = if text.is_some() { (0..test.len()).map(|i| test.captions(i).next().unwrap_or("").to_string()).collect() } else { vec![] };
    let condition = |range: std::ops::Range<usize>| -> Result<Condition> {
        match text {
            None => Ok(Condition::Class(Tensor::from_data(TensorData::new(labels[range.clone()].to_vec(), [range.len()]), device))),
            Some(t) => {
                let prompts: Vec<tessera::sampling::Prompt> = first_captions[range].iter().map(|c| encode_prompt(&b, c).map(|p| p.0.prompt)).collect::<Result<_>>()?;
                let rows: Vec<(&[u32], Option<&[f32]>)> = prompts.iter().map(|p| (p.ids.as_slice(), p.states.as_deref())).collect();
                Ok(Condition::Text(TextInput::padded(&rows, t.n_ctx, t.config().given_width(), device)?))
            }
        }
    };
    let mut proposals = BTreeMap::new();
    for name in b.manifest.proposals.keys() {
        let ppl = proposal_ppl(&b.proposals[name], &b.manifest.proposals[name].model, &all_tokens, &condition, labels.len(), per, device)?;
        let opts = sampling(&b.defaults(name)?, a);
        let mut per_class_ok = BTreeMap::new();
        let t0 = Instant::now();
        let (mut total_ok, mut total, mut feats, mut probs, mut lite_f) = (0, 0, Vec::new(), Vec::new(), Vec::new());
        let (mut clip_matched, mut clip_mismatched) = (Vec::<f64>::new(), Vec::<f64>::new());
        eprintln!("{name}: PPL {ppl:.2}; sampling {per_class} images per class{}", if text.is_some() { " from held-out captions" } else { "" });
        for c in 0..n_classes {
            if text.is_some() && captions_of[c].is_empty() {
                eprintln!("  {:<12} no test emoji: not sampled", b.manifest.dataset.classes[c]);
                per_class_ok.insert(b.manifest.dataset.classes[c].clone(), f64::NAN);
                continue;
            }
            let mut ok = 0;
            let mut done = 0;
            while done < per_class {
                let o = SamplingOptions { seed: opts.seed.wrapping_add((c * 1000 + done) as u64), ..opts.clone() };
                let (n, pixels) = match text {
                    None => {
                        let n = (per_class - done).min(50);
                        (n, sample(&b, name, c, n, &o, device)?.1)
                    }
                    Some(_) => {
                        let n = (per_class - done).min(PER_PROMPT);
                        let caption = &captions_of[c][(done / PER_PROMPT) % captions_of[c].len()];
                        let (p, _) = encode_prompt(&b, caption)?;
                        let px = sample_request(&b, name, Request { class: c, count: n, options: o, prompt: Some(p) }, device)?.1;
                        if let Some(s) = &clip {
                            // the samples against their own caption, and against a caption of the next class that has one
                            let other = (1..n_classes).map(|k| (c + k) % n_classes).find(|&k| !captions_of[k].is_empty()).unwrap_or(c);
                            let wrong = &captions_of[other][(done / PER_PROMPT) % captions_of[other].len()];
                            let xt = images_tensor(px.clone(), n, shape, device);
                            clip_matched.extend(s.scores(xt.clone(), &vec![caption.as_str(); n], device)?);
                            clip_mismatched.extend(s.scores(xt, &vec![wrong.as_str(); n], device)?);
                        }
                        (n, px)
                    }
                };
                let xt = images_tensor(pixels, n, shape, device);
                if let Some(l) = &lite {
                    lite_f.extend(l.features(xt.clone())?);
                }
                let (f, p) = evaluator_outputs(evaluator, xt);
                ok += argmax_chunks(&p, n_classes).iter().filter(|&&p| p == c).count();
                feats.extend(f);
                probs.extend(p);
                done += n;
            }
            total_ok += ok;
            total += per_class;
            per_class_ok.insert(b.manifest.dataset.classes[c].clone(), ok as f64 / per_class as f64);
            eprintln!("  {:<12} {:.1}%", b.manifest.dataset.classes[c], 100.0 * ok as f64 / per_class as f64);
        }
        proposals.insert(name.clone(), ProposalReport {
            ppl: Metric(ppl),
            fid_eval: Metric(metrics::fid(&feats, &real_f, d)),
            fid_lite2: Metric(lite_fid(&lite_f, &real_l)),
            is_eval: Metric(metrics::inception_score(&probs, n_classes)),
            class_consistency_mean: Metric(total_ok as f64 / total as f64),
            class_consistency: per_class_ok.into_iter().map(|(k, v)| (k, Metric(v))).collect(),
            samples: total,
            clip_score: Metric(mean_or_nan(&clip_matched)),
            clip_score_mismatched: Metric(mean_or_nan(&clip_mismatched)),
            sampling: opts,
            generation_seconds: t0.elapsed().as_secs_f64(),
        });
    }
    let result = EvalReport {
        bundle: b.manifest.name.clone(),
        tokenizer: b.manifest.tokenizer.kind(),
        evaluator: EvaluatorRef { name: ev.card.name.clone(), sha256: ev.card.file.sha256.clone(), test_accuracy: ev.card.test_accuracy, feature_dim: d },
        notes: "FID_eval / IS_eval / rFID_eval use the in-project evaluator's penultimate features and class probabilities \
                (not Inception); FID_eval compares the samples with the test images. fid_eval_real_floor: the same \
                number of real training images vs the test images (the floor at this sample count)."
            .to_string()
            + if text.is_some() {
                " Text to image: every sample is conditioned on a held-out caption (the captions of the test split's emoji, \
                 which no network was trained on; all phrasings, 10 samples each); class consistency = the evaluator's class \
                 equals the class of the emoji the caption describes; PPL uses each test image's first caption."
            } else {
                ""
            },
        test_images: test.len(),
        reconstruction_mse_01: Metric(mse),
        reconstruction_psnr_db: Metric(psnr),
        rfid_eval: Metric(rfid),
        rfid_lite2: Metric(lite_fid(&rec_l, &real_l)),
        fid_lite2_real_floor: Metric(lite_fid(&floor_l, &real_l)),
        fid_lite2_network: lite.as_ref().map(|_| crate::fid_lite::NAME.to_string()),
        codebook_size: k,
        codebook_usage: Metric(metrics::usage(&counts)),
        code_entropy_bits: Metric(metrics::code_entropy(&counts)),
        code_entropy_max_bits: Metric((k as f64).log2()),
        code_purity: Metric(metrics::code_purity(&class_counts)),
        code_majority_class: metrics::majority_class(&class_counts),
        evaluator_test_accuracy: Metric(accuracy),
        is_eval_test_images: Metric(metrics::inception_score(&real_p, n_classes)),
        fid_eval_real_floor: Metric(fid_floor),
        samples_per_class: per_class,
        proposals,
        timing: None,
        clip_scorer: clip.as_ref().map(|s| {
            let c = &s.card;
            json!({"name": c.name, "sha256": c.file.sha256, "retrieval_r1": c.retrieval_r1, "retrieval_chance": c.retrieval_chance,
                   "score_matched_test": c.score_matched_test, "score_mismatched_test": c.score_mismatched_test})
        }),
    };
    Ok(result)
}

#[cfg(test)]
mod tests {
    #[test]
    fn spread_picks_evenly_with_both_ends() {
        let s = super::spread(95, 20);
        assert_eq!((s.len(), s[0], s[19]), (20, 0, 94));
        assert!(s.windows(2).all(|w| w[0] < w[1]), "{s:?}");
        assert_eq!(super::spread(10, 2), vec![0, 9]);
        assert_eq!(super::spread(10, 1), vec![0]);
    }
}
