//! VQ-KD tokenizer (BEiT v2, Peng et al. 2022): an encoder and a cosine codebook trained to
//! reconstruct a frozen teacher's patch features (not pixels). Codes are L2-normalised and updated
//! by an exponential moving average of the centroids of the vectors assigned to them (k-means
//! initialised); a small feature adaptor predicts the teacher features from the codes. A pixel
//! decoder is then trained separately on the frozen tokens.
use crate::cluster::{l2_normalize, nearest_cosine};
use crate::decoder::{Decoder, DecoderConfig, DecoderOutput};
use crate::encoder::{Encoder, EncoderConfig};
use crate::tokenizer::{grid_to_rows, rows_to_grid};
use burn::module::Param;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::prelude::*;
use burn::tensor::activation::silu;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VqKdConfig {
    pub image_channels: usize,
    pub image_size: usize,
    pub grid: usize,
    pub channels: usize,
    pub codebook_size: usize,
    pub code_dim: usize,
    /// Feature width of the teacher being distilled.
    pub teacher_dim: usize,
    /// Short name of the teacher (e.g. "vit-sup"), for display.
    pub teacher_name: String,
    /// EMA decay of the codebook.
    pub decay: f32,
    pub commitment: f32,
    /// The pixel decoder's output layer (tanh for MSE training, linear for the VQGAN losses).
    #[serde(default)]
    pub decoder_output: DecoderOutput,
}

impl VqKdConfig {
    fn encoder(&self) -> EncoderConfig {
        EncoderConfig { in_channels: self.image_channels, channels: self.channels, latent_dim: self.code_dim }
    }
    pub fn decoder(&self) -> DecoderConfig {
        DecoderConfig { latent_dim: self.code_dim, channels: self.channels, out_channels: self.image_channels, output: self.decoder_output }
    }
    fn codebook(&self, device: &Device) -> Param<Tensor<2>> {
        Param::from_tensor(l2_normalize(Tensor::random([self.codebook_size, self.code_dim], burn::tensor::Distribution::Normal(0.0, 1.0), device)))
    }
    /// The distillation model (encoder, codebook, feature adaptor).
    pub fn init_distill(&self, device: &Device) -> VqKdDistill {
        let same = |i, o| Conv2dConfig::new([i, o], [3, 3]).with_padding(PaddingConfig2d::Same).init(device);
        VqKdDistill {
            encoder: self.encoder().init(device),
            codebook: self.codebook(device),
            adaptor: FeatureAdaptor { conv1: same(self.code_dim, self.teacher_dim), conv2: same(self.teacher_dim, self.teacher_dim) },
            grid: self.grid,
        }
    }
    /// The tokenizer (encoder, codebook, pixel decoder).
    pub fn init(&self, device: &Device) -> VqKdTokenizer {
        VqKdTokenizer { encoder: self.encoder().init(device), codebook: self.codebook(device), decoder: self.decoder().init(device), grid: self.grid }
    }
}

/// Predicts the teacher's features from the quantized codes (training only).
#[derive(Module, Debug)]
pub struct FeatureAdaptor {
    conv1: Conv2d,
    conv2: Conv2d,
}

#[derive(Module, Debug)]
pub struct VqKdDistill {
    pub encoder: Encoder,
    /// Unit-norm codes `[codebook_size, code_dim]`, set by EMA (no gradient reaches it).
    pub codebook: Param<Tensor<2>>,
    pub adaptor: FeatureAdaptor,
    pub grid: usize,
}

pub struct DistillOutput {
    /// 1 - cosine(predicted, teacher) + commitment.
    pub loss: Tensor<1>,
    pub feature_loss: Tensor<1>,
    pub tokens: Tensor<1, Int>,
    /// Normalised encoder outputs `[b * g * g, code_dim]` (detached), for the EMA update.
    pub latents: Tensor<2>,
}

impl VqKdDistill {
    /// `teacher`: the teacher's patch features `[b, g * g, teacher_dim]`.
    pub fn forward(&self, images: Tensor<4>, teacher: Tensor<3>, commitment: f32) -> DistillOutput {
        let b = images.dims()[0];
        let z = l2_normalize(grid_to_rows(self.encoder.forward(images)));
        let codebook = self.codebook.val().detach();
        let tokens = nearest_cosine(z.clone().detach(), codebook.clone());
        let q = codebook.select(0, tokens.clone());
        let q_st = z.clone() + (q.clone() - z.clone()).detach();
        let x = silu(self.adaptor.conv1.forward(rows_to_grid(q_st, b, self.grid)));
        let pred = grid_to_rows(self.adaptor.conv2.forward(x));
        let [_, p, e] = teacher.dims();
        let target = l2_normalize(teacher.reshape([b * p, e]));
        let feature_loss = (l2_normalize(pred) * target).sum_dim(1).mean().neg().add_scalar(1.0);
        let commit = (z.clone() - q).powi_scalar(2).sum_dim(1).mean();
        DistillOutput { loss: feature_loss.clone() + commit.mul_scalar(commitment), feature_loss, tokens, latents: z.detach() }
    }

