//! What a proposal network is conditioned on. A class-conditional network puts one class embedding
//! before the image tokens. A text-conditional one (text-to-image) puts the prompt's token states
//! there instead: a prefix of `n_ctx` positions (LlamaGen's T2I way: the image tokens attend to the
//! text as to earlier tokens, so AR, NAR, the KV cache and guidance work unchanged), projected to the
//! network's width, with the prompt's padding masked out of attention. A prefix rather than
//! cross-attention: the same block serves every network here, and at 4 layers x 128 a separate
//! cross-attention per layer would add a third of the parameters for the same information.
//!
//! The prompt's states come from one of two encoders (compared in the T2I table):
//! - `Learned`: a small transformer over a BPE vocabulary learned from the captions, trained jointly
//!   with the proposal network; its weights are part of the proposal network's file;
//! - `Pretrained`: all-MiniLM-L6-v2 (`text::minilm`), frozen, outside the proposal network (shared by
//!   every bundle that uses it); only the projection of its 384-wide states is trained here.
use super::block::Block;
use crate::config::{Check, ConfigError, limits, linear_params};
use crate::error::TesseraError;
use burn::nn::{Embedding, EmbeddingConfig, Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// The text side of a text-conditional proposal network.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TextConditionConfig {
    /// Text positions: every prompt is `[CLS] ... [SEP]`, cut or padded to this many tokens.
    pub n_ctx: usize,
    pub encoder: TextEncoderSpec,
}

/// Which text encoder produces the prompt's states.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum TextEncoderSpec {
    /// Trained jointly with the proposal network over an in-project vocabulary.
    Learned { vocab_size: usize, n_embd: usize, n_layer: usize, n_head: usize },
    /// A frozen pretrained encoder (`name`, e.g. `all-MiniLM-L6-v2`) whose states are `width` wide.
    Pretrained { name: String, width: usize },
}

impl TextConditionConfig {
    /// Width of a pretrained encoder's states (`None`: the learned encoder makes its own).
    pub fn given_width(&self) -> Option<usize> {
        match &self.encoder {
            TextEncoderSpec::Pretrained { width, .. } => Some(*width),
            TextEncoderSpec::Learned { .. } => None,
        }
    }
    /// Width of the states the prefix projects.
    pub fn state_width(&self) -> usize {
        match &self.encoder {
            TextEncoderSpec::Learned { n_embd, .. } => *n_embd,
            TextEncoderSpec::Pretrained { width, .. } => *width,
        }
    }
    pub fn params(&self, n_embd: usize) -> u128 {
        let own = match &self.encoder {
            TextEncoderSpec::Learned { vocab_size, n_embd: w, n_layer, .. } => {
                (*vocab_size + self.n_ctx) as u128 * *w as u128 + *n_layer as u128 * super::block::params(*w, 4 * w) + 2 * *w as u128
            }
            TextEncoderSpec::Pretrained { .. } => 0,
        };
        own + linear_params(self.state_width(), n_embd) + (self.n_ctx + 1) as u128 * n_embd as u128
    }
    pub fn validate(&self, model: &str) -> Result<(), ConfigError> {
        let c = Check::new(format!("{model} text condition"));
        c.range("n_ctx", self.n_ctx, 3, 512)?;
        match &self.encoder {
            TextEncoderSpec::Learned { vocab_size, n_embd, n_layer, n_head } => {
                c.range("vocab_size", *vocab_size, 5, crate::text::vocab::MAX_VOCAB)?;
                c.range("n_embd", *n_embd, 1, limits::WIDTH)?;
                c.range("n_layer", *n_layer, 0, limits::LAYERS)?;
                c.range("n_head", *n_head, 1, *n_embd)?;
                c.that(n_embd % n_head == 0, || format!("n_head {n_head} must divide n_embd {n_embd}"))?;
            }
            TextEncoderSpec::Pretrained { name, width } => {
                c.that(!name.is_empty() && name.len() <= 100, || "the pretrained encoder needs a name".into())?;
                c.range("width", *width, 1, limits::WIDTH)?;
            }
        }
        Ok(())
    }
    pub(crate) fn init(&self, n_embd: usize, device: &Device) -> TextPrefix {
        let normal = |n: usize, w: usize| normal_embedding(n, w, device);
        let encoder = match &self.encoder {
            TextEncoderSpec::Learned { vocab_size, n_embd: w, n_layer, n_head } => Some(TextTransformer::new(*vocab_size, self.n_ctx, *w, *n_layer, *n_head, device)),
            TextEncoderSpec::Pretrained { .. } => None,
        };
        TextPrefix {
            encoder,
            proj: LinearConfig::new(self.state_width(), n_embd).init(device),
            pos: normal(self.n_ctx, n_embd),
            start: normal(1, n_embd),
        }
    }
}

