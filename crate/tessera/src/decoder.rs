//! Pixel decoder: latent grid `[b, latent_dim, 8, 8]` -> image `[b, c, 32, 32]` in [-1, 1].
//! Shared by every tokenizer (VQ now; FSQ, VQ-KD and Cluster decode through the same module).
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
}

impl DecoderConfig {
    pub fn init(&self, device: &Device) -> Decoder {
        let (c, c2) = (self.channels, self.channels * 2);
        let same = |i, o| Conv2dConfig::new([i, o], [3, 3]).with_padding(PaddingConfig2d::Same).init(device);
        Decoder {
            conv_in: same(self.latent_dim, c2),
            mid: same(c2, c2),
            up1: same(c2, c2),
            up2: same(c2, c),
            conv_out: same(c, self.out_channels),
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
}

/// Nearest-neighbour 2x upsampling by reshape + broadcast: plain tensor ops that every backend
/// (flex, WebGPU, autodiff) supports identically.
pub fn upsample2x(x: Tensor<4>) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    x.reshape([b, c, h, 1, w, 1]).expand([b, c, h, 2, w, 2]).reshape([b, c, h * 2, w * 2])
}

impl Decoder {
    pub fn forward(&self, z: Tensor<4>) -> Tensor<4> {
        self.head(self.features(z))
    }
    /// Everything before the last layer: `[b, channels, s, s]`.
    pub fn features(&self, z: Tensor<4>) -> Tensor<4> {
        let x = silu(self.conv_in.forward(z));
        let x = x.clone() + silu(self.mid.forward(x));
        let x = silu(self.up1.forward(upsample2x(x)));
        silu(self.up2.forward(upsample2x(x)))
    }
    /// The last layer: features -> image in [-1, 1].
    pub fn head(&self, h: Tensor<4>) -> Tensor<4> {
        self.conv_out.forward(h).tanh()
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
}