    /// Replaces the codebook values (EMA update or k-means initialisation), outside autodiff.
    pub fn with_codebook(self, values: Vec<f32>) -> Self {
        let codebook = self.codebook.map(|c| {
            let shape = c.dims();
            let tracked = c.is_autodiff();
            let device = c.without_autodiff().device();
            let new = Tensor::<2>::from_data(TensorData::new(values, shape), &device);
            if tracked { new.autodiff() } else { new }
        });
        Self { codebook, ..self }
    }
}

/// EMA update of a cosine codebook (BEiT v2's norm-EMA): for every code k that received vectors,
/// `c_k <- normalize(decay * c_k + (1 - decay) * normalize(mean of its vectors))`; unused codes stay.
/// `codebook` `[k, d]` and `z` `[n, d]` row-major; `tokens[i]` is the code of row i.
pub fn ema_update(codebook: &mut [f32], d: usize, z: &[f32], tokens: &[usize], decay: f32) {
    let k = codebook.len() / d;
    let mut sums = vec![0f32; k * d];
    let mut counts = vec![0usize; k];
    for (i, &t) in tokens.iter().enumerate() {
        counts[t] += 1;
        sums[t * d..(t + 1) * d].iter_mut().zip(&z[i * d..(i + 1) * d]).for_each(|(s, v)| *s += v);
    }
    let norm = |v: &mut [f32]| {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        v.iter_mut().for_each(|x| *x /= n);
    };
    for j in (0..k).filter(|&j| counts[j] > 0) {
        let mean = &mut sums[j * d..(j + 1) * d];
        norm(mean);
        let c = &mut codebook[j * d..(j + 1) * d];
        c.iter_mut().zip(mean.iter()).for_each(|(c, m)| *c = decay * *c + (1.0 - decay) * m);
        norm(c);
    }
}

#[derive(Module, Debug)]
pub struct VqKdTokenizer {
    pub encoder: Encoder,
    pub codebook: Param<Tensor<2>>,
    pub decoder: Decoder,
    pub grid: usize,
}

impl VqKdTokenizer {
    pub fn encode(&self, images: Tensor<4>) -> Tensor<2, Int> {
        let b = images.dims()[0];
        nearest_cosine(grid_to_rows(self.encoder.forward(images)), self.codebook.val()).reshape([b, self.grid * self.grid])
    }
    pub fn decode(&self, tokens: Tensor<2, Int>) -> Tensor<4> {
        let b = tokens.dims()[0];
        self.decoder.forward(rows_to_grid(self.codebook.val().select(0, tokens.flatten(0, 1)), b, self.grid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_assignment_matches_hand_computation() {
        let d = Device::flex();
        // codes: +x, +y, -x (unit); vectors chosen so that L2 and cosine nearest differ for row 2
        let c = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, 0.0, 0.0, 1.0, -1.0, 0.0], [3, 2]), &d);
        let z = Tensor::<2>::from_data(TensorData::new(vec![3.0f32, 1.0, 0.1, 2.0, -5.0, 4.0, 10.0, 9.0], [4, 2]), &d);
        let t: Vec<i64> = nearest_cosine(z, c).into_data().convert::<i64>().try_to_vec().unwrap();
        // cos to (+x, +y, -x): row0 (.95,.32,-.95) -> 0; row1 (.05,.999,..) -> 1; row2 (-.78,.62,.78) -> 2;
        // row3 (.74,.67,-.74) -> 0 (L2 would also pick 0; row 2 by L2 picks -x as well but via distance 4.1 vs 5.9)
        assert_eq!(t, vec![0, 1, 2, 0]);
    }

    #[test]
    fn ema_update_matches_hand_computation() {
        // two codes in 2-d; code 0 receives (0,1) and (1,0) -> mean direction (1,1)/sqrt2; code 1 unused
        let mut c = vec![1.0f32, 0.0, 0.0, -1.0];
        ema_update(&mut c, 2, &[0.0, 1.0, 1.0, 0.0], &[0, 0], 0.9);
        let s = std::f32::consts::FRAC_1_SQRT_2;
        let (a, b) = (0.9 + 0.1 * s, 0.1 * s);
        let n = (a * a + b * b).sqrt();
        assert!((c[0] - a / n).abs() < 1e-6 && (c[1] - b / n).abs() < 1e-6, "{c:?}");
        assert_eq!(&c[2..], &[0.0, -1.0]);
    }
}
