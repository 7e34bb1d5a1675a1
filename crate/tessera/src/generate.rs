//! Generation: the AR sampling loop (one token per step, KV cache), the NAR (MaskGIT) loop (all
//! tokens in parallel, most confident revealed first; also inpainting), and the conversion of
//! decoded images to RGBA. Each loop is a state machine advanced by an async `step`, so the browser
//! can post tokens and previews between steps; natively a blocking executor drives it. Read-backs
//! are async everywhere (WebGPU requires it).
use crate::error::TesseraError;
use crate::gpt::{Gpt, GptConfig, KvCache};
use crate::maskgit::{MaskGit, MaskGitConfig, unmasking_schedule};
use crate::sampler::{Rng, SamplingOptions, sample, sample_with_logits};
use crate::tokenizer::Tokenizer;
use burn::prelude::*;

/// Largest batch one request may ask for.
pub const MAX_COUNT: usize = 64;

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
fn class_column(class: usize, null: usize, n: usize, guided: bool, device: &Device) -> Tensor<1, Int> {
    let rows = if guided { 2 * n } else { n };
    let c: Vec<i64> = (0..rows).map(|r| if r < n { class as i64 } else { null as i64 }).collect();
    Tensor::from_data(TensorData::new(c, [rows]), device)
}

/// An AR sampling run in progress.
pub struct ArSampling<'a> {
    gpt: &'a Gpt,
    cfg: GptConfig,
    req: Request,
    device: Device,
    cache: KvCache,
    rngs: Vec<Rng>,
    /// Tokens sampled so far, one row per image.
    pub tokens: Vec<Vec<u32>>,
}

