//! Pixel decoder: latent grid `[b, latent_dim, g, g]` -> image `[b, c, 4g, 4g]` in [-1, 1].
//! Shared by every tokenizer: VQGAN, FSQ, VQ-KD and Cluster all decode through this module.
use crate::config::conv_params;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::PaddingConfig2d;
use burn::prelude::*;
use burn::tensor::activation::silu;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DecoderConfig {
    pub latent_dim: usize,
    /// Channel width at full resolution; twice this at the 8x8 and 16x16 stages.
    pub channels: usize,
    pub out_channels: usize,
    pub output: DecoderOutput,
}

/// How the last layer maps to pixels.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum DecoderOutput {
    /// tanh: bounded and smooth, right for MSE. With L1 it collapses: most pixels are background
    /// (-1), L1's constant optimum is that median, and the tanh saturates there with no gradient left.
    #[default]
    Tanh,
    /// A plain conv, clamped to [-1, 1] only at inference (VQGAN's decoder): L1 keeps its gradients.
    Linear,
}

impl DecoderConfig {
    /// Parameter count (sizes are bounded by the tokenizer's `validate` first).
    pub fn params(&self) -> u128 {
        let (c, c2) = (self.channels, self.channels * 2);
        conv_params(3, self.latent_dim, c2) + 2 * conv_params(3, c2, c2) + conv_params(3, c2, c) + conv_params(3, c, self.out_channels)
    }
    pub fn init(&self, device: &Device) -> Decoder {
        let (c, c2) = (self.channels, self.channels * 2);
        let same = |i, o| Conv2dConfig::new([i, o], [3, 3]).with_padding(PaddingConfig2d::Same).init(device);
        Decoder {
            conv_in: same(self.latent_dim, c2),
            mid: same(c2, c2),
            up1: same(c2, c2),
            up2: same(c2, c),
            conv_out: same(c, self.out_channels),
            linear_output: self.output == DecoderOutput::Linear,
        }
    }
}

#[derive(Module, Debug)]
pub struct Decoder {
    conv_in: Conv2d,
    mid: Conv2d,
    up1: Conv2d,
    up2: Conv2d,
    /// The last layer: VQGAN's adaptive GAN weight compares gradients at its weight.
    pub conv_out: Conv2d,
    linear_output: bool,
}

/// Nearest-neighbour 2x upsampling by reshape + broadcast: plain tensor ops that every backend
/// (flex, WebGPU, autodiff) supports identically.
pub fn upsample2x(x: Tensor<4>) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    x.reshape([b, c, h, 1, w, 1]).expand([b, c, h, 2, w, 2]).reshape([b, c, h * 2, w * 2])
}

impl Decoder {
    /// Image in [-1, 1] (inference).
    pub fn forward(&self, z: Tensor<4>) -> Tensor<4> {
        let y = self.head(self.features(z));
        if self.linear_output { y.clamp(-1.0, 1.0) } else { y }
    }
    /// Everything before the last layer: `[b, channels, s, s]`.
    pub fn features(&self, z: Tensor<4>) -> Tensor<4> {
        let x = silu(self.conv_in.forward(z));
        let x = x.clone() + silu(self.mid.forward(x));
        let x = silu(self.up1.forward(upsample2x(x)));
        silu(self.up2.forward(upsample2x(x)))
    }
    /// The last layer: features -> image (in [-1, 1] for tanh; unbounded for a linear output,
    /// which training losses see as is).
    pub fn head(&self, h: Tensor<4>) -> Tensor<4> {
        let y = self.conv_out.forward(h);
        if self.linear_output { y } else { y.tanh() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn upsample_repeats_pixels() {
        let d = Device::flex();
        let x = Tensor::<4>::from_data(TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0], [1, 1, 2, 2]), &d);
        let y: Vec<f32> = upsample2x(x).into_data().try_to_vec().unwrap();
        assert_eq!(y, vec![1., 1., 2., 2., 1., 1., 2., 2., 3., 3., 4., 4., 3., 3., 4., 4.]);
    }

    #[test]
    fn linear_output_is_clamped_only_at_inference() {
        let d = Device::flex();
        let cfg = |output| DecoderConfig { latent_dim: 2, channels: 4, out_channels: 1, output };
        let z = Tensor::<4>::ones([1, 2, 8, 8], &d).mul_scalar(50.0);
        let lin = cfg(DecoderOutput::Linear).init(&d);
        let raw: Vec<f32> = lin.head(lin.features(z.clone())).into_data().try_to_vec().unwrap();
        let out: Vec<f32> = lin.forward(z.clone()).into_data().try_to_vec().unwrap();
        // Large features (the head is one conv, so its output scales with them) whatever the random init.
        let big = |m: &Decoder| -> Vec<f32> { m.head(m.features(z.clone()).mul_scalar(1e4)).into_data().try_to_vec().unwrap() };
        assert!(big(&lin).iter().any(|v| v.abs() > 1.0), "the training head is unbounded");
        assert!(out.iter().all(|v| (-1.0..=1.0).contains(v)), "inference output is clamped");
        for (r, o) in raw.iter().zip(&out) {
            assert_eq!(*o, r.clamp(-1.0, 1.0));
        }
        let tanh = cfg(DecoderOutput::Tanh).init(&d);
        assert!(big(&tanh).iter().all(|v| (-1.0..=1.0).contains(v)));
        // Configs written before the option existed decode with tanh.
        let old: crate::tokenizer::vqgan::VqganConfig = serde_json::from_str(
            r#"{"image_channels":1,"image_size":32,"grid":8,"channels":32,"codebook_size":256,"code_dim":16,"commitment":0.25}"#,
        )
        .unwrap();
        assert_eq!(old.decoder_output, DecoderOutput::Tanh);
    }
}