/// An `n x w` embedding table initialised N(0, 0.02) (GPT-2's init, as the proposal networks').
fn normal_embedding(n: usize, w: usize, device: &Device) -> Embedding {
    EmbeddingConfig::new(n, w).with_initializer(Initializer::Normal { mean: 0.0, std: 0.02 }).init(device)
}

/// A prompt ready for the network: ids `[b, n_ctx]` (`[CLS] ... [SEP]` then padding), `pad` `[b,
/// n_ctx]` true at padding, and for a pretrained encoder its states `[b, n_ctx, width]`.
#[derive(Debug, Clone)]
pub struct TextInput {
    pub ids: Tensor<2, Int>,
    pub pad: Tensor<2, Bool>,
    pub states: Option<Tensor<3>>,
}

impl TextInput {
    /// Prompts padded to `n_ctx` positions: each row's ids (`[CLS] ... [SEP]`, 1..=`n_ctx` of them)
    /// and, for a pretrained encoder of state width `width`, its states (`ids.len() x width`,
    /// row-major). The one place prompts become tensors (training, sampling, evaluation).
    pub fn padded(rows: &[(&[u32], Option<&[f32]>)], n_ctx: usize, width: Option<usize>, device: &Device) -> Result<Self, TesseraError> {
        let b = rows.len();
        let (mut ids, mut pad) = (Vec::with_capacity(b * n_ctx), Vec::with_capacity(b * n_ctx));
        let mut states = width.map(|w| vec![0f32; b * n_ctx * w]);
        for (r, (row, s)) in rows.iter().enumerate() {
            if row.is_empty() || row.len() > n_ctx {
                return Err(TesseraError::InvalidTokens(format!("a prompt of {} text tokens; this model takes 1..={n_ctx}", row.len())));
            }
            ids.extend(row.iter().map(|&v| v as i64).chain(std::iter::repeat_n(0, n_ctx - row.len())));
            pad.extend((0..n_ctx).map(|j| j >= row.len()));
            if let (Some(w), Some(out)) = (width, states.as_mut()) {
                let s = s.filter(|s| s.len() == row.len() * w).ok_or_else(|| TesseraError::InvalidTokens(format!("the prompt needs the text encoder's states ({} x {w})", row.len())))?;
                out[r * n_ctx * w..r * n_ctx * w + s.len()].copy_from_slice(s);
            }
        }
        Ok(TextInput {
            ids: Tensor::from_data(TensorData::new(ids, [b, n_ctx]), device),
            pad: Tensor::from_data(TensorData::new(pad, [b, n_ctx]), device),
            states: states.zip(width).map(|(s, w)| Tensor::from_data(TensorData::new(s, [b, n_ctx, w]), device)),
        })
    }
}

/// What to condition on, one row per image.
#[derive(Debug, Clone)]
pub enum Condition {
    /// Class ids `[b]` (the null class for the unconditional rows of guidance).
    Class(Tensor<1, Int>),
    /// A prompt per row (the empty prompt for the unconditional rows).
    Text(TextInput),
}

impl Condition {
    pub fn batch(&self) -> usize {
        match self {
            Condition::Class(c) => c.dims()[0],
            Condition::Text(t) => t.ids.dims()[0],
        }
    }

    /// Rows `start..start + len` on `device` (a data-parallel share of a training batch).
    pub fn rows(&self, start: usize, len: usize, device: &Device) -> Condition {
        match self {
            Condition::Class(c) => Condition::Class(c.clone().narrow(0, start, len).to_device(device)),
            Condition::Text(t) => Condition::Text(TextInput {
                ids: t.ids.clone().narrow(0, start, len).to_device(device),
                pad: t.pad.clone().narrow(0, start, len).to_device(device),
                states: t.states.as_ref().map(|s| s.clone().narrow(0, start, len).to_device(device)),
            }),
        }
    }
}

