//! The AR proposal network: a GPT over `[condition] + tokens` (nanoGPT's `model.py` in burn).
//! The condition is one class embedding (index `num_classes` is the null class used for
//! classifier-free guidance) or a text prefix of `n_ctx` positions (`condition.rs`); the logits at
//! the condition's last position and after predict the tokens of the raster-order grid in turn.
use super::ProposalConfig;
use super::block::{Block, KvSlot};
use super::condition::{Condition, TextPrefix, key_padding};
use crate::config::ConfigError;
use crate::error::TesseraError;
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
            text: self.text.as_ref().map(|t| t.init(e, device)),
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
    /// The prompt's prefix (text-to-image networks only).
    text: Option<TextPrefix>,
    blocks: Vec<Block>,
    ln_f: LayerNorm,
    head: Linear,
    n_head: usize,
}

/// Keys and values of every layer for the positions seen so far: `[b, n_head, t, head_dim]`.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    layers: Vec<KvSlot>,
    /// Positions of the condition (1 for a class, `n_ctx` for a prompt) and the prompt's padding.
    prefix: usize,
    pad: Option<Tensor<2, Bool>>,
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

    /// The blocks, then the head on positions `from..` only (the prompt's positions predict nothing).
    fn logits(&self, mut x: Tensor<3>, mut cache: Option<&mut KvCache>, key_pad: Option<&Tensor<2, Bool>>, from: usize) -> Tensor<3> {
        for (i, block) in self.blocks.iter().enumerate() {
            let slot = cache.as_deref_mut().map(|c| {
                if c.layers.len() < self.blocks.len() {
                    c.layers.resize(self.blocks.len(), None);
                }
                &mut c.layers[i]
            });
            x = block.forward(x, true, slot, key_pad);
        }
        if from > 0 {
            let t = x.dims()[1];
            x = x.narrow(1, from, t - from);
        }
        self.head.forward(self.ln_f.forward(x))
    }

    /// The condition's positions `[b, p, e]` and the prompt's padding `[b, p]` (none for a class).
    fn prefix(&self, cond: &Condition) -> Result<(Tensor<3>, Option<Tensor<2, Bool>>), TesseraError> {
        match (cond, &self.text) {
            (Condition::Class(c), None) => Ok((self.embed(Some(c.clone()), None, 0), None)),
            (Condition::Text(t), Some(prefix)) => prefix.forward(t).map(|(x, pad)| (x, Some(pad))),
            (Condition::Class(_), Some(_)) => Err(TesseraError::InvalidOption("this network is text-conditional: give a prompt, not a class".into())),
            (Condition::Text(_), None) => Err(TesseraError::InvalidOption("this network is class-conditional: give a class, not a prompt".into())),
        }
    }

    /// Full (training) forward: classes `[b]`, tokens `[b, t]` with t < block_size ->
    /// logits `[b, t + 1, vocab]`; position i predicts token i.
    pub fn forward(&self, classes: Tensor<1, Int>, tokens: Tensor<2, Int>) -> Tensor<3> {
        let x = if tokens.dims()[1] == 0 { self.embed(Some(classes), None, 0) } else { self.embed(Some(classes), Some(tokens), 0) };
        self.logits(x, None, None, 0)
    }

    /// [`Gpt::forward`] for any condition: logits `[b, t + 1, vocab]`, row i predicting token i.
    pub fn forward_with(&self, cond: &Condition, tokens: Tensor<2, Int>) -> Result<Tensor<3>, TesseraError> {
        if let Condition::Class(c) = cond && self.text.is_none() {
            return Ok(self.forward(c.clone(), tokens));
        }
        let (prefix, pad) = self.prefix(cond)?;
        let p = prefix.dims()[1];
        let t = tokens.dims()[1];
        // image token j sits at image position j + 1 (as in class networks, whose class is at 0)
        let x = if t == 0 { prefix } else { Tensor::cat(vec![prefix, self.embed(None, Some(tokens), 1)], 1) };
        let key_pad = pad.map(|m| key_padding(&m, t));
        Ok(self.logits(x, None, key_pad.as_ref(), p - 1))
    }

    /// Cross-entropy of predicting every token of `tokens` (`[b, block_size]`) from the class and
    /// the tokens before it.
    pub fn loss(&self, classes: Tensor<1, Int>, tokens: Tensor<2, Int>) -> Tensor<1> {
        let [b, t] = tokens.dims();
        let logits = self.forward(classes, tokens.clone().narrow(1, 0, t - 1));
        Self::cross_entropy(logits, tokens, b, t)
    }

    /// [`Gpt::loss`] for any condition.
    pub fn loss_with(&self, cond: &Condition, tokens: Tensor<2, Int>) -> Result<Tensor<1>, TesseraError> {
        let [b, t] = tokens.dims();
        let logits = self.forward_with(cond, tokens.clone().narrow(1, 0, t - 1))?;
        Ok(Self::cross_entropy(logits, tokens, b, t))
    }

    fn cross_entropy(logits: Tensor<3>, tokens: Tensor<2, Int>, b: usize, t: usize) -> Tensor<1> {
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
        cache.prefix = 1;
        let logits = self.logits(x, Some(cache), None, 0);
        let [b, _, v] = logits.dims();
        logits.reshape([b, v])
    }

    /// [`Gpt::step`] for any condition: the first step (empty cache) feeds the whole condition.
    pub fn step_with(&self, cache: &mut KvCache, cond: &Condition, prev: Option<Tensor<1, Int>>) -> Result<Tensor<2>, TesseraError> {
        if let Condition::Class(c) = cond && self.text.is_none() {
            return Ok(self.step(cache, c.clone(), prev));
        }
        let logits = match prev {
            None => {
                let (prefix, pad) = self.prefix(cond)?;
                let p = prefix.dims()[1];
                cache.prefix = p;
                cache.pad = pad.clone();
                self.logits(prefix, Some(cache), pad.as_ref(), p - 1)
            }
            Some(tok) => {
                let b = tok.dims()[0];
                let start = cache.len();
                if cache.prefix == 0 || start < cache.prefix {
                    return Err(TesseraError::InvalidTokens("a token step before the condition was fed".into()));
                }
                let x = self.embed(None, Some(tok.reshape([b, 1])), start + 1 - cache.prefix);
                let key_pad = cache.pad.as_ref().map(|m| key_padding(m, start + 1 - cache.prefix));
                self.logits(x, Some(cache), key_pad.as_ref(), 0)
            }
        };
        let [b, _, v] = logits.dims();
        Ok(logits.reshape([b, v]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> (Gpt, Device) {
        let d = Device::flex();
        d.seed(3);
        (ProposalConfig { vocab_size: 11, num_classes: 3, block_size: 6, n_layer: 2, n_head: 2, n_embd: 16, text: None }.init_gpt(&d).unwrap(), d)
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
