//! Stage 2: the **proposal network**, which models the tokenizer's code sequences (the paper's
//! Fig. 2, right). Both kinds are transformers of the same size over `[class] + tokens`:
//! AR (`gpt.rs`, a causal GPT with a KV cache, raster order) and NAR (`maskgit.rs`, MaskGIT: a
//! bidirectional transformer that predicts masked tokens). Sampling them is `sampling/`.
pub mod block;
pub mod condition;
pub mod gpt;
pub mod maskgit;

use crate::config::{Check, ConfigError, limits, linear_params};
use burn::prelude::*;
use gpt::Gpt;
use maskgit::MaskGit;
use serde::{Deserialize, Serialize};

/// The size of a proposal network (AR or NAR alike).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProposalConfig {
    /// Codebook size of the tokenizer.
    pub vocab_size: usize,
    pub num_classes: usize,
    /// Tokens per image (grid * grid); the sequence is one longer (the class token).
    pub block_size: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_embd: usize,
    /// Text-to-image: the prompt prefix that replaces the class (absent: class-conditional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<condition::TextConditionConfig>,
}

impl Default for ProposalConfig {
    fn default() -> Self {
        Self { vocab_size: 256, num_classes: 10, block_size: 64, n_layer: 4, n_head: 4, n_embd: 128, text: None }
    }
}

impl ProposalConfig {
    /// An embedding table of `n` rows of width `n_embd`, initialised N(0, 0.02) (nanoGPT's init).
    pub(crate) fn embedding(&self, n: usize, device: &Device) -> burn::nn::Embedding {
        burn::nn::EmbeddingConfig::new(n, self.n_embd).with_initializer(burn::nn::Initializer::Normal { mean: 0.0, std: 0.02 }).init(device)
    }
    /// Index of the null (unconditional) class used for classifier-free guidance.
    pub fn null_class(&self) -> usize {
        self.num_classes
    }
    /// Parameter count (an upper bound over AR and NAR; call after the sizes are checked).
    pub fn params(&self) -> u128 {
        let e = self.n_embd;
        let tables = (self.vocab_size + 1 + self.num_classes + 1 + self.block_size + 1) as u128 * e as u128;
        let text = self.text.as_ref().map_or(0, |t| t.params(e));
        tables + text + self.n_layer as u128 * block::params(e, 4 * e) + 2 * e as u128 + linear_params(e, self.vocab_size)
    }
    /// Sizes bounded, heads dividing the width, within the parameter budget. `model` names the
    /// network in the error (`ar proposal`, `nar proposal`).
    pub fn validate(&self, model: &str) -> Result<(), ConfigError> {
        let c = Check::new(model);
        c.range("vocab_size", self.vocab_size, 2, limits::CODEBOOK)?;
        c.range("num_classes", self.num_classes, 1, limits::CLASSES)?;
        c.range("block_size", self.block_size, 1, limits::BLOCK)?;
        c.range("n_layer", self.n_layer, 1, limits::LAYERS)?;
        c.range("n_embd", self.n_embd, 1, limits::WIDTH)?;
        c.range("n_head", self.n_head, 1, self.n_embd)?;
        c.that(self.n_embd % self.n_head == 0, || format!("n_head {} must divide n_embd {}", self.n_head, self.n_embd))?;
        if let Some(t) = &self.text {
            t.validate(model)?;
        }
        c.params(self.params())?;
        // per image, with guidance (two rows): logits, the MLP, and the attention matrix of a full pass
        let t = self.block_size as u128 + self.text.as_ref().map_or(1, |t| t.n_ctx) as u128;
        let widest = (self.vocab_size as u128).max(4 * self.n_embd as u128).max(self.n_head as u128 * t);
        c.activations(2 * t * widest)
    }
}

/// A proposal network's kind and configuration (the manifest's `proposals.<name>.model`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", content = "config", rename_all = "lowercase")]
pub enum ProposalSpec {
    /// Autoregressive GPT, raster order.
    Ar(ProposalConfig),
    /// Non-autoregressive MaskGIT.
    Nar(ProposalConfig),
}

impl ProposalSpec {
    pub fn kind(&self) -> &'static str {
        match self {
            ProposalSpec::Ar(_) => "ar",
            ProposalSpec::Nar(_) => "nar",
        }
    }
    pub fn config(&self) -> &ProposalConfig {
        match self {
            ProposalSpec::Ar(c) | ProposalSpec::Nar(c) => c,
        }
    }
    pub fn num_classes(&self) -> usize {
        self.config().num_classes
    }
    pub fn vocab_size(&self) -> usize {
        self.config().vocab_size
    }
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.config().validate(&format!("{} proposal", self.kind()))
    }
    /// The network with random weights.
    pub fn init(&self, device: &Device) -> Result<Proposal, ConfigError> {
        Ok(match self {
            ProposalSpec::Ar(c) => Proposal::Ar(c.init_gpt(device)?),
            ProposalSpec::Nar(c) => Proposal::Nar(c.init_maskgit(device)?),
        })
    }
}

/// A loaded proposal network.
#[derive(Debug, Clone)]
pub enum Proposal {
    Ar(Gpt),
    Nar(MaskGit),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_sizes_are_config_errors() {
        let ok = ProposalConfig::default();
        assert!(ok.validate("ar proposal").is_ok());
        for bad in [
            ProposalConfig { n_head: 0, ..ok.clone() },
            ProposalConfig { n_head: 3, n_embd: 32, ..ok.clone() },
            ProposalConfig { n_layer: 0, ..ok.clone() },
            ProposalConfig { n_layer: 100_000_000, ..ok.clone() },
            ProposalConfig { vocab_size: 0, ..ok.clone() },
            ProposalConfig { vocab_size: 1 << 17, ..ok.clone() },
            ProposalConfig { block_size: 0, ..ok.clone() },
            ProposalConfig { num_classes: 0, ..ok.clone() },
            ProposalConfig { n_embd: 4096, n_head: 8, n_layer: 64, ..ok.clone() },
        ] {
            let d = Device::flex();
            assert!(ProposalSpec::Ar(bad.clone()).init(&d).is_err(), "{bad:?}");
            assert!(ProposalSpec::Nar(bad.clone()).init(&d).is_err(), "{bad:?}");
        }
    }
}
