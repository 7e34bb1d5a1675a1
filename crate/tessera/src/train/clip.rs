//! A tiny CLIP: the in-project text-image agreement scorer of text to image. CLIP's contrastive
//! objective in miniature — an image tower (the evaluator's CNN trunk) and a text tower (a small
//! transformer over a BPE vocabulary of the captions), each projected to a shared unit sphere,
//! trained so that an image and its caption are closer than the other pairs of the batch. It is
//! trained on the training captions apart from every generator and scores samples by the cosine
//! of image and prompt (`CLIPScore_tiny`). It is NOT OpenAI's CLIP: figures are named for it.
use super::classifier::{Classifier, ClassifierConfig};
use crate::config::{Check, ConfigError, limits};
use crate::proposal::condition::{TextInput, TextTransformer};
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TinyClipConfig {
    /// The image tower: the classifier's CNN (its head is unused).
    pub image: ClassifierConfig,
    pub vocab_size: usize,
    pub n_ctx: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    /// Width of the shared embedding space.
    pub embed_dim: usize,
    /// Logits are cosines times this (CLIP's initial 1/0.07, kept fixed: a learned scale drifts on
    /// small batches).
    pub logit_scale: f32,
}

impl TinyClipConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.image.validate()?;
        let c = Check::new("tiny CLIP");
        c.range("vocab_size", self.vocab_size, 5, crate::text::vocab::MAX_VOCAB)?;
        c.range("n_ctx", self.n_ctx, 3, 512)?;
        c.range("n_embd", self.n_embd, 1, limits::WIDTH)?;
        c.range("n_layer", self.n_layer, 0, limits::LAYERS)?;
        c.range("n_head", self.n_head, 1, self.n_embd)?;
        c.that(self.n_embd % self.n_head == 0, || format!("n_head {} must divide n_embd {}", self.n_head, self.n_embd))?;
        c.range("embed_dim", self.embed_dim, 1, limits::WIDTH)?;
        c.that(self.logit_scale.is_finite() && self.logit_scale > 0.0 && self.logit_scale <= 100.0, || format!("logit_scale {} must be in (0, 100]", self.logit_scale))
    }
    pub fn init(&self, device: &Device) -> Result<TinyClip, ConfigError> {
        self.validate()?;
        Ok(TinyClip {
            image: self.image.init(device)?,
            image_proj: LinearConfig::new(2 * self.image.channels, self.embed_dim).init(device),
            text: TextTransformer::new(self.vocab_size, self.n_ctx, self.n_embd, self.n_layer, self.n_head, device),
            text_proj: LinearConfig::new(self.n_embd, self.embed_dim).init(device),
        })
    }
}

#[derive(Module, Debug)]
pub struct TinyClip {
    image: Classifier,
    image_proj: Linear,
    text: TextTransformer,
    text_proj: Linear,
}

fn unit(x: Tensor<2>) -> Tensor<2> {
    let n = x.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-6);
    x / n
}

impl TinyClip {
    /// Unit image embeddings `[b, embed_dim]` of images `[b, c, s, s]` in [-1, 1].
    pub fn embed_images(&self, x: Tensor<4>) -> Tensor<2> {
        unit(self.image_proj.forward(self.image.features(x)))
    }
    /// Unit prompt embeddings `[b, embed_dim]`: the text tower's states averaged over the prompt's
    /// tokens (padding left out).
    pub fn embed_text(&self, t: &TextInput) -> Tensor<2> {
        let [b, n] = t.ids.dims();
        let h = self.text.forward(t.ids.clone(), &t.pad);
        let keep = t.pad.clone().bool_not().float().reshape([b, n, 1]);
        let sum = (h * keep.clone()).sum_dim(1).reshape([b, h_width(&self.text_proj)]);
        let count = keep.sum_dim(1).reshape([b, 1]).clamp_min(1.0);
        unit(self.text_proj.forward(sum / count))
    }
    /// CLIP's symmetric contrastive loss: row i's image and caption are the positive pair.
    pub fn loss(&self, images: Tensor<4>, text: &TextInput, logit_scale: f32) -> Tensor<1> {
        let i = self.embed_images(images);
        let t = self.embed_text(text);
        let b = i.dims()[0];
        let logits = i.matmul(t.transpose()) * logit_scale;
        let target = Tensor::<1, Int>::arange(0..b as i64, &logits.device());
        let ce = burn::nn::loss::CrossEntropyLossConfig::new().init(&logits.device());
        (ce.forward(logits.clone(), target.clone()) + ce.forward(logits.transpose(), target)) / 2.0
    }
}

/// Input width of a projection (its weight is `[in, out]`).
fn h_width(l: &Linear) -> usize {
    l.weight.dims()[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> TinyClipConfig {
        TinyClipConfig { image: ClassifierConfig { in_channels: 3, channels: 4, num_classes: 1 }, vocab_size: 12, n_ctx: 5, n_embd: 8, n_layer: 1, n_head: 2, embed_dim: 6, logit_scale: 14.3 }
    }

    #[test]
    fn embeddings_are_unit_and_ignore_padding() {
        let d = Device::flex();
        d.seed(3);
        let m = cfg().init(&d).unwrap();
        let text = |filler: i64| TextInput {
            ids: Tensor::from_data(TensorData::new(vec![2i64, 7, 3, filler, filler, 2, 5, 6, 9, 3], [2, 5]), &d),
            pad: Tensor::from_data(TensorData::new(vec![false, false, false, true, true, false, false, false, false, false], [2, 5]), &d),
            states: None,
        };
        let a: Vec<f32> = m.embed_text(&text(0)).into_data().convert::<f32>().try_to_vec().unwrap();
        let b: Vec<f32> = m.embed_text(&text(11)).into_data().convert::<f32>().try_to_vec().unwrap();
        assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-5), "padding changed the embedding");
        for row in a.chunks(6) {
            assert!((row.iter().map(|v| v * v).sum::<f32>() - 1.0).abs() < 1e-4);
        }
        let img: Vec<f32> = m.embed_images(Tensor::random([3, 3, 32, 32], burn::tensor::Distribution::Uniform(-1.0, 1.0), &d)).into_data().convert::<f32>().try_to_vec().unwrap();
        assert_eq!(img.len(), 18);
        let loss: f32 = m.loss(Tensor::zeros([2, 3, 32, 32], &d), &text(0), 14.3).into_scalar();
        assert!(loss.is_finite() && loss > 0.0);
        let mut bad = cfg();
        bad.logit_scale = f32::NAN;
        assert!(bad.init(&d).is_err());
    }
}
