//! The image-understanding (IU) **teacher**: the encoder whose features VQ-KD distils and Cluster
//! clusters (the paper's pretrained IU encoder). Either a ViT (`vit.rs`: trained in-project,
//! supervised or by masked image modelling (`mim.rs`), or imported from CLIP-vision / DINOv2
//! (`import.rs`)) or the ImageNet-pretrained EfficientNet-Lite (`efficientnet.rs`, imported by
//! `efficientnet_import.rs`). Import and MIM are training-side only.
pub mod efficientnet;
#[cfg(feature = "train")]
pub mod efficientnet_import;
#[cfg(feature = "train")]
pub mod import;
#[cfg(feature = "train")]
pub mod mim;
pub mod vit;

use crate::config::ConfigError;
use burn::prelude::*;
use efficientnet::{EfficientNet, EfficientNetConfig};
use serde::{Deserialize, Serialize};
use vit::{Vit, VitConfig};

/// Which teacher, with its configuration. Serialised as the inner config (an EfficientNet config
/// is recognised by its own fields, so manifests written with a bare ViT config still read).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum TeacherConfig {
    EfficientNet(EfficientNetConfig),
    Vit(VitConfig),
}

impl From<VitConfig> for TeacherConfig {
    fn from(c: VitConfig) -> Self {
        TeacherConfig::Vit(c)
    }
}

impl TeacherConfig {
    pub fn image_channels(&self) -> usize {
        match self {
            TeacherConfig::Vit(c) => c.image_channels,
            TeacherConfig::EfficientNet(c) => c.image_channels,
        }
    }
    pub fn image_size(&self) -> usize {
        match self {
            TeacherConfig::Vit(c) => c.image_size,
            TeacherConfig::EfficientNet(c) => c.image_size,
        }
    }
    /// Feature positions per side (one per token).
    pub fn grid(&self) -> usize {
        match self {
            TeacherConfig::Vit(c) => c.grid(),
            TeacherConfig::EfficientNet(c) => c.grid(),
        }
    }
    /// Width of a feature row.
    pub fn feature_dim(&self) -> usize {
        match self {
            TeacherConfig::Vit(c) => c.n_embd,
            TeacherConfig::EfficientNet(c) => c.feature_dim(),
        }
    }
    pub fn params(&self) -> u128 {
        match self {
            TeacherConfig::Vit(c) => c.params(),
            TeacherConfig::EfficientNet(c) => c.params(),
        }
    }
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self {
            TeacherConfig::Vit(c) => c.validate(),
            TeacherConfig::EfficientNet(c) => c.validate(),
        }
    }
    /// Short description for cards and tables.
    pub fn describe(&self) -> String {
        match self {
            TeacherConfig::Vit(c) => format!("ViT ({} layers, width {}, patch {})", c.n_layer, c.n_embd, c.patch),
            TeacherConfig::EfficientNet(c) => format!("{} ImageNet-1k, blocks 0..{} at {} px ({} channels, stride {})", c.name, c.blocks, c.input_size, c.feature_dim(), c.stride()),
        }
    }
    pub fn init(&self, device: &Device) -> Result<Teacher, ConfigError> {
        Ok(match self {
            TeacherConfig::Vit(c) => Teacher::Vit(c.init(device)?),
            TeacherConfig::EfficientNet(c) => Teacher::EfficientNet(c.init(device)?),
        })
    }
}

/// A teacher network (an enum module: its tensors keep the inner network's names).
#[derive(Module, Debug)]
pub enum Teacher {
    Vit(Vit),
    EfficientNet(EfficientNet),
}

impl Teacher {
    /// Features per grid position, `[b, g * g, feature_dim]`, raster order.
    pub fn patch_features(&self, images: Tensor<4>) -> Tensor<3> {
        match self {
            Teacher::Vit(v) => v.patch_features(images),
            Teacher::EfficientNet(e) => e.patch_features(images),
        }
    }
}
