//! The model bundle: `manifest.json` (`manifest.rs`) beside safetensors weights (`weights.rs`). The
//! same loader runs natively (files) and in the browser (fetched bytes); every failure is a
//! [`BundleError`]: sizes, checksums, configs, names and shapes are checked before a tensor is built.
pub mod fixture;
pub mod fuzz_entry;
pub mod manifest;
pub mod weights;

pub use crate::proposal::{Proposal, ProposalSpec};
pub use crate::tokenizer::TokenizerSpec;
pub use manifest::{DatasetInfo, FORMAT, FORMAT_VERSION, FORMAT_VERSION_TEXT, FileEntry, Manifest, ProposalEntry, Provenance, TEXT_ENCODER, TEXT_TOKENIZER, TextInfo, sha256_hex};

use crate::error::{BundleError, TesseraError};
use crate::sampling::{Prompt, Prompts};
use crate::proposal::condition::TextEncoderSpec;
use crate::text::minilm::MiniLm;
use crate::text::vocab::TextTokenizer;
use crate::tokenizer::AnyTokenizer;
use burn::prelude::*;
use std::collections::BTreeMap;
use weights::{from_safetensors, load_module};

/// A loaded bundle: the tokenizer and the proposal networks that were asked for, on one device.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub manifest: Manifest,
    pub tokenizer: AnyTokenizer,
    pub proposals: BTreeMap<String, Proposal>,
    /// Text-to-image bundles: the prompt's tokenizer.
    pub text: Option<TextTokenizer>,
    /// Bundles over a pretrained text encoder (all-MiniLM-L6-v2): the encoder, run on each prompt.
    pub text_encoder: Option<MiniLm>,
}

/// The prompt side's files of a text-to-image bundle: its tokenizer (`text_tokenizer`) and, for a
/// pretrained text encoder, that encoder's weights (`text_encoder`).
#[derive(Debug, Clone, Copy)]
pub struct TextFiles<'a> {
    pub tokenizer: &'a [u8],
    pub encoder: Option<&'a [u8]>,
}

/// What a prompt became: ids, and what the model cannot read in it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PromptReport {
    pub ids: Vec<u32>,
    /// Words with characters outside the vocabulary (the unknown token stands in for them).
    pub unknown: Vec<String>,
    /// Words the training captions never contained (tokenised, but the model never saw them).
    pub unseen: Vec<String>,
    /// The prompt was longer than the model's text positions and was cut.
    pub truncated: bool,
}

impl Bundle {
    /// Builds the models from verified bytes of the `tokenizer` file and of the named proposal files
    /// (any subset of the manifest's proposals: the browser fetches only what it needs).
    /// `text`: the prompt side's files, required by (and only by) text-to-image bundles.
    pub fn from_bytes(manifest: Manifest, tokenizer: &[u8], proposals: &[(&str, &[u8])], text: Option<TextFiles>, device: &Device) -> Result<Self, BundleError> {
        manifest.validate()?;
        let (text, text_encoder) = match (&manifest.text, text) {
            (Some(info), Some(files)) => {
                manifest.verify(TEXT_TOKENIZER, files.tokenizer)?;
                let t = TextTokenizer::from_json(&manifest.file(TEXT_TOKENIZER)?.path, files.tokenizer, info.n_ctx)?;
                let vocab = match (&info.encoder, &info.encoder_model) {
                    (TextEncoderSpec::Learned { vocab_size, .. }, _) => *vocab_size,
                    (TextEncoderSpec::Pretrained { .. }, Some(m)) => m.vocab_size,
                    (TextEncoderSpec::Pretrained { .. }, None) => return Err(BundleError::Invalid("a pretrained text encoder without its sizes".into())),
                };
                if t.vocab_size() != vocab {
                    return Err(BundleError::Invalid(format!("the text tokenizer has {} tokens, the text encoder {vocab}", t.vocab_size())));
                }
                let encoder = match (&info.encoder_model, files.encoder) {
                    (Some(cfg), Some(bytes)) => {
                        manifest.verify(TEXT_ENCODER, bytes)?;
                        let file = &manifest.file(TEXT_ENCODER)?.path;
                        Some(load_module(cfg.init(device)?, from_safetensors(file, bytes)?, file, device, false)?)
                    }
                    (Some(_), None) => return Err(BundleError::MissingFile(format!("'{TEXT_ENCODER}' (the pretrained text encoder's weights)"))),
                    (None, Some(_)) => return Err(BundleError::Invalid(format!("a '{TEXT_ENCODER}' file was given but this bundle's text encoder is in-project"))),
                    (None, None) => None,
                };
                (Some(t), encoder)
            }
            (Some(_), None) => return Err(BundleError::MissingFile(format!("'{TEXT_TOKENIZER}' (a text-to-image bundle needs its prompt tokenizer)"))),
            (None, Some(_)) => return Err(BundleError::Invalid(format!("a '{TEXT_TOKENIZER}' file was given but the bundle is not text-to-image"))),
            (None, None) => (None, None),
        };
        manifest.verify("tokenizer", tokenizer)?;
        let t_file = &manifest.file("tokenizer")?.path;
        let tok = manifest.tokenizer.load(from_safetensors(t_file, tokenizer)?, t_file, device)?;
        let mut loaded = BTreeMap::new();
        for &(name, bytes) in proposals {
            let entry = manifest.proposals.get(name).ok_or_else(|| BundleError::MissingFile(format!("proposal '{name}' is not in the manifest")))?;
            manifest.verify(name, bytes)?;
            let file = &manifest.file(name)?.path;
            let tensors = from_safetensors(file, bytes)?;
            let p = match entry.model.init(device)? {
                Proposal::Ar(m) => Proposal::Ar(load_module(m, tensors, file, device, false)?),
                Proposal::Nar(m) => Proposal::Nar(load_module(m, tensors, file, device, false)?),
            };
            loaded.insert(name.to_string(), p);
        }
        Ok(Bundle { manifest, tokenizer: tok, proposals: loaded, text, text_encoder })
    }

