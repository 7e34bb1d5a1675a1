//! VQGAN's training losses (Esser et al. 2021) for the pixel-reconstruction tokenizers (VQ, FSQ):
//! L1 + a perceptual loss + a PatchGAN hinge loss whose weight adapts to the ratio of gradient
//! norms at the decoder's last layer, with the discriminator switched on late in training.
//! The perceptual loss is LPIPS-style (Zhang et al. 2018) on an in-project feature network — the
//! frozen classifier's conv activations, unit-normalised per position, squared differences averaged
//! — with uniform layer weights, since LPIPS's learned weights come from a download.
use super::classifier::Classifier;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::PaddingConfig2d;
use burn::prelude::*;
use burn::tensor::activation::{leaky_relu, relu};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VqganLossConfig {
    pub perceptual_weight: f64,
    /// Scale of the adaptive GAN weight (taming-transformers: 0.8 for its disc_weight).
    pub disc_weight: f64,
    /// Generator steps before the discriminator (and the GAN term) start.
    pub disc_start: usize,
    pub disc_channels: usize,
}

impl Default for VqganLossConfig {
    fn default() -> Self {
        Self { perceptual_weight: 1.0, disc_weight: 0.8, disc_start: 300, disc_channels: 32 }
    }
}

/// PatchGAN discriminator: one real/fake logit per overlapping patch (8x8 map for 32x32 input).
#[derive(Module, Debug)]
pub struct PatchDiscriminator {
    conv1: Conv2d,
    conv2: Conv2d,
    conv3: Conv2d,
}

impl PatchDiscriminator {
    pub fn new(in_channels: usize, c: usize, device: &Device) -> Self {
        let down = |i, o| Conv2dConfig::new([i, o], [4, 4]).with_stride([2, 2]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)).init(device);
        PatchDiscriminator {
            conv1: down(in_channels, c),
            conv2: down(c, 2 * c),
            conv3: Conv2dConfig::new([2 * c, 1], [3, 3]).with_padding(PaddingConfig2d::Same).init(device),
        }
    }
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = leaky_relu(self.conv1.forward(x), 0.2);
        let x = leaky_relu(self.conv2.forward(x), 0.2);
        self.conv3.forward(x)
    }
}

/// Discriminator hinge loss: mean(relu(1 - D(x))) + mean(relu(1 + D(x_hat))), halved as in taming.
pub fn hinge_d_loss(real: Tensor<4>, fake: Tensor<4>) -> Tensor<1> {
    (relu(real.neg().add_scalar(1.0)).mean() + relu(fake.add_scalar(1.0)).mean()).mul_scalar(0.5)
}

/// Generator's GAN loss: -mean(D(x_hat)).
pub fn generator_loss(fake: Tensor<4>) -> Tensor<1> {
    fake.mean().neg()
}

/// LPIPS-style distance between image batches (`[b, c, s, s]` in [-1, 1]), averaged over the batch.
pub fn perceptual_loss(net: &Classifier, x: Tensor<4>, y: Tensor<4>) -> Tensor<1> {
    let device = x.device();
    let unit = |f: Tensor<4>| {
        let n = f.clone().powi_scalar(2).sum_dim(1).sqrt().add_scalar(1e-10);
        f / n
    };
    let mut total: Option<Tensor<1>> = None;
    for (a, b) in net.feature_maps(x).into_iter().zip(net.feature_maps(y)) {
        let [_, c, _, _] = a.dims();
        // sum over channels, mean over positions and batch
        let d = (unit(a) - unit(b)).powi_scalar(2).mean().mul_scalar(c as f64);
        total = Some(match total {
            Some(t) => t + d,
            None => d,
        });
    }
    total.unwrap_or_else(|| Tensor::zeros([1], &device))
}

/// VQGAN's adaptive weight: `||grad rec|| / (||grad gan|| + 1e-4)`, clamped to [0, 1e4], scaled.
pub fn adaptive_weight(rec_grad_norm: f64, gan_grad_norm: f64, scale: f64) -> f64 {
    (rec_grad_norm / (gan_grad_norm + 1e-4)).clamp(0.0, 1e4) * scale
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::classifier::ClassifierConfig;

    fn map(v: Vec<f32>, d: &Device) -> Tensor<4> {
        let n = v.len();
        Tensor::from_data(TensorData::new(v, [1, 1, 1, n]), d)
    }

    #[test]
    fn hinge_losses_match_closed_form() {
        let d = Device::flex();
        // real logits 2, 0.5 -> relu(1-2)=0, relu(0.5)=0.5 -> mean 0.25; fake -2, 0 -> relu(-1)=0, relu(1)=1 -> 0.5
        let l: f32 = hinge_d_loss(map(vec![2.0, 0.5], &d), map(vec![-2.0, 0.0], &d)).into_scalar();
        assert!((l - 0.5 * (0.25 + 0.5)).abs() < 1e-6);
        let g: f32 = generator_loss(map(vec![1.0, 3.0], &d)).into_scalar();
        assert!((g + 2.0).abs() < 1e-6);
        assert_eq!(adaptive_weight(2.0, 1.0 - 1e-4, 0.8), 1.6);
        assert_eq!(adaptive_weight(1.0, 0.0, 1.0), 1e4);
    }

    #[test]
    fn perceptual_loss_is_zero_for_identical_images_and_grows_with_difference() {
        let d = Device::flex();
        d.seed(4);
        let net = ClassifierConfig { in_channels: 1, channels: 8, num_classes: 3 }.init(&d).unwrap();
        let x = Tensor::<4>::random([2, 1, 32, 32], burn::tensor::Distribution::Uniform(-1.0, 1.0), &d);
        let same: f32 = perceptual_loss(&net, x.clone(), x.clone()).into_scalar();
        assert!(same.abs() < 1e-6);
        let noise = Tensor::<4>::random([2, 1, 32, 32], burn::tensor::Distribution::Normal(0.0, 1.0), &d);
        let small: f32 = perceptual_loss(&net, x.clone(), x.clone() + noise.clone().mul_scalar(0.05)).into_scalar();
        let large: f32 = perceptual_loss(&net, x.clone(), x + noise.mul_scalar(0.5)).into_scalar();
        assert!(0.0 < small && small < large, "{small} {large}");
    }

    #[test]
    fn discriminator_scores_patches() {
        let d = Device::flex();
        let disc = PatchDiscriminator::new(1, 8, &d);
        assert_eq!(disc.forward(Tensor::zeros([3, 1, 32, 32], &d)).dims(), [3, 1, 8, 8]);
    }
}
