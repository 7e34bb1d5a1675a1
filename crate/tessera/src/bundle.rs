//! The model bundle: `manifest.json` (format version, configs, class names, token grid, training
//! provenance, sha256 and size of each weights file) beside safetensors weights. The same loader
//! runs natively (files) and in the browser (fetched bytes); every failure is a [`BundleError`].
use crate::error::BundleError;
use crate::gpt::{Gpt, GptConfig};
use crate::sampler::SamplingOptions;
use crate::vq::{VqTokenizer, VqTokenizerConfig};
use crate::weights::{from_safetensors, load_module};
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

pub const FORMAT: &str = "tessera-bundle";
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FileEntry {
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", content = "config", rename_all = "lowercase")]
pub enum TokenizerSpec {
    Vq(VqTokenizerConfig),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", content = "config", rename_all = "lowercase")]
pub enum ProposalSpec {
    Ar(GptConfig),
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
    pub proposal: ProposalSpec,
    /// Token of an empty (background) patch: fills not-yet-sampled positions in previews.
    pub blank_token: u32,
    pub sampling: SamplingOptions,
    /// The classifier that measured class consistency (native evaluation only; the browser
    /// never downloads it).
    #[serde(default)]
    pub classifier: Option<crate::classifier::ClassifierConfig>,
    /// Weights files by role: `tokenizer`, `proposal` (required), `classifier` (optional, native eval).
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
        let TokenizerSpec::Vq(t) = &self.tokenizer;
        let ProposalSpec::Ar(p) = &self.proposal;
        if self.grid != [t.grid, t.grid] {
            return bad(format!("grid {:?} does not match the tokenizer grid {}", self.grid, t.grid));
        }
        if p.vocab_size != t.codebook_size {
            return bad(format!("proposal vocabulary {} != codebook size {}", p.vocab_size, t.codebook_size));
        }
        if p.block_size != t.tokens_per_image() {
            return bad(format!("proposal block size {} != tokens per image {}", p.block_size, t.tokens_per_image()));
        }
        if p.num_classes != self.dataset.classes.len() {
            return bad(format!("proposal has {} classes, dataset lists {}", p.num_classes, self.dataset.classes.len()));
        }
        if p.n_head == 0 || p.n_embd % p.n_head != 0 {
            return bad(format!("n_embd {} is not divisible by n_head {}", p.n_embd, p.n_head));
        }
        if self.blank_token as usize >= t.codebook_size {
            return bad(format!("blank token {} outside the codebook", self.blank_token));
        }
        for role in ["tokenizer", "proposal"] {
            if !self.files.contains_key(role) {
                return bad(format!("no '{role}' file listed"));
            }
        }
        for f in self.files.values() {
            if f.path.contains("..") || f.path.starts_with('/') || f.sha256.len() != 64 {
                return bad(format!("bad file entry {:?}", f));
            }
        }
        self.sampling.validate(p.vocab_size).map_err(|e| BundleError::Invalid(format!("sampling defaults: {e}")))?;
        Ok(())
    }

    pub fn file(&self, role: &str) -> Result<&FileEntry, BundleError> {
        self.files.get(role).ok_or_else(|| BundleError::MissingFile(role.into()))
    }

    /// Checks size, then checksum, of a weights file's bytes.
    pub fn verify(&self, role: &str, bytes: &[u8]) -> Result<(), BundleError> {
        let f = self.file(role)?;
        if bytes.len() as u64 != f.bytes {
            return Err(BundleError::Truncated { file: f.path.clone(), expected: f.bytes, actual: bytes.len() as u64 });
        }
        let actual = sha256_hex(bytes);
        if actual != f.sha256 {
            return Err(BundleError::ChecksumMismatch { file: f.path.clone(), expected: f.sha256.clone(), actual });
        }
        Ok(())
    }

    pub fn tokenizer_config(&self) -> &VqTokenizerConfig {
        let TokenizerSpec::Vq(c) = &self.tokenizer;
        c
    }
    pub fn proposal_config(&self) -> &GptConfig {
        let ProposalSpec::Ar(c) = &self.proposal;
        c
    }
}

/// A loaded bundle: the tokenizer and the proposal network on one device.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub manifest: Manifest,
    pub tokenizer: VqTokenizer,
    pub proposal: Gpt,
}

impl Bundle {
    /// Builds the models from verified bytes of the `tokenizer` and `proposal` files.
    pub fn from_bytes(manifest: Manifest, tokenizer: &[u8], proposal: &[u8], device: &Device) -> Result<Self, BundleError> {
        manifest.verify("tokenizer", tokenizer)?;
        manifest.verify("proposal", proposal)?;
        let t_file = &manifest.file("tokenizer")?.path;
        let p_file = &manifest.file("proposal")?.path;
        let tok = load_module(manifest.tokenizer_config().init(device), from_safetensors(t_file, tokenizer)?, t_file, device, false)?;
        let prop = load_module(manifest.proposal_config().init(device), from_safetensors(p_file, proposal)?, p_file, device, false)?;
        Ok(Bundle { manifest, tokenizer: tok, proposal: prop })
    }

    /// Loads a bundle directory natively.
    pub fn load_dir(dir: &std::path::Path, device: &Device) -> Result<Self, BundleError> {
        let read = |p: &std::path::Path| std::fs::read(p).map_err(|_| BundleError::MissingFile(p.display().to_string()));
        let json = read(&dir.join("manifest.json"))?;
        let manifest = Manifest::parse(&String::from_utf8_lossy(&json))?;
        let t = read(&dir.join(&manifest.file("tokenizer")?.path))?;
        let p = read(&dir.join(&manifest.file("proposal")?.path))?;
        Self::from_bytes(manifest, &t, &p, device)
    }
}