impl<'a> ArSampling<'a> {
    pub fn new(gpt: &'a Gpt, cfg: &GptConfig, req: Request, device: &Device) -> Result<Self, TesseraError> {
        req.validate(cfg.num_classes, cfg.vocab_size)?;
        let rngs = (0..req.count as u64).map(|i| Rng::new(req.options.seed, i)).collect();
        Ok(Self { gpt, cfg: cfg.clone(), tokens: vec![Vec::with_capacity(cfg.block_size); req.count], req, device: device.clone(), cache: KvCache::default(), rngs })
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
        // With guidance the batch is [cond x n, uncond x n]; the null class drives the second half.
        let rows = if guided { 2 * n } else { n };
        let classes = class_column(self.req.class, self.cfg.null_class(), n, guided, &self.device);
        let prev = if self.position() == 0 {
            None
        } else {
            let last: Vec<i64> = (0..rows).map(|r| *self.tokens[r % n].last().expect("position > 0") as i64).collect();
            Some(Tensor::<1, Int>::from_data(TensorData::new(last, [rows]), &self.device))
        };
        let logits = self.gpt.step(&mut self.cache, classes, prev);
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

/// A NAR (MaskGIT) sampling run in progress: every step predicts all unknown tokens in parallel
/// and keeps the most confident ones, following the cosine [`unmasking_schedule`].
pub struct NarSampling<'a> {
    model: &'a MaskGit,
    cfg: MaskGitConfig,
    req: Request,
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
    pub fn new(model: &'a MaskGit, cfg: &MaskGitConfig, req: Request, given: Option<Vec<Vec<Option<u32>>>>, device: &Device) -> Result<Self, TesseraError> {
        req.validate(cfg.num_classes, cfg.vocab_size)?;
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
        Ok(Self { model, cfg: cfg.clone(), revealed: vec![vec![]; req.count], req, device: device.clone(), rngs, tokens, schedules, step: 0 })
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
        let logits = self.model.forward(class_column(self.req.class, self.cfg.null_class(), n, guided, &self.device), input);
        let logits = read_f32(logits).await?;
        // Confidence noise is annealed: strong early (diverse layouts), none at the last step.
        let anneal = opts.confidence_noise as f64 * (1.0 - (self.step + 1) as f64 / opts.steps as f64);
        for i in 0..n {
            let rng = &mut self.rngs[i];
            let mut scored = Vec::new(); // (confidence, position, token)
            for p in (0..t).filter(|&p| self.tokens[i][p].is_none()) {
                let at = |row: usize| &logits[(row * t + p) * v..(row * t + p + 1) * v];
                let (tok, l) = sample_with_logits(at(i), guided.then(|| at(n + i)), opts, rng);
                // log-probability of the drawn token under the (guided) model distribution
                let max = l.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let lse = max + l.iter().map(|x| (x - max).exp()).sum::<f64>().ln();
                let gumbel = -(-(rng.uniform().max(1e-300)).ln()).ln();
                scored.push((l[tok as usize] - lse + anneal * gumbel, p, tok));
            }
            let keep_masked = self.schedules[i][self.step];
            let reveal = scored.len().saturating_sub(keep_masked);
            scored.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap_or(std::cmp::Ordering::Equal).then(a.1.cmp(&b.1)));
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

/// Checks tokens for decoding: `n` rows of exactly `grid * grid` codes below `codebook_size`.
pub fn tokens_tensor(tokens: &[Vec<u32>], per_image: usize, codebook_size: usize, device: &Device) -> Result<Tensor<2, Int>, TesseraError> {
    if tokens.is_empty() || tokens.len() > MAX_COUNT {
        return Err(TesseraError::InvalidTokens(format!("need 1..={MAX_COUNT} token grids, got {}", tokens.len())));
    }
    let mut flat = Vec::with_capacity(tokens.len() * per_image);
    for (i, row) in tokens.iter().enumerate() {
        if row.len() != per_image {
            return Err(TesseraError::InvalidTokens(format!("grid {i} has {} tokens, expected {per_image}", row.len())));
        }
        if let Some(&t) = row.iter().find(|&&t| t as usize >= codebook_size) {
            return Err(TesseraError::InvalidTokens(format!("token {t} in grid {i} is outside the codebook (size {codebook_size})")));
        }
        flat.extend(row.iter().map(|&t| t as i64));
    }
    Ok(Tensor::from_data(TensorData::new(flat, [tokens.len(), per_image]), device))
}

/// Decodes token grids to images and reads them back: `[n, c, s, s]` values in [-1, 1].
pub async fn decode(tokenizer: &Tokenizer, tokens: Tensor<2, Int>) -> Result<(Vec<f32>, [usize; 4]), TesseraError> {
    let images = tokenizer.decode(tokens);
    let shape = images.dims();
    Ok((read_f32(images).await?, shape))
}

/// Reads a tensor back to the host as f32 values. Always async: WebGPU has no synchronous read-back.
pub async fn read_f32<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, TesseraError> {
    let data = t.into_data_async().await.map_err(|e| TesseraError::Device(format!("{e:?}")))?;
    data.convert::<f32>().try_to_vec().map_err(|e| TesseraError::Device(format!("{e:?}")))
}

/// `[n, c, s, s]` values in [-1, 1] -> n RGBA images (s * s * 4 bytes each), grey or RGB(A).
pub fn to_rgba(pixels: &[f32], shape: [usize; 4]) -> Vec<Vec<u8>> {
    let [n, c, h, w] = shape;
    let q = |v: f32| ((v.clamp(-1.0, 1.0) + 1.0) * 127.5).round() as u8;
    (0..n)
        .map(|i| {
            let img = &pixels[i * c * h * w..(i + 1) * c * h * w];
            let mut out = Vec::with_capacity(h * w * 4);
            for p in 0..h * w {
                let ch = |k: usize| q(img[k.min(c - 1) * h * w + p]);
                let (r, g, b) = if c >= 3 { (ch(0), ch(1), ch(2)) } else { (ch(0), ch(0), ch(0)) };
                out.extend_from_slice(&[r, g, b, if c == 4 { ch(3) } else { 255 }]);
            }
            out
        })
        .collect()
}
