//! The VQGAN tokenizer (Esser et al. 2021) = conv encoder x L2 codebook x pixel decoder, trained end
//! to end on pixels. Its training losses (L1 + perceptual + PatchGAN, or MSE) live in
//! `train/vqgan_loss.rs`; the model is the same either way.
use super::decoder::{DecoderConfig, DecoderOutput};
use super::encoder::EncoderConfig;
use super::quantizer::VectorQuantizer;
use super::quantizer::l2::QuantizerConfig;
use super::composition::{Tokenizer, TokenizerConfig, check_image_grid};
use crate::config::{Check, ConfigError, limits};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

pub type VqganTokenizer = Tokenizer<super::encoder::Encoder, VectorQuantizer>;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VqganConfig {
    pub image_channels: usize,
    pub image_size: usize,
    /// Tokens per side of the grid (image_size / 4).
    pub grid: usize,
    pub channels: usize,
    pub codebook_size: usize,
    pub code_dim: usize,
    pub commitment: f32,
    /// The pixel decoder's output layer (tanh for MSE training, linear for the VQGAN losses).
    #[serde(default)]
    pub decoder_output: DecoderOutput,
}

impl Default for VqganConfig {
    fn default() -> Self {
        Self { image_channels: 1, image_size: 32, grid: 8, channels: 32, codebook_size: 256, code_dim: 16, commitment: 0.25, decoder_output: Default::default() }
    }
}

impl VqganConfig {
    fn encoder(&self) -> EncoderConfig {
        EncoderConfig { in_channels: self.image_channels, channels: self.channels, latent_dim: self.code_dim }
    }
    fn decoder(&self) -> DecoderConfig {
        DecoderConfig { latent_dim: self.code_dim, channels: self.channels, out_channels: self.image_channels, output: self.decoder_output }
    }
    pub fn init(&self, device: &Device) -> Result<VqganTokenizer, ConfigError> {
        self.validate()?;
        Ok(Tokenizer {
            encoder: self.encoder().init(device),
            quantizer: QuantizerConfig { codebook_size: self.codebook_size, code_dim: self.code_dim, commitment: self.commitment }.init(device),
            decoder: self.decoder().init(device),
            grid: self.grid,
        })
    }
}

impl TokenizerConfig for VqganConfig {
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
        let c = Check::new("vqgan tokenizer");
        check_image_grid(&c, self.image_channels, self.image_size, self.grid, self.channels)?;
        c.range("codebook_size", self.codebook_size, 2, limits::CODEBOOK)?;
        c.range("code_dim", self.code_dim, 1, limits::WIDTH)?;
        c.float("commitment", self.commitment as f64, 0.0, 100.0)?;
        c.params(self.encoder().params() + self.decoder().params() + (self.codebook_size * self.code_dim) as u128)
    }
}

/// Output of a training forward pass.
#[cfg(feature = "train")]
pub struct VqganOutput {
    pub reconstruction: Tensor<4>,
    pub tokens: Tensor<2, Int>,
    /// Encoder outputs `[b * grid * grid, code_dim]` (used to re-seed dead codes).
    pub latents: Tensor<2>,
    pub vq_loss: Tensor<1>,
}

#[cfg(feature = "train")]
impl VqganTokenizer {
    /// Training forward: straight-through quantization, with the codebook + commitment loss.
    pub fn forward(&self, images: Tensor<4>) -> VqganOutput {
        use super::encoder::PatchEncoder;
        let b = images.dims()[0];
        let latents = self.encoder.rows(images);
        let q = self.quantizer.forward(latents.clone());
        let reconstruction = self.decoder.forward(crate::ops::rows_to_grid(q.quantized, b, self.grid));
        VqganOutput { reconstruction, tokens: q.tokens.reshape([b, self.grid * self.grid]), latents, vq_loss: q.loss }
    }
}
