//! all-MiniLM-L6-v2 (sentence-transformers): a BERT encoder (post-LayerNorm blocks, exact-erf GELU,
//! LayerNorm eps 1e-12) whose mean-pooled, L2-normalised output is a sentence embedding. Text-to-image
//! uses it frozen, as the pretrained text encoder beside the in-project one: its per-token states
//! (`forward`) condition the proposal network, its sentence embedding (`embed`) is what the
//! reference checks. Weights: `minilm_import.rs` (natively) or a bundle's f16 file (browser).
use crate::config::{Check, ConfigError, limits, linear_params};
use crate::error::TesseraError;
use burn::module::Param;
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::{gelu, softmax};
use serde::{Deserialize, Serialize};

/// A BERT encoder's sizes (Hugging Face `config.json` names in comments).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MiniLmConfig {
    /// `vocab_size`: rows of the word embedding (the WordPiece vocabulary).
    pub vocab_size: usize,
    /// `hidden_size`.
    pub n_embd: usize,
    /// `num_hidden_layers`.
    pub n_layer: usize,
    /// `num_attention_heads`.
    pub n_head: usize,
    /// `intermediate_size`: the MLP width.
    pub mlp: usize,
    /// `max_position_embeddings`: the longest token sequence.
    pub max_positions: usize,
    /// `layer_norm_eps`.
    pub norm_eps: f64,
}

impl MiniLmConfig {
    /// all-MiniLM-L6-v2: 6 layers x 384, 12 heads, MLP 1536, WordPiece vocabulary of 30,522.
    pub fn all_minilm_l6_v2() -> Self {
        Self { vocab_size: 30522, n_embd: 384, n_layer: 6, n_head: 12, mlp: 1536, max_positions: 512, norm_eps: 1e-12 }
    }
    pub fn params(&self) -> u128 {
        let e = self.n_embd;
        let layer = linear_params(e, 3 * e) + linear_params(e, e) + linear_params(e, self.mlp) + linear_params(self.mlp, e) + 4 * e as u128;
        (self.vocab_size + self.max_positions) as u128 * e as u128 + 2 * e as u128 + self.n_layer as u128 * layer
    }
    pub fn validate(&self) -> Result<(), ConfigError> {
        let c = Check::new("text encoder (MiniLM)");
        c.range("vocab_size", self.vocab_size, 1, super::vocab::MAX_VOCAB)?;
        c.range("n_embd", self.n_embd, 1, limits::WIDTH)?;
        c.range("n_layer", self.n_layer, 1, limits::LAYERS)?;
        c.range("n_head", self.n_head, 1, self.n_embd)?;
        c.that(self.n_embd % self.n_head == 0, || format!("n_head {} must divide n_embd {}", self.n_head, self.n_embd))?;
        c.range("mlp", self.mlp, 1, 4 * limits::WIDTH)?;
        c.range("max_positions", self.max_positions, 1, 512)?;
        c.float("norm_eps", self.norm_eps, 0.0, 1.0)?;
        c.params(self.params())?;
        let t = self.max_positions as u128;
        c.activations(t * (self.n_head as u128 * t).max(self.mlp as u128))
    }
    pub fn init(&self, device: &Device) -> Result<MiniLm, ConfigError> {
        self.validate()?;
        let e = self.n_embd;
        let ln = || LayerNormConfig::new(e).with_epsilon(self.norm_eps).init(device);
        let layers = (0..self.n_layer)
            .map(|_| BertLayer {
                qkv: LinearConfig::new(e, 3 * e).init(device),
                out: LinearConfig::new(e, e).init(device),
                ln1: ln(),
                fc: LinearConfig::new(e, self.mlp).init(device),
                proj: LinearConfig::new(self.mlp, e).init(device),
                ln2: ln(),
                n_head: self.n_head,
            })
            .collect();
        Ok(MiniLm {
            word: EmbeddingConfig::new(self.vocab_size, e).init(device),
            position: Param::from_tensor(Tensor::zeros([self.max_positions, e], device)),
            ln: ln(),
            layers,
        })
    }
}

/// One post-LayerNorm BERT layer: `x = ln1(x + attn(x)); x = ln2(x + mlp(x))`.
#[derive(Module, Debug)]
pub struct BertLayer {
    /// query, key and value fused (one matmul).
    qkv: Linear,
    out: Linear,
    ln1: LayerNorm,
    fc: Linear,
    proj: Linear,
    ln2: LayerNorm,
    n_head: usize,
}

