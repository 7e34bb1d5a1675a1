//! AR sampling: one token per step for every image, through the GPT's KV cache, raster order.
use super::Request;
use super::image::read_f32;
use super::sampler::sample;
use crate::error::TesseraError;
use crate::proposal::ProposalConfig;
use crate::proposal::condition::Condition;
use crate::proposal::gpt::{Gpt, KvCache};
use crate::rng::Rng;
use burn::prelude::*;

/// An AR sampling run in progress.
pub struct ArSampling<'a> {
    gpt: &'a Gpt,
    cfg: ProposalConfig,
    req: Request,
    device: Device,
    cache: KvCache,
    /// The batch's condition (`[cond x n, uncond x n]` with guidance), built once: the GPT reads it
    /// at the first step, into its KV cache.
    cond: Condition,
    rngs: Vec<Rng>,
    /// Tokens sampled so far, one row per image.
    pub tokens: Vec<Vec<u32>>,
}

impl<'a> ArSampling<'a> {
    pub fn new(gpt: &'a Gpt, cfg: &ProposalConfig, req: Request, device: &Device) -> Result<Self, TesseraError> {
        req.validate(cfg.num_classes, cfg.vocab_size)?;
        // a prompt that does not fit is refused here, before the first step
        let cond = req.condition(cfg, req.count, req.options.uses_guidance(), device)?;
        let rngs = (0..req.count as u64).map(|i| Rng::new(req.options.seed, i)).collect();
        Ok(Self { gpt, cfg: cfg.clone(), tokens: vec![Vec::with_capacity(cfg.block_size); req.count], req, device: device.clone(), cache: KvCache::default(), cond, rngs })
    }

    pub fn done(&self) -> bool {
        self.tokens[0].len() >= self.cfg.block_size
    }
    pub fn position(&self) -> usize {
        self.tokens[0].len()
    }
    pub fn total(&self) -> usize {
        self.cfg.block_size
    }

    /// Samples the next token of every image.
    pub async fn step(&mut self) -> Result<(), TesseraError> {
        if self.done() {
            return Ok(());
        }
        let n = self.req.count;
        let guided = self.req.options.uses_guidance();
        // With guidance the batch is [cond x n, uncond x n]; the unconditional half drives the second.
        let rows = if guided { 2 * n } else { n };
        let prev = if self.position() == 0 {
            None
        } else {
            let last: Vec<i64> = (0..rows).map(|r| *self.tokens[r % n].last().expect("position > 0") as i64).collect();
            Some(Tensor::<1, Int>::from_data(TensorData::new(last, [rows]), &self.device))
        };
        let logits = self.gpt.step_with(&mut self.cache, &self.cond, prev)?;
        let v = self.cfg.vocab_size;
        let logits = read_f32(logits).await?;
        for i in 0..n {
            let cond = &logits[i * v..(i + 1) * v];
            let uncond = guided.then(|| &logits[(n + i) * v..(n + i + 1) * v]);
            let t = sample(cond, uncond, &self.req.options, &mut self.rngs[i]);
            self.tokens[i].push(t);
        }
        Ok(())
    }

    /// Runs to the end and returns the tokens.
    pub async fn run(mut self) -> Result<Vec<Vec<u32>>, TesseraError> {
        while !self.done() {
            self.step().await?;
        }
        Ok(self.tokens)
    }
}

