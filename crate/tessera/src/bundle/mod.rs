//! The model bundle: `manifest.json` (`manifest.rs`) beside safetensors weights (`weights.rs`). The
//! same loader runs natively (files) and in the browser (fetched bytes); every failure is a
//! [`BundleError`]: sizes, checksums, configs, names and shapes are checked before a tensor is built.
pub mod fuzz_entry;
pub mod manifest;
pub mod weights;

pub use crate::proposal::{Proposal, ProposalSpec};
pub use crate::tokenizer::TokenizerSpec;
pub use manifest::{DatasetInfo, FORMAT, FORMAT_VERSION, FORMAT_VERSION_TEXT, FileEntry, Manifest, ProposalEntry, Provenance, TEXT_TOKENIZER, TextInfo, sha256_hex};

use crate::error::{BundleError, TesseraError};
use crate::sampling::{Prompt, Prompts};
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
    /// `text_tokenizer`: the bytes of the `text_tokenizer` file, required by (and only by)
    /// text-to-image bundles.
    pub fn from_bytes(manifest: Manifest, tokenizer: &[u8], proposals: &[(&str, &[u8])], text_tokenizer: Option<&[u8]>, device: &Device) -> Result<Self, BundleError> {
        manifest.validate()?;
        let text = match (&manifest.text, text_tokenizer) {
            (Some(info), Some(bytes)) => {
                manifest.verify(TEXT_TOKENIZER, bytes)?;
                let t = TextTokenizer::from_json(&manifest.file(TEXT_TOKENIZER)?.path, bytes, info.n_ctx)?;
                if let crate::proposal::condition::TextEncoderSpec::Learned { vocab_size, .. } = info.encoder
                    && t.vocab_size() != vocab_size
                {
                    return Err(BundleError::Invalid(format!("the text tokenizer has {} tokens, the text encoder {vocab_size}", t.vocab_size())));
                }
                Some(t)
            }
            (Some(_), None) => return Err(BundleError::MissingFile(format!("'{TEXT_TOKENIZER}' (a text-to-image bundle needs its prompt tokenizer)"))),
            (None, Some(_)) => return Err(BundleError::Invalid(format!("a '{TEXT_TOKENIZER}' file was given but the bundle is not text-to-image"))),
            (None, None) => None,
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
        Ok(Bundle { manifest, tokenizer: tok, proposals: loaded, text })
    }

    /// Encodes `prompt` (and the empty prompt, guidance's unconditional rows) for a text-to-image
    /// bundle, with what the model cannot read in it. A pretrained text encoder's states are not
    /// computed here (`Prompt::states` is `None`): the caller that runs that encoder fills them.
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
        Self::from_bytes(manifest, &t, &refs, text.as_deref(), device)
    }
}