    /// Encodes `prompt` (and the empty prompt, guidance's unconditional rows) for a text-to-image
    /// bundle, with what the model cannot read in it, and runs a pretrained text encoder on both
    /// (its states). The one path from a prompt to the proposal networks' input, natively and in
    /// the browser (async: WebGPU reads back asynchronously; natively `pollster::block_on`).
    pub async fn encode_prompt(&self, prompt: &str) -> Result<(Prompts, PromptReport), TesseraError> {
        let (mut p, report) = self.prompts(prompt)?;
        if let Some(m) = &self.text_encoder {
            let device = m.devices().into_iter().next().ok_or_else(|| TesseraError::Device("the text encoder has no device".into()))?;
            for q in [&mut p.prompt, &mut p.empty] {
                let ids = Tensor::<2, Int>::from_data(TensorData::new(q.ids.iter().map(|&v| v as i64).collect::<Vec<_>>(), [1, q.ids.len()]), &device);
                let data = m.forward(ids, None)?.into_data_async().await.map_err(|e| TesseraError::Device(format!("{e:?}")))?;
                q.states = Some(data.convert::<f32>().try_into_vec::<f32>().map_err(|e| TesseraError::Device(format!("{e:?}")))?);
            }
        } else if matches!(self.manifest.text.as_ref().map(|t| &t.encoder), Some(TextEncoderSpec::Pretrained { .. })) {
            return Err(TesseraError::InvalidOption("this bundle's pretrained text encoder was not loaded".into()));
        }
        Ok((p, report))
    }

    /// The ids half of `encode_prompt` (a pretrained text encoder's states are left `None`).
    pub fn prompts(&self, prompt: &str) -> Result<(Prompts, PromptReport), TesseraError> {
        let (Some(tok), Some(info)) = (&self.text, &self.manifest.text) else {
            return Err(TesseraError::InvalidOption("this model is class-conditional: it takes a class, not a prompt".into()));
        };
        let e = tok.encode(prompt)?;
        let empty = tok.encode("")?;
        let known: std::collections::HashSet<&str> = info.words.iter().map(String::as_str).collect();
        let mut unseen: Vec<String> = Vec::new();
        for w in crate::text::words(prompt) {
            let lower = w.to_lowercase();
            let reported = e.unknown.iter().any(|u| u.to_lowercase().contains(&lower)) || unseen.iter().any(|u| u.to_lowercase() == lower);
            if !known.contains(lower.as_str()) && !reported {
                unseen.push(w.to_string());
            }
        }
        let report = PromptReport { ids: e.ids.clone(), unknown: e.unknown, unseen, truncated: e.truncated };
        Ok((Prompts { prompt: Prompt { ids: e.ids, states: None }, empty: Prompt { ids: empty.ids, states: None } }, report))
    }

    /// Loads a bundle directory natively, with every proposal network.
    pub fn load_dir(dir: &std::path::Path, device: &Device) -> Result<Self, BundleError> {
        let read = |p: &std::path::Path| std::fs::read(p).map_err(|_| BundleError::MissingFile(p.display().to_string()));
        let json = read(&dir.join("manifest.json"))?;
        let manifest = Manifest::parse(&String::from_utf8_lossy(&json))?;
        let t = read(&dir.join(&manifest.file("tokenizer")?.path))?;
        let mut bytes = Vec::new();
        for name in manifest.proposals.keys() {
            bytes.push((name.clone(), read(&dir.join(&manifest.file(name)?.path))?));
        }
        let refs: Vec<(&str, &[u8])> = bytes.iter().map(|(n, b)| (n.as_str(), b.as_slice())).collect();
        let text = match &manifest.text {
            Some(_) => Some(read(&dir.join(&manifest.file(TEXT_TOKENIZER)?.path))?),
            None => None,
        };
        // a pretrained text encoder's weights are not committed (tens of MB): `tessera-train
        // export-text-encoder` writes them from the pretrained model
        let encoder = match manifest.files.get(TEXT_ENCODER) {
            Some(f) => Some(std::fs::read(dir.join(&f.path)).map_err(|_| {
                BundleError::MissingFile(format!("{} (write it with `tessera-train export-text-encoder --bundle {}`)", dir.join(&f.path).display(), dir.display()))
            })?),
            None => None,
        };
        let files = text.as_deref().map(|tokenizer| TextFiles { tokenizer, encoder: encoder.as_deref() });
        Self::from_bytes(manifest, &t, &refs, files, device)
    }
}
