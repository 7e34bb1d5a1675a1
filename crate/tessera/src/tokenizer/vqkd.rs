//! The VQ-KD tokenizer (BEiT v2, Peng et al. 2022) = conv encoder x cosine codebook x pixel decoder,
//! where the codes are learned by distilling a frozen teacher's patch features (not pixels): the
//! encoder and a small feature adaptor are trained to reconstruct the teacher's features from the
//! quantized codes; the codes are unit-norm and follow an EMA of the vectors assigned to them
//! (k-means initialised). The pixel decoder is then trained separately on the frozen tokens.
use super::decoder::{DecoderConfig, DecoderOutput};
use super::encoder::{Encoder, EncoderConfig};
use super::quantizer::CosineQuantizer;
use super::composition::{Tokenizer, TokenizerConfig, check_image_grid};
use crate::config::{Check, ConfigError, conv_params, limits};
use crate::ops::l2_normalize;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

pub type VqKdTokenizer = Tokenizer<Encoder, CosineQuantizer>;

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
    fn quantizer(&self, device: &Device) -> CosineQuantizer {
        CosineQuantizer::new(l2_normalize(Tensor::random([self.codebook_size, self.code_dim], burn::tensor::Distribution::Normal(0.0, 1.0), device)))
    }
    /// The tokenizer (encoder, codebook, pixel decoder).
    pub fn init(&self, device: &Device) -> Result<VqKdTokenizer, ConfigError> {
        self.validate()?;
        Ok(Tokenizer { encoder: self.encoder().init(device), quantizer: self.quantizer(device), decoder: self.decoder().init(device), grid: self.grid })
    }
}

impl TokenizerConfig for VqKdConfig {
    fn grid(&self) -> usize {
        self.grid
    }
    fn codebook_size(&self) -> usize {
        self.codebook_size
    }
    fn image_channels(&self) -> usize {
        self.image_channels
    }
    fn image_size(&self) -> usize {
        self.image_size
    }
    fn validate(&self) -> Result<(), ConfigError> {
        let c = Check::new("vqkd tokenizer");
        check_image_grid(&c, self.image_channels, self.image_size, self.grid, self.channels)?;
        c.range("codebook_size", self.codebook_size, 2, limits::CODEBOOK)?;
        c.range("code_dim", self.code_dim, 1, limits::WIDTH)?;
        c.range("teacher_dim", self.teacher_dim, 1, limits::WIDTH)?;
        c.float("decay", self.decay as f64, 0.0, 1.0)?;
        c.float("commitment", self.commitment as f64, 0.0, 100.0)?;
        let adaptor = conv_params(3, self.code_dim, self.teacher_dim) + conv_params(3, self.teacher_dim, self.teacher_dim);
        c.params(self.encoder().params() + self.decoder().params() + (self.codebook_size * self.code_dim) as u128 + adaptor)
    }
}

#[cfg(feature = "train")]
pub use distill::{DistillOutput, FeatureAdaptor, VqKdDistill};

/// Training only: the distillation model.
#[cfg(feature = "train")]
mod distill {
    use super::*;
    use crate::ops::{grid_to_rows, nearest_cosine, rows_to_grid};
    use burn::nn::PaddingConfig2d;
    use burn::nn::conv::{Conv2d, Conv2dConfig};
    use burn::tensor::activation::silu;

    impl VqKdConfig {
        /// The distillation model (encoder, codebook, feature adaptor).
        pub fn init_distill(&self, device: &Device) -> Result<VqKdDistill, ConfigError> {
            self.validate()?;
            let same = |i, o| Conv2dConfig::new([i, o], [3, 3]).with_padding(PaddingConfig2d::Same).init(device);
            Ok(VqKdDistill {
                encoder: self.encoder().init(device),
                quantizer: self.quantizer(device),
                adaptor: FeatureAdaptor { conv1: same(self.code_dim, self.teacher_dim), conv2: same(self.teacher_dim, self.teacher_dim) },
                grid: self.grid,
            })
        }
    }

    /// Predicts the teacher's features from the quantized codes.
    #[derive(Module, Debug)]
    pub struct FeatureAdaptor {
        conv1: Conv2d,
        conv2: Conv2d,
    }

    #[derive(Module, Debug)]
    pub struct VqKdDistill {
        pub encoder: Encoder,
        /// Unit-norm codes, set by EMA (no gradient reaches them).
        pub quantizer: CosineQuantizer,
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
            let codebook = self.quantizer.codebook.val().detach();
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
            let codebook = self.quantizer.codebook.map(|c| {
                let shape = c.dims();
                let tracked = c.is_autodiff();
                let device = c.without_autodiff().device();
                let new = Tensor::<2>::from_data(TensorData::new(values, shape), &device);
                if tracked { new.autodiff() } else { new }
            });
            Self { quantizer: CosineQuantizer { codebook }, ..self }
        }

        /// The tokenizer's encoder and codes (with a fresh pixel decoder), to tokenize the data set.
        pub fn tokenizer(&self, cfg: &VqKdConfig, device: &Device) -> Result<VqKdTokenizer, ConfigError> {
            Ok(Tokenizer { encoder: self.encoder.clone(), quantizer: self.quantizer.clone(), decoder: cfg.init(device)?.decoder, grid: self.grid })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> VqKdConfig {
        VqKdConfig {
            image_channels: 1, image_size: 32, grid: 8, channels: 8, codebook_size: 16, code_dim: 4, teacher_dim: 8,
            teacher_name: "t".into(), decay: 0.99, commitment: 0.25, decoder_output: DecoderOutput::Tanh,
        }
    }

    #[test]
    fn bad_configs_are_config_errors() {
        assert!(ok().validate().is_ok());
        for bad in [
            VqKdConfig { teacher_dim: 0, ..ok() },
            VqKdConfig { decay: f32::NAN, ..ok() },
            VqKdConfig { decay: 1.5, ..ok() },
            VqKdConfig { codebook_size: 1, ..ok() },
            VqKdConfig { grid: 4, ..ok() },
            VqKdConfig { image_size: 4096, grid: 1024, ..ok() },
            VqKdConfig { channels: 4096, image_size: 512, grid: 128, ..ok() },
        ] {
            assert!(bad.init(&Device::flex()).is_err(), "{bad:?}");
        }
    }
}
