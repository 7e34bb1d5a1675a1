//! The AR proposal network: a GPT over `[class] + tokens` (nanoGPT's `model.py` in burn).
//! The first position holds a class embedding (index `num_classes` is the null class used for
//! classifier-free guidance); the logits at position i predict token i of the raster-order grid.
use super::ProposalConfig;
use super::block::{Block, KvSlot};
use crate::config::ConfigError;
use burn::nn::{Embedding, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;

impl ProposalConfig {
    /// The AR network (GPT) of this size.
    pub fn init_gpt(&self, device: &Device) -> Result<Gpt, ConfigError> {
        self.validate("ar proposal")?;
        let e = self.n_embd;
        let emb = |n| self.embedding(n, device);
        Ok(Gpt {
            tok_emb: emb(self.vocab_size),
            cls_emb: emb(self.num_classes + 1),
            pos_emb: emb(self.block_size),
            blocks: (0..self.n_layer).map(|_| Block::new(e, self.n_head, device)).collect(),
            ln_f: LayerNormConfig::new(e).init(device),
            head: LinearConfig::new(e, self.vocab_size).with_bias(false).init(device),
            n_head: self.n_head,
        })
    }
}

#[derive(Module, Debug)]
pub struct Gpt {
    tok_emb: Embedding,
    cls_emb: Embedding,
    pos_emb: Embedding,
    blocks: Vec<Block>,
    ln_f: LayerNorm,
    head: Linear,
    n_head: usize,
}

/// Keys and values of every layer for the positions seen so far: `[b, n_head, t, head_dim]`.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    layers: Vec<KvSlot>,
}

impl KvCache {
    /// Number of positions already cached.
    pub fn len(&self) -> usize {
        self.layers.first().and_then(|l| l.as_ref()).map_or(0, |(k, _)| k.dims()[2])
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Gpt {
    /// Input embeddings of `[class] + tokens`, positions `start..start + len`.
    fn embed(&self, classes: Option<Tensor<1, Int>>, tokens: Option<Tensor<2, Int>>, start: usize) -> Tensor<3> {
        let mut parts = Vec::new();
        if let Some(c) = classes {
            let b = c.dims()[0];
            parts.push(self.cls_emb.forward(c.reshape([b, 1])));
        }
        if let Some(t) = tokens {
            parts.push(self.tok_emb.forward(t));
        }
        let x = Tensor::cat(parts, 1);
        let [b, t, e] = x.dims();
        let pos = Tensor::<1, Int>::arange(start as i64..(start + t) as i64, &x.device()).reshape([1, t]);
        x + self.pos_emb.forward(pos).expand([b, t, e])
    }

    fn logits(&self, mut x: Tensor<3>, mut cache: Option<&mut KvCache>) -> Tensor<3> {
        for (i, block) in self.blocks.iter().enumerate() {
            let slot = cache.as_deref_mut().map(|c| {
                if c.layers.len() < self.blocks.len() {
                    c.layers.resize(self.blocks.len(), None);
                }
                &mut c.layers[i]
            });
            x = block.forward(x, true, slot);
        }
        self.head.forward(self.ln_f.forward(x))
    }

    /// Full (training) forward: classes `[b]`, tokens `[b, t]` with t < block_size ->
    /// logits `[b, t + 1, vocab]`; position i predicts token i.
    pub fn forward(&self, classes: Tensor<1, Int>, tokens: Tensor<2, Int>) -> Tensor<3> {
        let x = if tokens.dims()[1] == 0 { self.embed(Some(classes), None, 0) } else { self.embed(Some(classes), Some(tokens), 0) };
        self.logits(x, None)
    }

    /// Cross-entropy of predicting every token of `tokens` (`[b, block_size]`) from the class and
    /// the tokens before it.
    pub fn loss(&self, classes: Tensor<1, Int>, tokens: Tensor<2, Int>) -> Tensor<1> {
        let [b, t] = tokens.dims();
        let logits = self.forward(classes, tokens.clone().narrow(1, 0, t - 1));
        let v = logits.dims()[2];
        burn::nn::loss::CrossEntropyLossConfig::new().init(&logits.device()).forward(logits.reshape([b * t, v]), tokens.reshape([b * t]))
    }

    /// One sampling step with the KV cache: feeds the class (first step, `cache` empty) or the
    /// previous token, returns the logits `[b, vocab]` for the next token.
    pub fn step(&self, cache: &mut KvCache, classes: Tensor<1, Int>, prev: Option<Tensor<1, Int>>) -> Tensor<2> {
        let start = cache.len();
        let x = match prev {
            None => self.embed(Some(classes), None, start),
            Some(p) => {
                let b = p.dims()[0];
                self.embed(None, Some(p.reshape([b, 1])), start)
            }
        };
        let logits = self.logits(x, Some(cache));
        let [b, _, v] = logits.dims();
        logits.reshape([b, v])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> (Gpt, Device) {
        let d = Device::flex();
        d.seed(3);
        (ProposalConfig { vocab_size: 11, num_classes: 3, block_size: 6, n_layer: 2, n_head: 2, n_embd: 16 }.init_gpt(&d).unwrap(), d)
    }
    fn ints(v: &[i64], shape: [usize; 2], d: &Device) -> Tensor<2, Int> {
        Tensor::from_data(TensorData::new(v.to_vec(), shape), d)
    }
    fn vec3(t: Tensor<3>) -> Vec<f32> {
        t.into_data().try_to_vec().unwrap()
    }

    #[test]
    fn causal_mask_holds() {
        let (gpt, d) = tiny();
        let cls = Tensor::<1, Int>::from_data(TensorData::new(vec![1i64], [1]), &d);
        let a = vec3(gpt.forward(cls.clone(), ints(&[1, 2, 3, 4, 5], [1, 5], &d)));
        let b = vec3(gpt.forward(cls, ints(&[1, 2, 3, 9, 0], [1, 5], &d)));
        // positions 0..=3 see only the class and tokens 0..=2, which are equal
        assert_eq!(&a[..4 * 11], &b[..4 * 11]);
        assert_ne!(&a[4 * 11..], &b[4 * 11..]);
    }

    #[test]
    fn kv_cache_equals_full_recomputation() {
        let (gpt, d) = tiny();
        let cls = Tensor::<1, Int>::from_data(TensorData::new(vec![2i64, 0], [2]), &d);
        let toks = [[4i64, 7, 1, 0, 10], [3, 3, 9, 2, 5]];
        let full = vec3(gpt.forward(cls.clone(), ints(&[toks[0], toks[1]].concat(), [2, 5], &d)));
        let mut cache = KvCache::default();
        let mut prev = None;
        for i in 0..6 {
            let l: Vec<f32> = gpt.step(&mut cache, cls.clone(), prev.take()).into_data().try_to_vec().unwrap();
            for bi in 0..2 {
                for k in 0..11 {
                    let f = full[(bi * 6 + i) * 11 + k];
                    assert!((l[bi * 11 + k] - f).abs() < 1e-4, "pos {i} batch {bi}: {} vs {f}", l[bi * 11 + k]);
                }
            }
            if i < 5 {
                prev = Some(Tensor::<1, Int>::from_data(TensorData::new(vec![toks[0][i], toks[1][i]], [2]), &d));
            }
        }
    }
}
