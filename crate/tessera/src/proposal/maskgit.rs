//! The NAR proposal network: MaskGIT (Chang et al. 2022). A bidirectional transformer over
//! `[class] + tokens`, where unknown tokens are replaced by a learned mask token. Training masks a
//! cosine-schedule fraction of the grid and predicts the masked tokens; sampling starts from an
//! all-mask grid (or, for inpainting, a partly given one) and over a few steps reveals the most
//! confident predictions (see `sampling::nar`).
use super::ProposalConfig;
use super::block::Block;
use super::condition::{Condition, TextPrefix, key_padding};
use crate::config::ConfigError;
use crate::error::TesseraError;
use burn::nn::{Embedding, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::log_softmax;

impl ProposalConfig {
    /// The NAR network (MaskGIT) of this size; the mask token is index `vocab_size` of its input table.
    pub fn init_maskgit(&self, device: &Device) -> Result<MaskGit, ConfigError> {
        self.validate("nar proposal")?;
        let e = self.n_embd;
        let emb = |n| self.embedding(n, device);
        Ok(MaskGit {
            tok_emb: emb(self.vocab_size + 1),
            cls_emb: emb(self.num_classes + 1),
            pos_emb: emb(self.block_size + 1),
            text: self.text.as_ref().map(|t| t.init(e, device)),
            blocks: (0..self.n_layer).map(|_| Block::new(e, self.n_head, device)).collect(),
            ln_f: LayerNormConfig::new(e).init(device),
            head: LinearConfig::new(e, self.vocab_size).init(device),
        })
    }
    /// Input index of MaskGIT's mask token.
    pub fn mask_token(&self) -> usize {
        self.vocab_size
    }
}

#[derive(Module, Debug)]
pub struct MaskGit {
    tok_emb: Embedding,
    cls_emb: Embedding,
    pos_emb: Embedding,
    /// The prompt's prefix (text-to-image networks only).
    text: Option<TextPrefix>,
    blocks: Vec<Block>,
    ln_f: LayerNorm,
    head: Linear,
}

/// Fraction of the grid masked at training time for a uniform draw `u` in [0, 1): MaskGIT's cosine
/// schedule `cos(pi/2 * u)`, as a token count in `1..=total`.
pub fn training_mask_count(u: f64, total: usize) -> usize {
    ((std::f64::consts::FRAC_PI_2 * u).cos() * total as f64).ceil().clamp(1.0, total as f64) as usize
}

/// How many of `masked` unknown tokens are still unknown after each of `steps` sampling steps:
/// `floor(masked * cos(pi/2 * (s + 1) / steps))`, non-increasing, 0 after the last step.
pub fn unmasking_schedule(masked: usize, steps: usize) -> Vec<usize> {
    let mut out = Vec::with_capacity(steps);
    let mut prev = masked;
    for s in 0..steps {
        let r = (std::f64::consts::FRAC_PI_2 * (s + 1) as f64 / steps as f64).cos();
        let left = if s + 1 == steps { 0 } else { ((masked as f64 * r).floor() as usize).min(prev) };
        out.push(left);
        prev = left;
    }
    out
}

impl MaskGit {
    /// Classes `[b]` and tokens `[b, t]` (mask token where unknown) -> logits `[b, t, vocab]`.
    pub fn forward(&self, classes: Tensor<1, Int>, tokens: Tensor<2, Int>) -> Tensor<3> {
        let [b, t] = tokens.dims();
        let x = Tensor::cat(vec![self.cls_emb.forward(classes.reshape([b, 1])), self.tok_emb.forward(tokens)], 1);
        let e = x.dims()[2];
        let pos = Tensor::<1, Int>::arange(0..(t + 1) as i64, &x.device()).reshape([1, t + 1]);
        let mut x = x + self.pos_emb.forward(pos).expand([b, t + 1, e]);
        for block in &self.blocks {
            x = block.forward(x, false, None, None);
        }
        let x = self.ln_f.forward(x.narrow(1, 1, t)); // drop the class position
        self.head.forward(x)
    }

    /// [`MaskGit::forward`] for any condition (a text prefix: `n_ctx` positions before the grid,
    /// its padding masked).
    pub fn forward_with(&self, cond: &Condition, tokens: Tensor<2, Int>) -> Result<Tensor<3>, TesseraError> {
        let (text, prefix) = match (cond, &self.text) {
            (Condition::Class(c), None) => return Ok(self.forward(c.clone(), tokens)),
            (Condition::Text(t), Some(prefix)) => (t, prefix),
            (Condition::Class(_), Some(_)) => return Err(TesseraError::InvalidOption("this network is text-conditional: give a prompt, not a class".into())),
            (Condition::Text(_), None) => return Err(TesseraError::InvalidOption("this network is class-conditional: give a class, not a prompt".into())),
        };
        let [b, t] = tokens.dims();
        let (p, pad) = prefix.forward(text)?;
        let n = p.dims()[1];
        let x = self.tok_emb.forward(tokens);
        let e = x.dims()[2];
        let pos = Tensor::<1, Int>::arange(1..(t + 1) as i64, &x.device()).reshape([1, t]);
        let mut x = Tensor::cat(vec![p, x + self.pos_emb.forward(pos).expand([b, t, e])], 1);
        let key_pad = key_padding(&pad, t);
        for block in &self.blocks {
            x = block.forward(x, false, None, Some(&key_pad));
        }
        Ok(self.head.forward(self.ln_f.forward(x.narrow(1, n, t))))
    }

    /// Cross-entropy on the masked positions only: `tokens` `[b, t]` are the true tokens, `mask`
    /// `[b, t]` is true where the input is replaced by the mask token.
    pub fn loss(&self, classes: Tensor<1, Int>, tokens: Tensor<2, Int>, mask: Tensor<2, Bool>, mask_token: usize) -> Tensor<1> {
        let input = tokens.clone().mask_fill(mask.clone(), mask_token as i64);
        Self::masked_nll(self.forward(classes, input), tokens, mask)
    }

    /// [`MaskGit::loss`] for any condition.
    pub fn loss_with(&self, cond: &Condition, tokens: Tensor<2, Int>, mask: Tensor<2, Bool>, mask_token: usize) -> Result<Tensor<1>, TesseraError> {
        let input = tokens.clone().mask_fill(mask.clone(), mask_token as i64);
        Ok(Self::masked_nll(self.forward_with(cond, input)?, tokens, mask))
    }

    fn masked_nll(logits: Tensor<3>, tokens: Tensor<2, Int>, mask: Tensor<2, Bool>) -> Tensor<1> {
        let [b, t] = tokens.dims();
        let logp = log_softmax(logits, 2); // [b, t, v]
        let picked = logp.gather(2, tokens.reshape([b, t, 1])).reshape([b, t]);
        let m = mask.float();
        let n = m.clone().sum().clamp_min(1.0);
        (picked * m).sum().neg() / n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_reveals_everything_monotonically() {
        for (masked, steps) in [(64, 8), (64, 12), (10, 10), (3, 8), (64, 1), (0, 4)] {
            let s = unmasking_schedule(masked, steps);
            assert_eq!(s.len(), steps);
            assert_eq!(*s.last().unwrap(), 0);
            assert!(s.windows(2).all(|w| w[0] >= w[1]) && s[0] <= masked, "{s:?}");
        }
        // cosine: few tokens early, many late
        let s = unmasking_schedule(64, 8);
        assert_eq!(s, vec![62, 59, 53, 45, 35, 24, 12, 0]);
    }

    #[test]
    fn training_mask_counts_cover_the_range() {
        assert_eq!(training_mask_count(0.0, 64), 64);
        assert_eq!(training_mask_count(0.999_999, 64), 1);
        assert_eq!(training_mask_count(0.5, 64), 46); // ceil(64 * cos(pi/4)) = ceil(45.25)
    }

    #[test]
    fn loss_ignores_unmasked_positions_and_attention_is_bidirectional() {
        let d = Device::flex();
        d.seed(5);
        let cfg = ProposalConfig { vocab_size: 7, num_classes: 2, block_size: 4, n_layer: 1, n_head: 2, n_embd: 8, text: None };
        let m = cfg.init_maskgit(&d).unwrap();
        let cls = Tensor::<1, Int>::from_data(TensorData::new(vec![1i64], [1]), &d);
        let toks = |v: Vec<i64>| Tensor::<2, Int>::from_data(TensorData::new(v, [1, 4]), &d);
        let mask = Tensor::<2, Bool>::from_data(TensorData::new(vec![true, false, false, false], [1, 4]), &d);
        // changing an unmasked target's value changes the input but the loss only reads position 0
        let a: f32 = m.loss(cls.clone(), toks(vec![3, 1, 2, 4]), mask.clone(), 7).into_scalar();
        let logits: Vec<f32> = m.forward(cls.clone(), toks(vec![7, 1, 2, 4])).into_data().try_to_vec().unwrap();
        let row = &logits[..7];
        let lse = row.iter().map(|&x| (x as f64).exp()).sum::<f64>().ln();
        assert!((a as f64 - (lse - row[3] as f64)).abs() < 1e-4);
        // position 0 sees the last token (bidirectional)
        let b: Vec<f32> = m.forward(cls, toks(vec![7, 1, 2, 5])).into_data().try_to_vec().unwrap();
        assert_ne!(&logits[..7], &b[..7]);
    }
}
