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
use crate::proposal::condition::{Condition, TextInput};
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
    /// Text-to-image: the prompt and the empty prompt (guidance's unconditional rows), encoded.
    /// `None` for class-conditional networks.
    pub prompt: Option<Prompts>,
}

/// One prompt as the proposal network takes it: ids (`[CLS] ... [SEP]`, at most `n_ctx`) and, for
/// a pretrained text encoder, its states (`ids.len() x width`, row-major).
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    pub ids: Vec<u32>,
    pub states: Option<Vec<f32>>,
}

/// The prompt of a request and the empty prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompts {
    pub prompt: Prompt,
    pub empty: Prompt,
}

impl Request {
    pub fn validate(&self, num_classes: usize, vocab_size: usize) -> Result<(), TesseraError> {
        if self.prompt.is_none() && self.class >= num_classes {
            return Err(TesseraError::InvalidOption(format!("class must be in 0..{num_classes}, got {}", self.class)));
        }
        if self.count == 0 || self.count > MAX_COUNT {
            return Err(TesseraError::InvalidOption(format!("count must be in 1..={MAX_COUNT}, got {}", self.count)));
        }
        self.options.validate(vocab_size)
    }
}

impl Request {
    /// The condition of a (possibly guided) batch of `n` images: `[cond x n]`, then `[uncond x n]`
    /// when guided (the null class, or the empty prompt).
    pub fn condition(&self, cfg: &crate::proposal::ProposalConfig, n: usize, guided: bool, device: &Device) -> Result<Condition, TesseraError> {
        let (prompts, text) = match (&self.prompt, &cfg.text) {
            (None, None) => return Ok(Condition::Class(class_column(self.class, cfg.null_class(), n, guided, device))),
            (Some(p), Some(t)) => (p, t),
            (None, Some(_)) => return Err(TesseraError::InvalidOption("this model generates from a prompt: give one (the empty prompt is unconditional)".into())),
            (Some(_), None) => return Err(TesseraError::InvalidOption("this model is class-conditional: it takes a class, not a prompt".into())),
        };
        let rows: Vec<(&[u32], Option<&[f32]>)> = (0..if guided { 2 * n } else { n })
            .map(|r| if r < n { &prompts.prompt } else { &prompts.empty })
            .map(|p| (p.ids.as_slice(), p.states.as_deref()))
            .collect();
        Ok(Condition::Text(TextInput::padded(&rows, text.n_ctx, text.given_width(), device)?))
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

#[cfg(test)]
mod prompt_tests {
    use super::*;
    use crate::proposal::ProposalConfig;
    use crate::proposal::condition::{TextConditionConfig, TextEncoderSpec};

    fn cfg(encoder: TextEncoderSpec) -> ProposalConfig {
        ProposalConfig { vocab_size: 9, num_classes: 1, block_size: 4, n_layer: 1, n_head: 2, n_embd: 8, text: Some(TextConditionConfig { n_ctx: 6, encoder }) }
    }
    fn prompts(ids: &[u32], states: Option<usize>) -> Option<Prompts> {
        let p = |ids: &[u32]| Prompt { ids: ids.to_vec(), states: states.map(|w| (0..ids.len() * w).map(|i| (i as f32 * 0.37).sin()).collect()) };
        Some(Prompts { prompt: p(ids), empty: p(&[2, 3]) })
    }

    async fn ar(gpt: &crate::proposal::gpt::Gpt, c: &ProposalConfig, req: Request, d: &Device) -> Result<Vec<Vec<u32>>, TesseraError> {
        ArSampling::new(gpt, c, req, d)?.run().await
    }

    #[test]
    fn prompts_drive_guided_ar_and_nar_sampling_deterministically() {
        let d = Device::flex();
        d.seed(4);
        let c = cfg(TextEncoderSpec::Learned { vocab_size: 12, n_embd: 8, n_layer: 1, n_head: 2 });
        let gpt = c.init_gpt(&d).unwrap();
        let mg = c.init_maskgit(&d).unwrap();
        let options = SamplingOptions { seed: 3, guidance: 3.0, steps: 3, ..Default::default() };
        let req = |ids: &[u32]| Request { class: 0, count: 3, options: options.clone(), prompt: prompts(ids, None) };
        let a = pollster::block_on(ar(&gpt, &c, req(&[2, 5, 7, 3]), &d)).unwrap();
        assert_eq!(a, pollster::block_on(ar(&gpt, &c, req(&[2, 5, 7, 3]), &d)).unwrap(), "same prompt, same seed, same tokens");
        assert_eq!(a.len(), 3);
        assert!(a.iter().all(|r| r.len() == 4 && r.iter().all(|&t| t < 9)));
        let n = pollster::block_on(NarSampling::new(&mg, &c, req(&[2, 5, 7, 3]), None, &d).unwrap().run()).unwrap();
        assert!(n.iter().all(|r| r.len() == 4));
        // a prompt too long for the model, or a class for a text model: typed errors
        assert!(matches!(ArSampling::new(&gpt, &c, req(&[2, 4, 4, 4, 4, 4, 3]), &d), Err(TesseraError::InvalidTokens(_))));
        let class_req = Request { prompt: None, ..req(&[2, 3]) };
        assert!(matches!(ArSampling::new(&gpt, &c, class_req, &d), Err(TesseraError::InvalidOption(_))));
        // a pretrained-encoder model needs the states of both prompts
        let p = cfg(TextEncoderSpec::Pretrained { name: "m".into(), width: 5 });
        let pg = p.init_gpt(&d).unwrap();
        let with = Request { prompt: prompts(&[2, 6, 3], Some(5)), ..req(&[2, 3]) };
        assert!(pollster::block_on(ar(&pg, &p, with, &d)).is_ok());
        let without = Request { prompt: prompts(&[2, 6, 3], None), ..req(&[2, 3]) };
        assert!(ArSampling::new(&pg, &p, without, &d).is_err());
    }
}
