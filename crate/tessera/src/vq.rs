//! The VQ tokenizer (encoder + L2 codebook + pixel decoder), trained end to end on pixels.
//! This is the slice's pixel-reconstruction tokenizer; the VQGAN losses (perceptual + PatchGAN)
//! are layered on top of the same module.
use crate::decoder::{Decoder, DecoderConfig};
use crate::encoder::{Encoder, EncoderConfig};
use crate::quantizer::{QuantizerConfig, VectorQuantizer};
use crate::tokenizer::{grid_to_rows, rows_to_grid};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VqTokenizerConfig {
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
    pub decoder_output: crate::decoder::DecoderOutput,
}

impl Default for VqTokenizerConfig {
    fn default() -> Self {
        Self { image_channels: 1, image_size: 32, grid: 8, channels: 32, codebook_size: 256, code_dim: 16, commitment: 0.25, decoder_output: Default::default() }
    }
}

impl VqTokenizerConfig {
    pub fn init(&self, device: &Device) -> VqTokenizer {
        VqTokenizer {
            encoder: EncoderConfig { in_channels: self.image_channels, channels: self.channels, latent_dim: self.code_dim }.init(device),
            quantizer: QuantizerConfig { codebook_size: self.codebook_size, code_dim: self.code_dim, commitment: self.commitment }.init(device),
            decoder: DecoderConfig { latent_dim: self.code_dim, channels: self.channels, out_channels: self.image_channels, output: self.decoder_output }.init(device),
            grid: self.grid,
        }
    }
    pub fn tokens_per_image(&self) -> usize {
        self.grid * self.grid
    }
}

#[derive(Module, Debug)]
pub struct VqTokenizer {
    pub encoder: Encoder,
    pub quantizer: VectorQuantizer,
    pub decoder: Decoder,
    pub grid: usize,
}

/// Output of a training forward pass.
pub struct VqOutput {
    pub reconstruction: Tensor<4>,
    pub tokens: Tensor<2, Int>,
    /// Encoder outputs `[b * grid * grid, code_dim]` (used to re-seed dead codes).
    pub latents: Tensor<2>,
    pub vq_loss: Tensor<1>,
}

impl VqTokenizer {
    pub fn forward(&self, images: Tensor<4>) -> VqOutput {
        let b = images.dims()[0];
        let latents = grid_to_rows(self.encoder.forward(images));
        let q = self.quantizer.forward(latents.clone());
        let reconstruction = self.decoder.forward(rows_to_grid(q.quantized, b, self.grid));
        VqOutput { reconstruction, tokens: q.tokens.reshape([b, self.grid * self.grid]), latents, vq_loss: q.loss }
    }

    /// Images `[b, c, s, s]` in [-1, 1] -> tokens `[b, grid * grid]` in raster order.
    pub fn encode(&self, images: Tensor<4>) -> Tensor<2, Int> {
        let b = images.dims()[0];
        let latents = grid_to_rows(self.encoder.forward(images));
        self.quantizer.nearest(latents).reshape([b, self.grid * self.grid])
    }

    /// Tokens `[b, grid * grid]` -> images `[b, c, s, s]` in [-1, 1].
    pub fn decode(&self, tokens: Tensor<2, Int>) -> Tensor<4> {
        let b = tokens.dims()[0];
        let codes = self.quantizer.lookup(tokens.flatten(0, 1));
        self.decoder.forward(rows_to_grid(codes, b, self.grid))
    }
}
