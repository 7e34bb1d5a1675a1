//! Generation: a validated [`Request`] drives the AR loop (`ar.rs`: one token per step, KV cache) or
//! the NAR loop (`nar.rs`: MaskGIT, all tokens in parallel, most confident revealed first; also
//! inpainting); `sampler.rs` draws each token (temperature, top-k, top-p, classifier-free guidance)
//! and `image.rs` turns tokens into pixels. Each loop is a state machine advanced by an async `step`,
//! so the browser can post tokens and previews between steps; natively a blocking executor drives
//! it. Read-backs are async everywhere (WebGPU requires it).
pub mod ar;
pub mod image;
pub mod nar;
pub mod sampler;

pub use ar::ArSampling;
pub use image::{decode, read_f32, to_rgba, tokens_tensor};
pub use nar::NarSampling;

use crate::bundle::Bundle;
use crate::error::TesseraError;
use crate::proposal::{Proposal, ProposalSpec};
use burn::prelude::*;
use sampler::SamplingOptions;

/// Largest batch one request may ask for.
pub const MAX_COUNT: usize = crate::config::limits::BATCH;

/// A validated generation request.
#[derive(Debug, Clone)]
pub struct Request {
    pub class: usize,
    pub count: usize,
    pub options: SamplingOptions,
}

impl Request {
    pub fn validate(&self, num_classes: usize, vocab_size: usize) -> Result<(), TesseraError> {
        if self.class >= num_classes {
            return Err(TesseraError::InvalidOption(format!("class must be in 0..{num_classes}, got {}", self.class)));
        }
        if self.count == 0 || self.count > MAX_COUNT {
            return Err(TesseraError::InvalidOption(format!("count must be in 1..={MAX_COUNT}, got {}", self.count)));
        }
        self.options.validate(vocab_size)
    }
}

/// Class ids of a (possibly guided) batch: `[class x n]`, then `[null x n]` when guided.
pub(crate) fn class_column(class: usize, null: usize, n: usize, guided: bool, device: &Device) -> Tensor<1, Int> {
    let rows = if guided { 2 * n } else { n };
    let c: Vec<i64> = (0..rows).map(|r| if r < n { class as i64 } else { null as i64 }).collect();
    Tensor::from_data(TensorData::new(c, [rows]), device)
}

/// Either sampler, behind one interface (what the browser and the CLI drive).
pub enum Sampling<'a> {
    Ar(ArSampling<'a>),
    Nar(NarSampling<'a>),
}

impl Sampling<'_> {
    pub fn done(&self) -> bool {
        match self {
            Sampling::Ar(s) => s.done(),
            Sampling::Nar(s) => s.done(),
        }
    }
    /// (steps taken, total steps): tokens for AR, parallel decoding steps for NAR.
    pub fn progress(&self) -> (usize, usize) {
        match self {
            Sampling::Ar(s) => (s.position(), s.total()),
            Sampling::Nar(s) => (s.position(), s.total()),
        }
    }
    pub async fn step(&mut self) -> Result<(), TesseraError> {
        match self {
            Sampling::Ar(s) => s.step().await,
            Sampling::Nar(s) => s.step().await,
        }
    }
    /// Current grids, not-yet-sampled positions set to `fill`.
    pub fn filled(&self, fill: u32, per_image: usize) -> Vec<Vec<u32>> {
        match self {
            Sampling::Ar(s) => s.tokens.iter().map(|t| {
                let mut f = t.clone();
                f.resize(per_image, fill);
                f
            }).collect(),
            Sampling::Nar(s) => s.filled(fill),
        }
    }
    /// `(position, token)` pairs set by the last step, per image.
    pub fn last_step(&self) -> Vec<Vec<(usize, u32)>> {
        match self {
            Sampling::Ar(s) => s.tokens.iter().map(|t| t.last().map(|&v| vec![(t.len() - 1, v)]).unwrap_or_default()).collect(),
            Sampling::Nar(s) => s.revealed.iter().zip(&s.tokens).map(|(r, t)| r.iter().map(|&p| (p, t[p].unwrap_or(0))).collect()).collect(),
        }
    }
    pub async fn run(mut self, per_image: usize) -> Result<Vec<Vec<u32>>, TesseraError> {
        while !self.done() {
            self.step().await?;
        }
        Ok(self.filled(0, per_image))
    }
}


impl Bundle {
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

    /// The proposal network's default sampling options (from the manifest).
    pub fn defaults(&self, name: &str) -> Result<SamplingOptions, TesseraError> {
        Ok(self.manifest.proposal(name)?.sampling.clone())
    }
}