/// The in-project text encoder: token + position embeddings, bidirectional blocks (padding masked),
/// a final LayerNorm.
#[derive(Module, Debug)]
pub struct TextTransformer {
    tok: Embedding,
    pos: Embedding,
    blocks: Vec<Block>,
    ln: LayerNorm,
}

impl TextTransformer {
    /// `n_layer` bidirectional blocks of width `n_embd` over `vocab_size` tokens at `n_ctx` positions.
    pub(crate) fn new(vocab_size: usize, n_ctx: usize, n_embd: usize, n_layer: usize, n_head: usize, device: &Device) -> Self {
        let normal = |n: usize, w: usize| normal_embedding(n, w, device);
        TextTransformer {
            tok: normal(vocab_size, n_embd),
            pos: normal(n_ctx, n_embd),
            blocks: (0..n_layer).map(|_| Block::new(n_embd, n_head, device)).collect(),
            ln: LayerNormConfig::new(n_embd).init(device),
        }
    }

    /// Token states `[b, t, n_embd]` of prompts `ids` `[b, t]` (`pad` true at padding).
    pub(crate) fn forward(&self, ids: Tensor<2, Int>, pad: &Tensor<2, Bool>) -> Tensor<3> {
        let [b, t] = ids.dims();
        let pos = Tensor::<1, Int>::arange(0..t as i64, &ids.device()).reshape([1, t]);
        let mut x = self.tok.forward(ids);
        let e = x.dims()[2];
        x = x + self.pos.forward(pos).expand([b, t, e]);
        for block in &self.blocks {
            x = block.forward(x, false, None, Some(pad));
        }
        self.ln.forward(x)
    }
}

/// The prompt as a prefix of the proposal network's sequence: states (from the learned encoder, or
/// given), projected to the network's width, plus a learned position per text slot, then one
/// learned start-of-image slot. Prompts are right-padded, so the last text slot may be padding;
/// the AR network reads its first prediction from the start slot, which every prompt has.
#[derive(Module, Debug)]
pub struct TextPrefix {
    encoder: Option<TextTransformer>,
    proj: Linear,
    pos: Embedding,
    start: Embedding,
}

impl TextPrefix {
    /// The prefix `[b, n_ctx + 1, n_embd]` for `text` and its key padding `[b, n_ctx + 1]`, checked
    /// against the sizes this prefix was built for.
    pub fn forward(&self, text: &TextInput) -> Result<(Tensor<3>, Tensor<2, Bool>), TesseraError> {
        let [b, t] = text.ids.dims();
        let n_ctx = self.pos.weight.dims()[0];
        let bad = |m: String| Err(TesseraError::InvalidTokens(m));
        if t != n_ctx || text.pad.dims() != [b, t] {
            return bad(format!("a prompt of {t} text positions (pad {:?}); this network takes {n_ctx}", text.pad.dims()));
        }
        let states = match (&self.encoder, &text.states) {
            (Some(enc), _) => enc.forward(text.ids.clone(), &text.pad),
            (None, Some(s)) => {
                let width = self.proj.weight.dims()[0];
                if s.dims() != [b, t, width] {
                    return bad(format!("text states of shape {:?}; expected [{b}, {t}, {width}]", s.dims()));
                }
                s.clone()
            }
            (None, None) => return bad("this network needs the pretrained text encoder's states".into()),
        };
        let x = self.proj.forward(states);
        let e = x.dims()[2];
        let pos = Tensor::<1, Int>::arange(0..t as i64, &x.device()).reshape([1, t]);
        let x = x + self.pos.forward(pos).expand([b, t, e]);
        let start = self.start.weight.val().reshape([1, 1, e]).expand([b, 1, e]);
        Ok((Tensor::cat(vec![x, start], 1), key_padding(&text.pad, 1)))
    }
}

