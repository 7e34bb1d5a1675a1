//! The model bundle: `manifest.json` (`manifest.rs`) beside safetensors weights (`weights.rs`). The
//! same loader runs natively (files) and in the browser (fetched bytes); every failure is a
//! [`BundleError`]: sizes, checksums, configs, names and shapes are checked before a tensor is built.
pub mod fuzz_entry;
pub mod manifest;
pub mod weights;

pub use crate::proposal::{Proposal, ProposalSpec};
pub use crate::tokenizer::TokenizerSpec;
pub use manifest::{DatasetInfo, FORMAT, FORMAT_VERSION, FileEntry, Manifest, ProposalEntry, Provenance, sha256_hex};

use crate::error::BundleError;
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
}

impl Bundle {
    /// Builds the models from verified bytes of the `tokenizer` file and of the named proposal files
    /// (any subset of the manifest's proposals: the browser fetches only what it needs).
    pub fn from_bytes(manifest: Manifest, tokenizer: &[u8], proposals: &[(&str, &[u8])], device: &Device) -> Result<Self, BundleError> {
        manifest.validate()?;
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
        Ok(Bundle { manifest, tokenizer: tok, proposals: loaded })
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
        Self::from_bytes(manifest, &t, &refs, device)
    }
}
