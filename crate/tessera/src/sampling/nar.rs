//! NAR (MaskGIT) sampling: every step predicts all unknown tokens in parallel and keeps the most
//! confident; with `given` tokens it inpaints (keeps them, resamples the rest).
use super::Request;
use super::image::read_f32;
use super::sampler::{draw, guided_logits, log_sum_exp};
use crate::error::TesseraError;
use crate::proposal::ProposalConfig;
use crate::proposal::condition::Condition;
use crate::proposal::maskgit::{MaskGit, unmasking_schedule};
use crate::rng::Rng;
use burn::prelude::*;

/// A NAR (MaskGIT) sampling run in progress: every step predicts all unknown tokens in parallel
/// and keeps the most confident ones, following the cosine [`unmasking_schedule`].
pub struct NarSampling<'a> {
    model: &'a MaskGit,
    cfg: ProposalConfig,
    req: Request,
    /// The batch's condition (`[cond x n, uncond x n]` with guidance), built once for every step.
    cond: Condition,
    device: Device,
    rngs: Vec<Rng>,
    /// Current tokens, one row per image; `None` = still masked.
    pub tokens: Vec<Vec<Option<u32>>>,
    /// Per image: tokens still masked after each step.
    schedules: Vec<Vec<usize>>,
    step: usize,
    /// Positions revealed by the last step, per image.
    pub revealed: Vec<Vec<usize>>,
}

impl<'a> NarSampling<'a> {
    /// `given`: for inpainting, one row per image of `block_size` entries, `Some(token)` to keep and
    /// `None` to resample; `None` samples whole images.
    pub fn new(model: &'a MaskGit, cfg: &ProposalConfig, req: Request, given: Option<Vec<Vec<Option<u32>>>>, device: &Device) -> Result<Self, TesseraError> {
        req.validate(cfg.num_classes, cfg.vocab_size)?;
        // a prompt that does not fit is refused here, before the first step
        let cond = req.condition(cfg, req.count, req.options.uses_guidance(), device)?;
        let t = cfg.block_size;
        let tokens = match given {
            None => vec![vec![None; t]; req.count],
            Some(g) => {
                if g.len() != req.count {
                    return Err(TesseraError::InvalidTokens(format!("inpainting needs {} token grids (count), got {}", req.count, g.len())));
                }
                for (i, row) in g.iter().enumerate() {
                    if row.len() != t {
                        return Err(TesseraError::InvalidTokens(format!("grid {i} has {} entries, expected {t}", row.len())));
                    }
                    if let Some(v) = row.iter().flatten().find(|&&v| v as usize >= cfg.vocab_size) {
                        return Err(TesseraError::InvalidTokens(format!("token {v} in grid {i} is outside the codebook (size {})", cfg.vocab_size)));
                    }
                }
                g
            }
        };
        let steps = req.options.steps;
        let schedules = tokens.iter().map(|row| unmasking_schedule(row.iter().filter(|v| v.is_none()).count(), steps)).collect();
        let rngs = (0..req.count as u64).map(|i| Rng::new(req.options.seed, i)).collect();
        Ok(Self { model, cfg: cfg.clone(), revealed: vec![vec![]; req.count], req, cond, device: device.clone(), rngs, tokens, schedules, step: 0 })
    }

    pub fn done(&self) -> bool {
        self.step >= self.req.options.steps || self.tokens.iter().all(|r| r.iter().all(|v| v.is_some()))
    }
    /// Steps taken so far.
    pub fn position(&self) -> usize {
        self.step
    }
    pub fn total(&self) -> usize {
        self.req.options.steps
    }

    pub async fn step(&mut self) -> Result<(), TesseraError> {
        if self.done() {
            return Ok(());
        }
        let (n, t, v) = (self.req.count, self.cfg.block_size, self.cfg.vocab_size);
        let opts = &self.req.options;
        let guided = opts.uses_guidance();
        let rows = if guided { 2 * n } else { n };
        let mask = self.cfg.mask_token() as i64;
        let input: Vec<i64> = (0..rows).flat_map(|r| self.tokens[r % n].iter().map(move |x| x.map_or(mask, |x| x as i64))).collect();
        let input = Tensor::<2, Int>::from_data(TensorData::new(input, [rows, t]), &self.device);
        let logits = self.model.forward_with(&self.cond, input)?;
        let logits = read_f32(logits).await?;
        // Confidence noise is annealed: strong early (diverse layouts), none at the last step.
        let anneal = opts.confidence_noise as f64 * (1.0 - (self.step + 1) as f64 / opts.steps as f64);
        for i in 0..n {
            let rng = &mut self.rngs[i];
            let mut scored = Vec::new(); // (confidence, position, token)
            for p in (0..t).filter(|&p| self.tokens[i][p].is_none()) {
                let at = |row: usize| &logits[(row * t + p) * v..(row * t + p + 1) * v];
                let l = guided_logits(at(i), guided.then(|| at(n + i)), opts);
                // the exps serve both the log-probability and, at temperature 1, the draw (one exp per code)
                let (lse, exps) = log_sum_exp(&l);
                let tok = draw(&l, Some(&exps), opts, rng);
                // log-probability of the drawn token under the (guided) model distribution
                let gumbel = -(-(rng.uniform().max(1e-300)).ln()).ln();
                scored.push((l[tok as usize] - lse + anneal * gumbel, p, tok));
            }
            let keep_masked = self.schedules[i][self.step];
            let reveal = scored.len().saturating_sub(keep_masked);
            scored.sort_unstable_by(|a, b| super::sampler::descending(a.0, b.0).then(a.1.cmp(&b.1)));
            self.revealed[i] = scored[..reveal].iter().map(|s| s.1).collect();
            for &(_, p, tok) in &scored[..reveal] {
                self.tokens[i][p] = Some(tok);
            }
        }
        self.step += 1;
        Ok(())
    }

    /// Runs to the end and returns the tokens.
    pub async fn run(mut self) -> Result<Vec<Vec<u32>>, TesseraError> {
        while !self.done() {
            self.step().await?;
        }
        Ok(self.filled(0))
    }

    /// Current grids with masked positions replaced by `fill` (previews use the blank token).
    pub fn filled(&self, fill: u32) -> Vec<Vec<u32>> {
        self.tokens.iter().map(|r| r.iter().map(|x| x.unwrap_or(fill)).collect()).collect()
    }
}