/// `[b, prefix + rest]` key padding: the prompt's padding, then `rest` real positions.
pub fn key_padding(pad: &Tensor<2, Bool>, rest: usize) -> Tensor<2, Bool> {
    let [b, _] = pad.dims();
    if rest == 0 {
        return pad.clone();
    }
    Tensor::cat(vec![pad.clone(), Tensor::<2, Int>::zeros([b, rest], &pad.device()).bool()], 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proposal::ProposalConfig;
    use crate::proposal::gpt::KvCache;

    fn cfg(encoder: TextEncoderSpec) -> ProposalConfig {
        ProposalConfig { vocab_size: 11, num_classes: 1, block_size: 6, n_layer: 2, n_head: 2, n_embd: 16, text: Some(TextConditionConfig { n_ctx: 5, encoder }) }
    }
    fn learned() -> TextEncoderSpec {
        TextEncoderSpec::Learned { vocab_size: 20, n_embd: 8, n_layer: 1, n_head: 2 }
    }
    /// Prompts `[CLS] w.. [SEP]` padded to 5 with `filler` (any id: padding must not matter).
    fn prompts(rows: &[&[i64]], filler: i64, d: &Device) -> TextInput {
        let mut ids = vec![];
        let mut pad = vec![];
        for r in rows {
            ids.extend(r.iter().copied().chain(std::iter::repeat(filler).take(5 - r.len())));
            pad.extend((0..5).map(|i| i >= r.len()));
        }
        let b = rows.len();
        TextInput { ids: Tensor::from_data(TensorData::new(ids, [b, 5]), d), pad: Tensor::from_data(TensorData::new(pad, [b, 5]), d), states: None }
    }
    fn toks(v: &[i64], b: usize, d: &Device) -> Tensor<2, Int> {
        Tensor::from_data(TensorData::new(v.to_vec(), [b, v.len() / b]), d)
    }
    fn vals<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().convert::<f32>().try_to_vec().unwrap()
    }
    fn close(a: &[f32], b: &[f32]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-4)
    }

    #[test]
    fn a_text_prefix_ignores_its_padding_and_the_kv_cache_matches_the_full_pass() {
        let d = Device::flex();
        d.seed(7);
        let gpt = cfg(learned()).init_gpt(&d).unwrap();
        let rows: [&[i64]; 2] = [&[2, 7, 3], &[2, 9, 11, 4, 3]];
        let t = toks(&[1, 4, 6, 2, 5, 0, 3, 3], 2, &d);
        let a = vals(gpt.forward_with(&Condition::Text(prompts(&rows, 0, &d)), t.clone()).unwrap());
        let b = vals(gpt.forward_with(&Condition::Text(prompts(&rows, 13, &d)), t.clone()).unwrap());
        assert_eq!(a.len(), 2 * 5 * 11, "[b, t + 1, vocab]");
        assert!(close(&a, &b), "padding ids changed the logits");
        // a different word changes them
        let c = vals(gpt.forward_with(&Condition::Text(prompts(&[&[2, 8, 3], rows[1]], 0, &d)), t.clone()).unwrap());
        assert!(!close(&a[..55], &c[..55]) && close(&a[55..], &c[55..]));
        // step by step with the cache: the same logits
        let cond = Condition::Text(prompts(&rows, 0, &d));
        let mut cache = KvCache::default();
        let mut stepped = vals(gpt.step_with(&mut cache, &cond, None).unwrap());
        let tv: Vec<i64> = t.clone().into_data().convert::<i64>().try_to_vec().unwrap();
        let mut rows_out = vec![stepped.clone()];
        for j in 0..4 {
            let prev = Tensor::<1, Int>::from_data(TensorData::new(vec![tv[j], tv[4 + j]], [2]), &d);
            stepped = vals(gpt.step_with(&mut cache, &cond, Some(prev)).unwrap());
            rows_out.push(stepped.clone());
        }
        for (j, r) in rows_out.iter().enumerate() {
            for b in 0..2 {
                let full = &a[(b * 5 + j) * 11..(b * 5 + j + 1) * 11];
                assert!(close(&r[b * 11..(b + 1) * 11], full), "step {j} row {b}");
            }
        }
        // and the loss runs through the same path
        let loss: f32 = gpt.loss_with(&cond, toks(&[1, 4, 6, 2, 5, 0, 5, 0, 3, 3, 1, 2], 2, &d)).unwrap().into_scalar();
        assert!(loss.is_finite() && loss > 0.0);
    }

    #[test]
    fn maskgit_with_a_prompt_ignores_padding_and_sees_the_prompt() {
        let d = Device::flex();
        d.seed(8);
        let mg = cfg(learned()).init_maskgit(&d).unwrap();
        let t = toks(&[11, 4, 11, 2, 5, 0, 11, 11, 3, 3, 11, 1], 2, &d);
        let rows: [&[i64]; 2] = [&[2, 7, 3], &[2, 9, 3]];
        let a = vals(mg.forward_with(&Condition::Text(prompts(&rows, 0, &d)), t.clone()).unwrap());
        let b = vals(mg.forward_with(&Condition::Text(prompts(&rows, 17, &d)), t.clone()).unwrap());
        assert_eq!(a.len(), 2 * 6 * 11);
        assert!(close(&a, &b));
        let c = vals(mg.forward_with(&Condition::Text(prompts(&[&[2, 7, 3], &[2, 10, 3]], 0, &d)), t).unwrap());
        assert!(close(&a[..66], &c[..66]) && !close(&a[66..], &c[66..]));
    }

    #[test]
    fn wrong_conditions_are_errors_not_panics() {
        let d = Device::flex();
        let gpt = cfg(learned()).init_gpt(&d).unwrap();
        let class_gpt = ProposalConfig { text: None, ..cfg(learned()) }.init_gpt(&d).unwrap();
        let cls = Condition::Class(Tensor::from_data(TensorData::new(vec![0i64], [1]), &d));
        let t = toks(&[1, 2], 1, &d);
        assert!(matches!(gpt.forward_with(&cls, t.clone()), Err(TesseraError::InvalidOption(_))));
        assert!(matches!(class_gpt.forward_with(&Condition::Text(prompts(&[&[2, 3]], 0, &d)), t.clone()), Err(TesseraError::InvalidOption(_))));
        // a prompt of the wrong length
        let short = TextInput { ids: toks(&[2, 3, 0], 1, &d), pad: Tensor::from_data(TensorData::new(vec![false, false, true], [1, 3]), &d), states: None };
        assert!(matches!(gpt.forward_with(&Condition::Text(short), t.clone()), Err(TesseraError::InvalidTokens(_))));
        // a pretrained-encoder network without (or with mis-shaped) states
        let pre = cfg(TextEncoderSpec::Pretrained { name: "all-MiniLM-L6-v2".into(), width: 12 }).init_maskgit(&d).unwrap();
        assert!(pre.forward_with(&Condition::Text(prompts(&[&[2, 3]], 0, &d)), toks(&[1; 6], 1, &d)).is_err());
        let mut p = prompts(&[&[2, 3]], 0, &d);
        p.states = Some(Tensor::zeros([1, 5, 7], &d));
        assert!(pre.forward_with(&Condition::Text(p.clone()), toks(&[1; 6], 1, &d)).is_err());
        p.states = Some(Tensor::ones([1, 5, 12], &d));
        assert_eq!(pre.forward_with(&Condition::Text(p), toks(&[1; 6], 1, &d)).unwrap().dims(), [1, 6, 11]);
        // a token step before the prompt was fed
        let mut cache = KvCache::default();
        assert!(gpt.step_with(&mut cache, &Condition::Text(prompts(&[&[2, 3]], 0, &d)), Some(Tensor::from_data(TensorData::new(vec![1i64], [1]), &d))).is_err());
        // configs check their text side
        for bad in [TextEncoderSpec::Learned { vocab_size: 2, n_embd: 8, n_layer: 1, n_head: 2 }, TextEncoderSpec::Learned { vocab_size: 20, n_embd: 8, n_layer: 1, n_head: 3 }, TextEncoderSpec::Pretrained { name: String::new(), width: 4 }] {
            assert!(cfg(bad).validate("ar proposal").is_err());
        }
        assert!(ProposalConfig { text: Some(TextConditionConfig { n_ctx: 1, encoder: learned() }), ..cfg(learned()) }.validate("ar proposal").is_err());
    }

    #[test]
    fn parameter_counts_include_the_text_side() {
        let d = Device::flex();
        for c in [cfg(learned()), cfg(TextEncoderSpec::Pretrained { name: "m".into(), width: 12 })] {
            let gpt = c.init_gpt(&d).unwrap();
            // params() is an upper bound over AR and NAR; the GPT has no mask token, pos row, head bias
            let bound = c.params();
            let n = gpt.num_params() as u128;
            assert!(n <= bound && bound - n <= (c.n_embd * 3 + c.vocab_size) as u128, "{n} vs {bound}");
        }
    }
}
