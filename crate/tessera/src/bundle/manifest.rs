//! The bundle's `manifest.json`: format version, configs, class names, token grid, training
//! provenance, and the sha256 and size of each weights file. Parsing validates everything before a
//! single tensor is allocated.
use crate::config::limits;
use crate::error::{BundleError, TesseraError};
use crate::proposal::ProposalSpec;
use crate::proposal::condition::{TextConditionConfig, TextEncoderSpec};
use crate::sampling::sampler::SamplingOptions;
use crate::text::minilm::MiniLmConfig;
use crate::tokenizer::TokenizerSpec;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

pub const FORMAT: &str = "tessera-bundle";
/// File role of a text-to-image bundle's prompt tokenizer (`tokenizer.json`).
pub const TEXT_TOKENIZER: &str = "text_tokenizer";
/// File role of a pretrained text encoder's weights (f16 safetensors), in bundles whose proposal
/// networks read a pretrained encoder's states (all-MiniLM-L6-v2).
pub const TEXT_ENCODER: &str = "text_encoder";
/// Version 2: one tokenizer shared by several proposal networks (v1 had exactly one AR network).
pub const FORMAT_VERSION: u32 = 2;
/// Version 3: text-to-image (a `text` section and a `text_tokenizer` file). Written only for
/// text-conditional bundles, so that a reader that knows version 2 only refuses them clearly.
pub const FORMAT_VERSION_TEXT: u32 = 3;
/// The versions this build reads.
pub const SUPPORTED_VERSIONS: &str = "2 and 3";
/// Most words (and example prompts) a manifest may list, and the longest word.
pub const MAX_WORDS: usize = 50_000;
pub const MAX_EXAMPLES: usize = 1_000;
pub const MAX_WORD_CHARS: usize = 64;

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
    /// Gray level (0..=255) of the background the training images were composited on: what an
    /// empty canvas or a transparent upload becomes (0, black, when absent: Fashion-MNIST).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub background: u8,
    /// Sources and licences of the training images (model cards and the site credit them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credits: Vec<String>,
}

fn is_zero(v: &u8) -> bool {
    *v == 0
}

/// The prompt side of a text-to-image bundle. The prompt's tokenizer is the file `text_tokenizer`
/// (`tokenizer.json`); the text encoder is the proposal networks' (`TextConditionConfig`): learned
/// ones live in the proposal files, a pretrained one is fetched beside the bundle.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TextInfo {
    /// Text positions of a prompt (`[CLS] ... [SEP]`; longer prompts are cut and say so).
    pub n_ctx: usize,
    pub encoder: TextEncoderSpec,
    /// Every word of the training captions (`text::words`), most frequent first: prompt
    /// suggestions, and the words a prompt uses that training never showed (reported, not dropped).
    pub words: Vec<String>,
    /// Example prompts (training captions spread over the classes).
    #[serde(default)]
    pub examples: Vec<String>,
    /// A pretrained text encoder's sizes (its weights: the `text_encoder` file); `None` for the
    /// in-project encoder, whose weights are part of the proposal networks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoder_model: Option<MiniLmConfig>,
}

