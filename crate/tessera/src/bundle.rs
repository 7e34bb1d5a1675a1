//! The model bundle: `manifest.json` (format version, configs, class names, token grid, training
//! provenance, sha256 and size of each weights file) beside safetensors weights. The same loader
//! runs natively (files) and in the browser (fetched bytes); every failure is a [`BundleError`].
use crate::error::BundleError;
use crate::error::TesseraError;
use crate::generate::{ArSampling, NarSampling, Request, Sampling};
use crate::gpt::{Gpt, GptConfig};
use crate::maskgit::{MaskGit, MaskGitConfig};
use crate::sampler::SamplingOptions;
pub use crate::tokenizer::TokenizerSpec;
use crate::tokenizer::Tokenizer;
use crate::weights::{from_safetensors, load_module};
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

pub const FORMAT: &str = "tessera-bundle";
/// Version 2: one tokenizer shared by several proposal networks (v1 had exactly one AR network).
pub const FORMAT_VERSION: u32 = 2;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FileEntry {
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

impl FileEntry {
    /// A relative path inside the bundle folder and a well-formed sha256.
    pub fn validate(&self) -> Result<(), BundleError> {
        if self.path.contains("..") || self.path.starts_with('/') || self.sha256.len() != 64 {
            return Err(BundleError::Invalid(format!("bad file entry {self:?}")));
        }
        Ok(())
    }

    /// Checks size, then checksum, of the file's bytes.
    pub fn verify(&self, bytes: &[u8]) -> Result<(), BundleError> {
        if bytes.len() as u64 != self.bytes {
            return Err(BundleError::Truncated { file: self.path.clone(), expected: self.bytes, actual: bytes.len() as u64 });
        }
        let actual = sha256_hex(bytes);
        if actual != self.sha256 {
            return Err(BundleError::ChecksumMismatch { file: self.path.clone(), expected: self.sha256.clone(), actual });
        }
        Ok(())
    }
}

/// A proposal network's kind and configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", content = "config", rename_all = "lowercase")]
pub enum ProposalSpec {
    /// Autoregressive GPT, raster order.
    Ar(GptConfig),
    /// Non-autoregressive MaskGIT.
    Nar(MaskGitConfig),
}

impl ProposalSpec {
    pub fn kind(&self) -> &'static str {
        match self {
            ProposalSpec::Ar(_) => "ar",
            ProposalSpec::Nar(_) => "nar",
        }
    }
    /// (vocab, classes, block size, n_embd, n_head)
    fn dims(&self) -> (usize, usize, usize, usize, usize) {
        match self {
            ProposalSpec::Ar(c) => (c.vocab_size, c.num_classes, c.block_size, c.n_embd, c.n_head),
            ProposalSpec::Nar(c) => (c.vocab_size, c.num_classes, c.block_size, c.n_embd, c.n_head),
        }
    }
    pub fn num_classes(&self) -> usize {
        self.dims().1
    }
    pub fn vocab_size(&self) -> usize {
        self.dims().0
    }
}

