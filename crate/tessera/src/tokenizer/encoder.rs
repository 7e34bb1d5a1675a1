//! The tokenizer's encoder. [`PatchEncoder`] is what a tokenizer needs of any encoder: one feature
//! row per grid cell. The convolutional [`Encoder`] (VQGAN, FSQ, VQ-KD) maps an image
//! `[b, c, s, s]` to a latent grid `[b, latent_dim, s/4, s/4]` (two stride-2 convs); Cluster's
//! encoder is the IU teacher itself (`tokenizer/cluster.rs`).
use crate::config::conv_params;
use crate::ops::grid_to_rows;
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

/// Images `[b, c, s, s]` -> feature rows `[b * g * g, dim]` in raster order over the token grid.
pub trait PatchEncoder {
    fn rows(&self, images: Tensor<4>) -> Tensor<2>;
}

/// Downsampling factor of [`Encoder`] (and upsampling factor of the pixel decoder).
pub const DOWNSAMPLE: usize = 4;

impl EncoderConfig {
    /// Parameter count (sizes are bounded by the tokenizer's `validate` first).
    pub fn params(&self) -> u128 {
        let (c, c2) = (self.channels, self.channels * 2);
        conv_params(3, self.in_channels, c) + conv_params(4, c, c2) + conv_params(4, c2, c2) + conv_params(3, c2, c2) + conv_params(1, c2, self.latent_dim)
    }
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

impl PatchEncoder for Encoder {
    fn rows(&self, images: Tensor<4>) -> Tensor<2> {
        grid_to_rows(self.forward(images))
    }
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