impl TextInfo {
    pub fn config(&self) -> TextConditionConfig {
        TextConditionConfig { n_ctx: self.n_ctx, encoder: self.encoder.clone() }
    }
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
    /// Text-to-image bundles (format version 3) only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<TextInfo>,
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
        if format != FORMAT || !(FORMAT_VERSION..=FORMAT_VERSION_TEXT).contains(&version) {
            return Err(BundleError::UnsupportedVersion { format, version, expected: FORMAT, supported: SUPPORTED_VERSIONS });
        }
        let m: Manifest = serde_json::from_value(v).map_err(|e| BundleError::BadJson(e.to_string()))?;
        m.validate()?;
        Ok(m)
    }

    /// Internal consistency: every config valid and within the parameter budget (before anything
    /// is allocated), the dataset's image size and channels equal to the tokenizer's, the grid, the
    /// proposal networks' vocabulary, block size and classes equal to what the tokenizer and the
    /// dataset give, every weights file listed with a safe path.
    pub fn validate(&self) -> Result<(), BundleError> {
        let bad = |s: String| Err(BundleError::Invalid(s));
        let t = &self.tokenizer;
        t.validate()?;
        let classes = self.dataset.classes.len();
        if classes == 0 || classes > limits::CLASSES {
            return bad(format!("dataset lists {classes} classes (1..={} allowed)", limits::CLASSES));
        }
        if self.dataset.image_size != t.image_size() {
            return bad(format!("dataset image size {} != the tokenizer's {}", self.dataset.image_size, t.image_size()));
        }
        if t.image_channels() != self.dataset.channels {
            return bad(format!("tokenizer has {} image channels, dataset {}", t.image_channels(), self.dataset.channels));
        }
        if self.grid != [t.grid(), t.grid()] {
            return bad(format!("grid {:?} does not match the tokenizer grid {}", self.grid, t.grid()));
        }
        for (name, p) in &self.proposals {
            p.model.validate()?;
            let c = p.model.config();
            if c.vocab_size != t.codebook_size() {
                return bad(format!("proposal '{name}': vocabulary {} != codebook size {}", c.vocab_size, t.codebook_size()));
            }
            if c.block_size != t.tokens_per_image() {
                return bad(format!("proposal '{name}': block size {} != tokens per image {}", c.block_size, t.tokens_per_image()));
            }
            if c.text.as_ref() != self.text.as_ref().map(TextInfo::config).as_ref() {
                return bad(format!("proposal '{name}': its text condition {:?} differs from the manifest's text section", c.text));
            }
            if c.num_classes != classes {
                return bad(format!("proposal '{name}' has {} classes, dataset lists {classes}", c.num_classes));
            }
            if !self.files.contains_key(name) {
                return bad(format!("no file listed for proposal '{name}'"));
            }
            p.sampling.validate(c.vocab_size).map_err(|e| BundleError::Invalid(format!("proposal '{name}' sampling defaults: {e}")))?;
        }
        if self.blank_token as usize >= t.codebook_size() {
            return bad(format!("blank token {} outside the codebook", self.blank_token));
        }
        if !self.files.contains_key("tokenizer") {
            return bad("no 'tokenizer' file listed".into());
        }
        let version = if self.text.is_some() { FORMAT_VERSION_TEXT } else { FORMAT_VERSION };
        if self.format_version != version {
            return bad(format!("format version {} with{} a text section (expected {version})", self.format_version, if self.text.is_some() { "" } else { "out" }));
        }
        if let Some(t) = &self.text {
            t.config().validate("manifest")?;
            if !self.files.contains_key(TEXT_TOKENIZER) {
                return bad(format!("a text-to-image bundle needs a '{TEXT_TOKENIZER}' file"));
            }
            if t.words.len() > MAX_WORDS || t.examples.len() > MAX_EXAMPLES {
                return bad(format!("{} words and {} examples (at most {MAX_WORDS} and {MAX_EXAMPLES})", t.words.len(), t.examples.len()));
            }
            if let Some(w) = t.words.iter().find(|w| w.is_empty() || w.chars().count() > MAX_WORD_CHARS || crate::text::lower_words(w) != [w.to_string()]) {
                return bad(format!("text word {w:?} is not one normalised word of 1..={MAX_WORD_CHARS} characters"));
            }
            if let Some(e) = t.examples.iter().find(|e| e.chars().count() > crate::text::vocab::MAX_PROMPT_CHARS) {
                return bad(format!("example prompt of {} characters", e.chars().count()));
            }
            // a pretrained encoder: its sizes and weights file, its width the one the networks read
            match (&t.encoder, &t.encoder_model) {
                (TextEncoderSpec::Pretrained { width, .. }, Some(m)) => {
                    m.validate()?;
                    if m.n_embd != *width || t.n_ctx > m.max_positions {
                        return bad(format!("the text encoder's width {} / positions {} do not serve states of width {width} over {} positions", m.n_embd, m.max_positions, t.n_ctx));
                    }
                    if !self.files.contains_key(TEXT_ENCODER) {
                        return bad(format!("a pretrained text encoder needs a '{TEXT_ENCODER}' file"));
                    }
                }
                (TextEncoderSpec::Pretrained { name, .. }, None) => return bad(format!("the pretrained text encoder '{name}' has no sizes (`encoder_model`)")),
                (TextEncoderSpec::Learned { .. }, Some(_)) => return bad("`encoder_model` is only for a pretrained text encoder".into()),
                (TextEncoderSpec::Learned { .. }, None) => {
                    if self.files.contains_key(TEXT_ENCODER) {
                        return bad(format!("a '{TEXT_ENCODER}' file beside the in-project text encoder"));
                    }
                }
            }
        } else if self.files.contains_key(TEXT_TOKENIZER) || self.files.contains_key(TEXT_ENCODER) {
            return bad(format!("a '{TEXT_TOKENIZER}' or '{TEXT_ENCODER}' file without a text section"));
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