/// One proposal network of a bundle and its default sampling options; its weights file has the
/// same role name as its key in `Manifest::proposals`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProposalEntry {
    pub model: ProposalSpec,
    pub sampling: SamplingOptions,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DatasetInfo {
    pub name: String,
    pub image_size: usize,
    pub channels: usize,
    pub classes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Provenance {
    pub command: String,
    pub git_commit: String,
    pub created: String,
    #[serde(default)]
    pub details: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    pub name: String,
    pub dataset: DatasetInfo,
    /// Token grid `[rows, cols]`, raster order.
    pub grid: [usize; 2],
    pub tokenizer: TokenizerSpec,
    /// Proposal networks by name (`ar`, `nar`), all over this tokenizer's codes.
    pub proposals: BTreeMap<String, ProposalEntry>,
    /// Token of an empty (background) patch: fills not-yet-sampled positions in previews.
    pub blank_token: u32,
    /// Weights files by role: `tokenizer` and one per proposal (its key). The evaluator that
    /// scores a bundle is shipped once, beside the bundles (`models/evaluator`), not in each.
    pub files: BTreeMap<String, FileEntry>,
    pub provenance: Provenance,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Manifest {
    /// Parses and validates a manifest (format, version, internal consistency).
    pub fn parse(json: &str) -> Result<Self, BundleError> {
        // Check the version before the rest of the schema, so a future format says so clearly.
        let v: serde_json::Value = serde_json::from_str(json).map_err(|e| BundleError::BadJson(e.to_string()))?;
        let format = v.get("format").and_then(|f| f.as_str()).unwrap_or("").to_string();
        let version = v.get("format_version").and_then(|f| f.as_u64()).unwrap_or(0) as u32;
        if format != FORMAT || version != FORMAT_VERSION {
            return Err(BundleError::UnsupportedVersion { format, version, expected: FORMAT, supported: FORMAT_VERSION });
        }
        let m: Manifest = serde_json::from_value(v).map_err(|e| BundleError::BadJson(e.to_string()))?;
        m.validate()?;
        Ok(m)
    }

    fn validate(&self) -> Result<(), BundleError> {
        let bad = |s: String| Err(BundleError::Invalid(s));
        let t = &self.tokenizer;
        if self.grid != [t.grid(), t.grid()] {
            return bad(format!("grid {:?} does not match the tokenizer grid {}", self.grid, t.grid()));
        }
        if t.image_channels() != self.dataset.channels {
            return bad(format!("tokenizer has {} image channels, dataset {}", t.image_channels(), self.dataset.channels));
        }
        for (name, p) in &self.proposals {
            let (vocab, classes, block, embd, heads) = p.model.dims();
            if vocab != t.codebook_size() {
                return bad(format!("proposal '{name}': vocabulary {vocab} != codebook size {}", t.codebook_size()));
            }
            if block != t.tokens_per_image() {
                return bad(format!("proposal '{name}': block size {block} != tokens per image {}", t.tokens_per_image()));
            }
            if classes != self.dataset.classes.len() {
                return bad(format!("proposal '{name}' has {classes} classes, dataset lists {}", self.dataset.classes.len()));
            }
            if heads == 0 || embd % heads != 0 {
                return bad(format!("proposal '{name}': n_embd {embd} is not divisible by n_head {heads}"));
            }
            if !self.files.contains_key(name) {
                return bad(format!("no file listed for proposal '{name}'"));
            }
            p.sampling.validate(vocab).map_err(|e| BundleError::Invalid(format!("proposal '{name}' sampling defaults: {e}")))?;
        }
        if self.blank_token as usize >= t.codebook_size() {
            return bad(format!("blank token {} outside the codebook", self.blank_token));
        }
        if !self.files.contains_key("tokenizer") {
            return bad("no 'tokenizer' file listed".into());
        }
        for f in self.files.values() {
            f.validate()?;
        }
        Ok(())
    }

    pub fn file(&self, role: &str) -> Result<&FileEntry, BundleError> {
        self.files.get(role).ok_or_else(|| BundleError::MissingFile(role.into()))
    }

    /// Checks size, then checksum, of a weights file's bytes.
    pub fn verify(&self, role: &str, bytes: &[u8]) -> Result<(), BundleError> {
        self.file(role)?.verify(bytes)
    }

    pub fn proposal(&self, name: &str) -> Result<&ProposalEntry, TesseraError> {
        self.proposals.get(name).ok_or_else(|| {
            TesseraError::InvalidOption(format!("no proposal network '{name}' in this bundle (it has: {})", self.proposals.keys().cloned().collect::<Vec<_>>().join(", ")))
        })
    }
}

/// A loaded proposal network.
#[derive(Debug, Clone)]
pub enum Proposal {
    Ar(Gpt),
    Nar(MaskGit),
}

/// A loaded bundle: the tokenizer and the proposal networks that were asked for, on one device.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub manifest: Manifest,
    pub tokenizer: Tokenizer,
    pub proposals: BTreeMap<String, Proposal>,
}

impl Bundle {
    /// Builds the models from verified bytes of the `tokenizer` file and of the named proposal files
    /// (any subset of the manifest's proposals: the browser fetches only what it needs).
    pub fn from_bytes(manifest: Manifest, tokenizer: &[u8], proposals: &[(&str, &[u8])], device: &Device) -> Result<Self, BundleError> {
        manifest.verify("tokenizer", tokenizer)?;
        let t_file = &manifest.file("tokenizer")?.path;
        let tok = manifest.tokenizer.load(from_safetensors(t_file, tokenizer)?, t_file, device)?;
        let mut loaded = BTreeMap::new();
        for &(name, bytes) in proposals {
            let entry = manifest.proposals.get(name).ok_or_else(|| BundleError::MissingFile(format!("proposal '{name}' is not in the manifest")))?;
            manifest.verify(name, bytes)?;
            let file = &manifest.file(name)?.path;
            let tensors = from_safetensors(file, bytes)?;
            let p = match &entry.model {
                ProposalSpec::Ar(c) => Proposal::Ar(load_module(c.init(device), tensors, file, device, false)?),
                ProposalSpec::Nar(c) => Proposal::Nar(load_module(c.init(device), tensors, file, device, false)?),
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

    /// Starts sampling with proposal network `name`. `given` (NAR only) keeps the `Some` tokens of
    /// each grid and resamples the rest (inpainting).
    pub fn sampler(&self, name: &str, req: Request, given: Option<Vec<Vec<Option<u32>>>>, device: &Device) -> Result<Sampling<'_>, TesseraError> {
        let entry = self.manifest.proposal(name)?;
        let model = self.proposals.get(name).ok_or_else(|| TesseraError::InvalidOption(format!("proposal network '{name}' was not loaded")))?;
        match (model, &entry.model) {
            (Proposal::Ar(m), ProposalSpec::Ar(c)) => {
                if given.is_some() {
                    return Err(TesseraError::InvalidOption(format!("'{name}' is autoregressive: inpainting needs a NAR (MaskGIT) proposal network")));
                }
                Ok(Sampling::Ar(ArSampling::new(m, c, req, device)?))
            }
            (Proposal::Nar(m), ProposalSpec::Nar(c)) => Ok(Sampling::Nar(NarSampling::new(m, c, req, given, device)?)),
            _ => Err(TesseraError::InvalidOption(format!("proposal '{name}' does not match its manifest entry"))),
        }
    }

    /// Sampling options: the proposal's defaults, overridden by `f`.
    pub fn defaults(&self, name: &str) -> Result<SamplingOptions, TesseraError> {
        Ok(self.manifest.proposal(name)?.sampling.clone())
    }
}
