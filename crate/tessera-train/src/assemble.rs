//! Steps between training stages: Cluster's k-means codebook, assembling VQ-KD and Cluster
//! tokenizers from their separately trained parts, and the per-run cache of training-set tokens.
use crate::checkpoint::{Checkpoint, TrainState};
use crate::data::Dataset;
use crate::train::teacher_features;
use anyhow::{Context, Result};
use burn::prelude::*;
use std::path::Path;
use tessera::bundle::sha256_hex;
use tessera::tokenizer::cluster::ClusterConfig;
use tessera::train::kmeans::kmeans_cosine;
use tessera::tokenizer::TokenizerSpec;
use tessera::teacher::Teacher;
use tessera::tokenizer::vqkd::VqKdConfig;
use tessera::bundle::weights::{HostTensor, NamedTensors, from_safetensors, to_safetensors};

fn read_tensors(path: &Path) -> Result<NamedTensors> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(from_safetensors(&path.display().to_string(), &bytes)?)
}

fn prefixed(t: NamedTensors, prefix: &str) -> impl Iterator<Item = (String, HostTensor)> + '_ {
    t.into_iter().map(move |(k, v)| (format!("{prefix}{k}"), v))
}

/// The pixel decoder's tensors under `decoder.`: an MSE-trained decoder is checkpointed bare,
/// one trained with the VQGAN losses inside `FrozenTokenDecoder` (already `decoder.`).
fn decoder_tensors(run: &Path) -> Result<impl Iterator<Item = (String, HostTensor)>> {
    let t = read_tensors(&run.join("decoder/model.safetensors"))?;
    Ok(t.into_iter().map(|(k, v)| (if k.starts_with("decoder.") { k } else { format!("decoder.{k}") }, v)))
}

/// k-means (cosine) on the teacher's patch features of the first `images` training images;
/// cached in `run/codebook.safetensors` so a resumed run reuses it.
pub fn cluster_codebook(run: &Path, teacher: &Teacher, d: usize, data: &Dataset, images: usize, k: usize, seed: u64, device: &Device) -> Result<Vec<f32>> {
    let path = run.join("codebook.safetensors");
    if path.exists() {
        return Ok(read_tensors(&path)?.remove("codebook").context("codebook tensor")?.values);
    }
    let t0 = std::time::Instant::now();
    let feats = teacher_features(teacher, data, images, device);
    eprintln!("cluster: k-means (k = {k}) on {} patch features of {images} images", feats.len() / d);
    let (c, _) = kmeans_cosine(&feats, d, k, 25, seed)?;
    std::fs::create_dir_all(run)?;
    std::fs::write(&path, to_safetensors(&NamedTensors::from([("codebook".to_string(), HostTensor { shape: vec![k, d], values: c.clone() })])))?;
    eprintln!("cluster: k-means took {:.0}s", t0.elapsed().as_secs_f64());
    Ok(c)
}

fn save_tokenizer(run: &Path, spec: &TokenizerSpec, tensors: NamedTensors, parts: &[&str], command: &str, seconds: f64) -> Result<()> {
    // Check the assembled tensors against the model definition before writing.
    let bytes = to_safetensors(&tensors);
    spec.load(from_safetensors("tokenizer", &bytes)?, "tokenizer", &Device::flex()).context("assembled tokenizer does not match its config")?;
    let dir = run.join("tokenizer");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("model.safetensors"), &bytes)?;
    let mut extra = std::collections::BTreeMap::new();
    let mut steps = 0;
    let mut elapsed = 0.0;
    let (mut batch_size, mut seed) = (0, 0);
    for p in parts {
        if let Ok(st) = Checkpoint::new(&run.join(p))?.state() {
            steps += st.step;
            elapsed += st.elapsed_s;
            (batch_size, seed) = (batch_size.max(st.batch_size), st.seed);
            extra.insert(format!("{p}_steps"), st.step.into());
            extra.insert(format!("{p}_final_loss"), st.losses.last().map(|l| l.1).into());
        }
    }
    extra.insert("assembled_from".into(), parts.join("+").into());
    let state = TrainState { stage: "tokenizer".into(), step: steps, steps, batch_size, seed, elapsed_s: elapsed.max(seconds), command: command.into(), config: serde_json::to_value(spec)?, extra, done: true, ..Default::default() };
    std::fs::write(dir.join("state.json"), serde_json::to_string_pretty(&state)?)?;
    Ok(())
}

/// VQ-KD tokenizer = distilled encoder + codebook (run/vqkd) + pixel decoder (run/decoder).
pub fn vqkd(run: &Path, cfg: &VqKdConfig, command: &str, seconds: f64) -> Result<()> {
    let distill = read_tensors(&run.join("vqkd/model.safetensors"))?;
    let mut t: NamedTensors = distill.into_iter().filter(|(k, _)| !k.starts_with("adaptor.")).collect();
    t.extend(decoder_tensors(run)?);
    save_tokenizer(run, &TokenizerSpec::Vqkd(cfg.clone()), t, &["vqkd", "decoder"], command, seconds)
}

/// Cluster tokenizer = teacher as encoder + k-means codebook as quantizer + pixel decoder (run/decoder).
pub fn cluster(run: &Path, teacher_dir: &Path, cfg: &ClusterConfig, codebook: &[f32], command: &str, seconds: f64) -> Result<()> {
    let mut t: NamedTensors = prefixed(read_tensors(&teacher_dir.join("model.safetensors"))?, "encoder.").collect();
    t.insert("quantizer.codebook".into(), HostTensor { shape: vec![cfg.codebook_size, cfg.teacher.feature_dim()], values: codebook.to_vec() });
    t.extend(decoder_tensors(run)?);
    save_tokenizer(run, &TokenizerSpec::Cluster(cfg.clone()), t, &["decoder"], command, seconds)
}

/// Training-set tokens, cached in `run/tokens.u16` keyed by the tokenizer weights' checksum.
pub fn cached_tokens(run: &Path, tokenizer_bytes: &[u8], compute: impl FnOnce() -> Vec<u16>) -> Result<Vec<u16>> {
    let key = sha256_hex(tokenizer_bytes);
    let (data, meta) = (run.join("tokens.u16"), run.join("tokens.sha256"));
    if std::fs::read_to_string(&meta).map(|m| m.trim() == key).unwrap_or(false) {
        if let Ok(b) = std::fs::read(&data) {
            return Ok(b.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect());
        }
    }
    let t0 = std::time::Instant::now();
    let tokens = compute();
    eprintln!("tokenized the training set in {:.0}s", t0.elapsed().as_secs_f64());
    std::fs::write(&data, tokens.iter().flat_map(|t| t.to_le_bytes()).collect::<Vec<u8>>())?;
    std::fs::write(&meta, key)?;
    Ok(tokens)
}
