//! The composition every tokenizer is: an encoder (one feature row per grid cell), a quantizer
//! (rows <-> tokens) and the shared pixel decoder; and what every tokenizer config must tell and check.
//! This file knows none of the four tokenizers: they are built from it (`vqgan.rs`, ...).
use super::decoder::Decoder;
use super::encoder::{DOWNSAMPLE, PatchEncoder};
use super::quantizer::Quantizer;
use crate::config::{Check, ConfigError, limits};
use crate::ops::rows_to_grid;
use burn::prelude::*;

/// A tokenizer: encoder `E`, quantizer `Q` and the shared pixel decoder.
#[derive(Module, Debug)]
pub struct Tokenizer<E, Q> {
    pub encoder: E,
    pub quantizer: Q,
    pub decoder: Decoder,
    /// Tokens per side of the grid.
    pub grid: usize,
}

impl<E: PatchEncoder, Q: Quantizer> Tokenizer<E, Q> {
    /// Images `[b, c, s, s]` in [-1, 1] -> tokens `[b, grid * grid]` in raster order.
    pub fn encode(&self, images: Tensor<4>) -> Tensor<2, Int> {
        let b = images.dims()[0];
        self.quantizer.nearest(self.encoder.rows(images)).reshape([b, self.grid * self.grid])
    }
    /// Tokens `[b, grid * grid]` -> images `[b, c, s, s]` in [-1, 1].
    pub fn decode(&self, tokens: Tensor<2, Int>) -> Tensor<4> {
        let b = tokens.dims()[0];
        self.decoder.forward(rows_to_grid(self.quantizer.lookup(tokens.flatten(0, 1)), b, self.grid))
    }
}

/// What the runtime needs of any tokenizer, whatever its parts.
pub trait TokenizerOps {
    fn encode(&self, images: Tensor<4>) -> Tensor<2, Int>;
    fn decode(&self, tokens: Tensor<2, Int>) -> Tensor<4>;
    /// The code vectors `[codebook_size, dim]` (row-major) and `dim`, for codebook figures.
    fn codes(&self) -> (Vec<f32>, usize);
}

impl<E: PatchEncoder, Q: Quantizer> TokenizerOps for Tokenizer<E, Q> {
    fn encode(&self, images: Tensor<4>) -> Tensor<2, Int> {
        Tokenizer::encode(self, images)
    }
    fn decode(&self, tokens: Tensor<2, Int>) -> Tensor<4> {
        Tokenizer::decode(self, tokens)
    }
    fn codes(&self) -> (Vec<f32>, usize) {
        self.quantizer.codes()
    }
}

/// What every tokenizer config tells about its token map and images, and how it checks itself.
pub trait TokenizerConfig {
    fn grid(&self) -> usize;
    fn codebook_size(&self) -> usize;
    fn image_channels(&self) -> usize;
    fn image_size(&self) -> usize;
    /// Sizes bounded, consistent (grid x 4 = image size) and within the parameter budget.
    fn validate(&self) -> Result<(), ConfigError>;
}

/// The checks every tokenizer shares: image channels and size bounded, the grid equal to the image
/// size over the encoder's downsampling (the decoder upsamples by the same factor), the decoder's
/// width bounded, and the conv layers' largest feature map (with its 3x3 im2col buffer) within the
/// activation budget.
pub(crate) fn check_image_grid(c: &Check, image_channels: usize, image_size: usize, grid: usize, channels: usize) -> Result<(), ConfigError> {
    c.range("image_channels", image_channels, 1, limits::IMAGE_CHANNELS)?;
    c.range("image_size", image_size, DOWNSAMPLE, limits::IMAGE_SIZE)?;
    c.that(grid.checked_mul(DOWNSAMPLE) == Some(image_size), || format!("grid {grid} must be image_size {image_size} / {}", DOWNSAMPLE))?;
    c.range("channels", channels, 1, limits::WIDTH)?;
    c.activations(9 * channels as u128 * (image_size * image_size) as u128)
}