impl BertLayer {
    /// `pad`: `[b, t]`, true where a position is padding (no query attends to it).
    fn forward(&self, x: Tensor<3>, pad: Option<Tensor<2, Bool>>) -> Tensor<3> {
        let [b, t, c] = x.dims();
        let (h, hd) = (self.n_head, c / self.n_head);
        let heads = |y: Tensor<3>| y.reshape([b, t, h, hd]).swap_dims(1, 2);
        let qkv = self.qkv.forward(x.clone());
        let q = heads(qkv.clone().narrow(2, 0, c));
        let k = heads(qkv.clone().narrow(2, c, c));
        let v = heads(qkv.narrow(2, 2 * c, c));
        let mut att = q.matmul(k.swap_dims(2, 3)).div_scalar((hd as f32).sqrt());
        if let Some(pad) = pad {
            att = att.mask_fill(pad.reshape([b, 1, 1, t]).expand([b, h, t, t]), -1.0e9);
        }
        let y = softmax(att, 3).matmul(v).swap_dims(1, 2).reshape([b, t, c]);
        let x = self.ln1.forward(x + self.out.forward(y));
        let m = self.proj.forward(gelu(self.fc.forward(x.clone())));
        self.ln2.forward(x + m)
    }
}

/// The encoder: word + position embeddings (the token-type-0 row folded into the positions: a
/// single-segment prompt always uses it), LayerNorm, `n_layer` BERT layers.
#[derive(Module, Debug)]
pub struct MiniLm {
    word: Embedding,
    position: Param<Tensor<2>>,
    ln: LayerNorm,
    layers: Vec<BertLayer>,
}

impl MiniLm {
    /// Per-token states `[b, t, e]` of `ids` `[b, t]`; `pad` marks padding in a batch of prompts
    /// of different lengths.
    pub fn forward(&self, ids: Tensor<2, Int>, pad: Option<Tensor<2, Bool>>) -> Result<Tensor<3>, TesseraError> {
        let [b, t] = ids.dims();
        let [max, e] = self.position.dims();
        if t == 0 || t > max {
            return Err(TesseraError::InvalidTokens(format!("{t} text tokens; the text encoder takes 1..={max}")));
        }
        let pos = self.position.val().narrow(0, 0, t).unsqueeze_dim::<3>(0).expand([b, t, e]);
        let mut x = self.ln.forward(self.word.forward(ids) + pos);
        for layer in &self.layers {
            x = layer.forward(x, pad.clone());
        }
        Ok(x)
    }

    /// Sentence embeddings `[b, e]`: the mean of the states of the real (non-padding) tokens,
    /// L2-normalised (sentence-transformers' `Pooling(mean)` + `Normalize`).
    pub fn embed(&self, ids: Tensor<2, Int>, pad: Option<Tensor<2, Bool>>) -> Result<Tensor<2>, TesseraError> {
        let [b, t] = ids.dims();
        let x = self.forward(ids.clone(), pad.clone())?;
        let e = x.dims()[2];
        let keep = match pad {
            Some(p) => p.bool_not().float(),
            None => Tensor::ones([b, t], &ids.device()),
        };
        let n = keep.clone().sum_dim(1).clamp_min(1e-9); // [b, 1]
        let mean = (x * keep.unsqueeze_dim::<3>(2).expand([b, t, e])).sum_dim(1).reshape([b, e]) / n.expand([b, e]);
        let norm = mean.clone().powf_scalar(2.0).sum_dim(1).sqrt().clamp_min(1e-12);
        Ok(mean / norm.expand([b, e]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_config_is_valid_and_bad_ones_are_errors() {
        let c = MiniLmConfig::all_minilm_l6_v2();
        c.validate().unwrap();
        let small = MiniLmConfig { vocab_size: 50, n_embd: 16, n_layer: 2, n_head: 4, mlp: 32, max_positions: 8, norm_eps: 1e-12 };
        assert_eq!(small.init(&Device::flex()).unwrap().num_params() as u128, small.params());
        for bad in [MiniLmConfig { n_head: 5, ..c.clone() }, MiniLmConfig { max_positions: 0, ..c.clone() }, MiniLmConfig { vocab_size: 0, ..c.clone() }] {
            assert!(bad.validate().is_err());
        }
    }
}
