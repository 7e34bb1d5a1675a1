//! The FSQ tokenizer (Mentzer et al. 2023) = conv encoder x FSQ implicit grid x pixel decoder: the
//! encoder's latent has one channel per entry of `levels`; trained on pixels like VQGAN.
use super::decoder::{DecoderConfig, DecoderOutput};
use super::encoder::{Encoder, EncoderConfig};
use super::quantizer::FsqQuantizer;
use super::composition::{Tokenizer, TokenizerConfig, check_image_grid};
use crate::config::{Check, ConfigError, limits};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

pub type FsqTokenizer = Tokenizer<Encoder, FsqQuantizer>;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FsqConfig {
    pub image_channels: usize,
    pub image_size: usize,
    pub grid: usize,
    pub channels: usize,
    /// Quantization levels per latent channel; the codebook size is their product
    /// ([8, 6, 5] = 240, the FSQ paper's choice near 2^8).
    pub levels: Vec<usize>,
    /// The pixel decoder's output layer (tanh for MSE training, linear for the VQGAN losses).
    #[serde(default)]
    pub decoder_output: DecoderOutput,
}

impl Default for FsqConfig {
    fn default() -> Self {
        Self { image_channels: 1, image_size: 32, grid: 8, channels: 32, levels: vec![8, 6, 5], decoder_output: Default::default() }
    }
}

impl FsqConfig {
    fn encoder(&self) -> EncoderConfig {
        EncoderConfig { in_channels: self.image_channels, channels: self.channels, latent_dim: self.levels.len() }
    }
    fn decoder(&self) -> DecoderConfig {
        DecoderConfig { latent_dim: self.levels.len(), channels: self.channels, out_channels: self.image_channels, output: self.decoder_output }
    }
    pub fn init(&self, device: &Device) -> Result<FsqTokenizer, ConfigError> {
        self.validate()?;
        Ok(Tokenizer { encoder: self.encoder().init(device), quantizer: FsqQuantizer { levels: self.levels.clone() }, decoder: self.decoder().init(device), grid: self.grid })
    }
}

impl TokenizerConfig for FsqConfig {
    fn grid(&self) -> usize {
        self.grid
    }
    fn codebook_size(&self) -> usize {
        // saturating: `validate` bounds each level and the product, but this may be asked first
        self.levels.iter().fold(1usize, |a, &l| a.saturating_mul(l))
    }
    fn image_channels(&self) -> usize {
        self.image_channels
    }
    fn image_size(&self) -> usize {
        self.image_size
    }
    fn validate(&self) -> Result<(), ConfigError> {
        let c = Check::new("fsq tokenizer");
        check_image_grid(&c, self.image_channels, self.image_size, self.grid, self.channels)?;
        c.range("number of levels", self.levels.len(), 1, 16)?;
        for &l in &self.levels {
            // one level would bound every latent to a single value (and divide by zero)
            c.range("each level", l, 2, limits::CODEBOOK)?;
        }
        c.range("codebook size (product of the levels)", self.codebook_size(), 2, limits::CODEBOOK)?;
        c.params(self.encoder().params() + self.decoder().params())
    }
}

#[cfg(feature = "train")]
impl FsqTokenizer {
    /// Training forward: (reconstruction, tokens `[b, grid * grid]`), straight-through rounding.
    pub fn forward(&self, images: Tensor<4>) -> (Tensor<4>, Tensor<2, Int>) {
        use super::encoder::PatchEncoder;
        let b = images.dims()[0];
        let (codes, tokens) = self.quantizer.quantize(self.encoder.rows(images));
        (self.decoder.forward(crate::ops::rows_to_grid(codes, b, self.grid)), tokens.reshape([b, self.grid * self.grid]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_levels_are_config_errors() {
        for levels in [vec![], vec![1, 8], vec![8; 17], vec![1 << 20, 2], vec![usize::MAX, usize::MAX]] {
            let e = FsqConfig { levels: levels.clone(), ..Default::default() }.validate();
            assert!(e.is_err(), "{levels:?}");
        }
        assert!(FsqConfig::default().validate().is_ok());
    }
}
