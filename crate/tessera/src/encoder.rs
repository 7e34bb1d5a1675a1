//! Convolutional encoder: image `[b, c, 32, 32]` -> latent grid `[b, code_dim, 8, 8]` (downsample 4).
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::PaddingConfig2d;
use burn::prelude::*;
use burn::tensor::activation::silu;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EncoderConfig {
    pub in_channels: usize,
    /// Channel width at full resolution; doubled after the first downsampling.
    pub channels: usize,
    pub latent_dim: usize,
}

impl EncoderConfig {
    pub fn init(&self, device: &Device) -> Encoder {
        let (c, c2) = (self.channels, self.channels * 2);
        let same = |i, o| Conv2dConfig::new([i, o], [3, 3]).with_padding(PaddingConfig2d::Same).init(device);
        // 4x4 kernels with stride 2 halve the resolution exactly (padding 1).
        let down = |i, o| Conv2dConfig::new([i, o], [4, 4]).with_stride([2, 2]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)).init(device);
        Encoder {
            conv_in: same(self.in_channels, c),
            down1: down(c, c2),
            down2: down(c2, c2),
            mid: same(c2, c2),
            conv_out: Conv2dConfig::new([c2, self.latent_dim], [1, 1]).init(device),
        }
    }
}

#[derive(Module, Debug)]
pub struct Encoder {
    conv_in: Conv2d,
    down1: Conv2d,
    down2: Conv2d,
    mid: Conv2d,
    conv_out: Conv2d,
}

impl Encoder {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = silu(self.conv_in.forward(x));
        let x = silu(self.down1.forward(x));
        let x = silu(self.down2.forward(x));
        let x = x.clone() + silu(self.mid.forward(x)); // residual refinement at grid resolution
        self.conv_out.forward(x)
    }
}
