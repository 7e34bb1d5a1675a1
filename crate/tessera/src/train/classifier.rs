//! A small CNN classifier trained on real images. It measures class consistency of generated
//! samples (the share assigned to the requested class) and is the basis of the in-project
//! evaluator. It is NOT Inception: figures computed with it are named as such.
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::silu;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClassifierConfig {
    pub in_channels: usize,
    pub channels: usize,
    pub num_classes: usize,
}

impl ClassifierConfig {
    pub fn validate(&self) -> Result<(), crate::config::ConfigError> {
        use crate::config::{Check, limits};
        let c = Check::new("classifier");
        c.range("in_channels", self.in_channels, 1, limits::IMAGE_CHANNELS)?;
        c.range("channels", self.channels, 1, limits::WIDTH)?;
        c.range("num_classes", self.num_classes, 1, limits::CLASSES)
    }
    pub fn init(&self, device: &Device) -> Result<Classifier, crate::config::ConfigError> {
        self.validate()?;
        let (c, c2) = (self.channels, self.channels * 2);
        let conv = |i, o, s| Conv2dConfig::new([i, o], [3, 3]).with_stride([s, s]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)).init(device);
        Ok(Classifier {
            conv1: conv(self.in_channels, c, 1),
            conv2: conv(c, c2, 2),
            conv3: conv(c2, c2, 2),
            conv4: conv(c2, c2, 2),
            fc: LinearConfig::new(c2, c2).init(device),
            head: LinearConfig::new(c2, self.num_classes).init(device),
        })
    }
}

#[derive(Module, Debug)]
pub struct Classifier {
    conv1: Conv2d,
    conv2: Conv2d,
    conv3: Conv2d,
    conv4: Conv2d,
    fc: Linear,
    head: Linear,
}

impl Classifier {
    /// Activations of the four conv layers (32, 16, 8 and 4 pixels square): the feature maps of
    /// VQGAN's perceptual loss.
    pub fn feature_maps(&self, x: Tensor<4>) -> Vec<Tensor<4>> {
        let a = silu(self.conv1.forward(x));
        let b = silu(self.conv2.forward(a.clone()));
        let c = silu(self.conv3.forward(b.clone()));
        let d = silu(self.conv4.forward(c.clone()));
        vec![a, b, c, d]
    }
    /// Penultimate features `[b, 2 * channels]` (the evaluator's feature space).
    pub fn features(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self.feature_maps(x).pop().expect("four maps"); // [b, c2, 4, 4]
        let [b, c, _, _] = x.dims();
        silu(self.fc.forward(x.mean_dims(&[2, 3]).reshape([b, c])))
    }
    /// Class logits `[b, num_classes]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.logits(self.features(x))
    }
    /// Class logits from penultimate features (callers that need both run the convs once).
    pub fn logits(&self, features: Tensor<2>) -> Tensor<2> {
        self.head.forward(features)
    }
}
