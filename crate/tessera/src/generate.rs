//! Generation: the AR sampling loop (one token per step, KV cache, classifier-free guidance) and
//! the conversion of decoded images to RGBA. The loop is a state machine advanced by an async
//! `step`, so the browser can post each token (and previews) between steps; natively it is driven
//! by a blocking executor. Read-backs are async everywhere (WebGPU requires it).
use crate::error::TesseraError;
use crate::gpt::{Gpt, GptConfig, KvCache};
use crate::sampler::{Rng, SamplingOptions, sample};
use crate::vq::VqTokenizer;
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
    pub fn validate(&self, cfg: &GptConfig) -> Result<(), TesseraError> {
        if self.class >= cfg.num_classes {
            return Err(TesseraError::InvalidOption(format!("class must be in 0..{}, got {}", cfg.num_classes, self.class)));
        }
        if self.count == 0 || self.count > MAX_COUNT {
            return Err(TesseraError::InvalidOption(format!("count must be in 1..={MAX_COUNT}, got {}", self.count)));
        }
        self.options.validate(cfg.vocab_size)
    }
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
        req.validate(cfg)?;
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
        let classes: Vec<i64> = (0..rows).map(|r| if r < n { self.req.class as i64 } else { self.cfg.null_class() as i64 }).collect();
        let classes = Tensor::<1, Int>::from_data(TensorData::new(classes, [rows]), &self.device);
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
pub async fn decode(tokenizer: &VqTokenizer, tokens: Tensor<2, Int>) -> Result<(Vec<f32>, [usize; 4]), TesseraError> {
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
