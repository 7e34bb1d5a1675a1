//! The Cluster tokenizer (the paper's training-free IU tokenizer) = the frozen IU teacher as encoder
//! x a cosine codebook of k-means centroids of its patch features x pixel decoder. Only the pixel
//! decoder is trained, on the frozen tokens. Encoding runs the teacher, so the teacher's weights ship
//! inside this tokenizer.
use super::decoder::{DecoderConfig, DecoderOutput};
use super::encoder::{DOWNSAMPLE, PatchEncoder};
use super::quantizer::CosineQuantizer;
use super::composition::{Tokenizer, TokenizerConfig, check_image_grid};
use crate::config::{Check, ConfigError, limits};
use crate::teacher::{Teacher, TeacherConfig};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

pub type ClusterTokenizer = Tokenizer<Teacher, CosineQuantizer>;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClusterConfig {
    /// A ViT (in-project or imported) or the pretrained EfficientNet-Lite stages.
    pub teacher: TeacherConfig,
    /// Short name of the teacher (e.g. "vit-sup", "vit-mim", "lite0"), for display.
    pub teacher_name: String,
    pub codebook_size: usize,
    /// Width of the pixel decoder.
    pub channels: usize,
    /// The pixel decoder's output layer (tanh for MSE training, linear for the VQGAN losses).
    #[serde(default)]
    pub decoder_output: DecoderOutput,
}

/// The teacher's patch features are the encoder's rows: one per grid position, raster order.
impl PatchEncoder for Teacher {
    fn rows(&self, images: Tensor<4>) -> Tensor<2> {
        let f = self.patch_features(images);
        let [b, p, e] = f.dims();
        f.reshape([b * p, e])
    }
}

impl ClusterConfig {
    pub fn decoder(&self) -> DecoderConfig {
        DecoderConfig { latent_dim: self.teacher.feature_dim(), channels: self.channels, out_channels: self.teacher.image_channels(), output: self.decoder_output }
    }
    pub fn init(&self, device: &Device) -> Result<ClusterTokenizer, ConfigError> {
        self.validate()?;
        Ok(Tokenizer {
            encoder: self.teacher.init(device)?,
            quantizer: CosineQuantizer::new(Tensor::zeros([self.codebook_size, self.teacher.feature_dim()], device)),
            decoder: self.decoder().init(device),
            grid: self.teacher.grid(),
        })
    }
}

impl TokenizerConfig for ClusterConfig {
    fn grid(&self) -> usize {
        self.teacher.grid()
    }
    fn codebook_size(&self) -> usize {
        self.codebook_size
    }
    fn image_channels(&self) -> usize {
        self.teacher.image_channels()
    }
    fn image_size(&self) -> usize {
        self.teacher.image_size()
    }
    fn validate(&self) -> Result<(), ConfigError> {
        self.teacher.validate()?;
        let c = Check::new("cluster tokenizer");
        // The pixel decoder upsamples by 4, so the teacher needs one feature per 4x4 pixels.
        let t = &self.teacher;
        c.that(t.grid() * DOWNSAMPLE == t.image_size(), || format!("the teacher must give one feature per {DOWNSAMPLE}x{DOWNSAMPLE} pixels (the pixel decoder upsamples by {DOWNSAMPLE}): {} features per side for {} pixels", t.grid(), t.image_size()))?;
        check_image_grid(&c, t.image_channels(), t.image_size(), t.grid(), self.channels)?;
        c.range("codebook_size", self.codebook_size, 2, limits::CODEBOOK)?;
        c.params(t.params() + self.decoder().params() + (self.codebook_size * t.feature_dim()) as u128)
    }
}
