//! The manifest's side of the tokenizer: its kind and config (`TokenizerSpec`), the one name of each
//! kind (`TokenizerKind`), and a loaded tokenizer of any kind (`AnyTokenizer`).
use super::cluster::{ClusterConfig, ClusterTokenizer};
use super::composition::{TokenizerConfig, TokenizerOps};
use super::fsq::{FsqConfig, FsqTokenizer};
use super::vqgan::{VqganConfig, VqganTokenizer};
use super::vqkd::{VqKdConfig, VqKdTokenizer};
use crate::bundle::weights::{NamedTensors, load_module};
use crate::config::ConfigError;
use crate::error::BundleError;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// A tokenizer's kind and configuration (the manifest's `tokenizer` entry).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", content = "config", rename_all = "lowercase")]
pub enum TokenizerSpec {
    /// VQGAN: L2 codebook learned by pixel reconstruction (`"vq"` in manifests before 2026-12).
    #[serde(alias = "vq")]
    Vqgan(VqganConfig),
    /// FSQ: implicit codebook of rounded, bounded latents.
    Fsq(FsqConfig),
    /// VQ-KD: cosine codebook learned by distilling a teacher's features.
    Vqkd(VqKdConfig),
    /// Cluster: k-means centroids of a frozen teacher's features.
    Cluster(ClusterConfig),
}

/// The kinds, as named everywhere (manifests, CLI, JS, table, site).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenizerKind {
    #[serde(alias = "vq")]
    Vqgan,
    Fsq,
    Vqkd,
    Cluster,
}

impl TokenizerKind {
    pub const ALL: [TokenizerKind; 4] = [TokenizerKind::Vqgan, TokenizerKind::Fsq, TokenizerKind::Vqkd, TokenizerKind::Cluster];
    /// The machine name (`vqgan`, `fsq`, `vqkd`, `cluster`).
    pub fn name(self) -> &'static str {
        match self {
            TokenizerKind::Vqgan => "vqgan",
            TokenizerKind::Fsq => "fsq",
            TokenizerKind::Vqkd => "vqkd",
            TokenizerKind::Cluster => "cluster",
        }
    }
    /// The paper's name (`VQGAN`, `FSQ`, `VQ-KD`, `Cluster`).
    pub fn label(self) -> &'static str {
        match self {
            TokenizerKind::Vqgan => "VQGAN",
            TokenizerKind::Fsq => "FSQ",
            TokenizerKind::Vqkd => "VQ-KD",
            TokenizerKind::Cluster => "Cluster",
        }
    }
    /// Codes learned from pixels (VQGAN, FSQ) or from an IU teacher's features (VQ-KD, Cluster).
    pub fn uses_teacher(self) -> bool {
        matches!(self, TokenizerKind::Vqkd | TokenizerKind::Cluster)
    }
    /// Reads a name; `vq` is the old name of `vqgan`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "vq" | "vqgan" => Some(TokenizerKind::Vqgan),
            "fsq" => Some(TokenizerKind::Fsq),
            "vqkd" => Some(TokenizerKind::Vqkd),
            "cluster" => Some(TokenizerKind::Cluster),
            _ => None,
        }
    }
}

impl std::fmt::Display for TokenizerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl TokenizerSpec {
    pub fn config(&self) -> &dyn TokenizerConfig {
        match self {
            TokenizerSpec::Vqgan(c) => c,
            TokenizerSpec::Fsq(c) => c,
            TokenizerSpec::Vqkd(c) => c,
            TokenizerSpec::Cluster(c) => c,
        }
    }
    pub fn kind(&self) -> TokenizerKind {
        match self {
            TokenizerSpec::Vqgan(_) => TokenizerKind::Vqgan,
            TokenizerSpec::Fsq(_) => TokenizerKind::Fsq,
            TokenizerSpec::Vqkd(_) => TokenizerKind::Vqkd,
            TokenizerSpec::Cluster(_) => TokenizerKind::Cluster,
        }
    }
    pub fn grid(&self) -> usize {
        self.config().grid()
    }
    pub fn codebook_size(&self) -> usize {
        self.config().codebook_size()
    }
    pub fn image_channels(&self) -> usize {
        self.config().image_channels()
    }
    pub fn image_size(&self) -> usize {
        self.config().image_size()
    }
    pub fn tokens_per_image(&self) -> usize {
        self.grid() * self.grid()
    }
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.config().validate()
    }
    /// The tokenizer with random weights (config validated first).
    pub fn init(&self, device: &Device) -> Result<AnyTokenizer, ConfigError> {
        Ok(match self {
            TokenizerSpec::Vqgan(c) => AnyTokenizer::Vqgan(c.init(device)?),
            TokenizerSpec::Fsq(c) => AnyTokenizer::Fsq(c.init(device)?),
            TokenizerSpec::Vqkd(c) => AnyTokenizer::Vqkd(c.init(device)?),
            TokenizerSpec::Cluster(c) => AnyTokenizer::Cluster(c.init(device)?),
        })
    }

    /// Builds the tokenizer from named tensors (config validated, names and shapes checked).
    /// Bundles written before the tokenizers became compositions name VQ-KD's and Cluster's
    /// codebook `codebook` and Cluster's encoder `teacher.*`; they are read under the new names.
    pub fn load(&self, tensors: NamedTensors, file: &str, device: &Device) -> Result<AnyTokenizer, BundleError> {
        let tensors = migrate_names(self.kind(), tensors);
        Ok(match self.init(device)? {
            AnyTokenizer::Vqgan(t) => AnyTokenizer::Vqgan(load_module(t, tensors, file, device, false)?),
            AnyTokenizer::Fsq(t) => AnyTokenizer::Fsq(load_module(t, tensors, file, device, false)?),
            AnyTokenizer::Vqkd(t) => AnyTokenizer::Vqkd(load_module(t, tensors, file, device, false)?),
            AnyTokenizer::Cluster(t) => AnyTokenizer::Cluster(load_module(t, tensors, file, device, false)?),
        })
    }
}

/// Tensor names of the pre-composition layout -> the composition's (`quantizer.codebook`, `encoder.*`).
fn migrate_names(kind: TokenizerKind, tensors: NamedTensors) -> NamedTensors {
    if !matches!(kind, TokenizerKind::Vqkd | TokenizerKind::Cluster) {
        return tensors;
    }
    tensors
        .into_iter()
        .map(|(k, v)| {
            let k = if k == "codebook" {
                "quantizer.codebook".to_string()
            } else if let Some(rest) = k.strip_prefix("teacher.").filter(|_| kind == TokenizerKind::Cluster) {
                format!("encoder.{rest}")
            } else {
                k
            };
            (k, v)
        })
        .collect()
}

/// A loaded tokenizer of any kind.
#[derive(Debug, Clone)]
pub enum AnyTokenizer {
    Vqgan(VqganTokenizer),
    Fsq(FsqTokenizer),
    Vqkd(VqKdTokenizer),
    Cluster(ClusterTokenizer),
}

impl AnyTokenizer {
    pub fn ops(&self) -> &dyn TokenizerOps {
        match self {
            AnyTokenizer::Vqgan(t) => t,
            AnyTokenizer::Fsq(t) => t,
            AnyTokenizer::Vqkd(t) => t,
            AnyTokenizer::Cluster(t) => t,
        }
    }
    /// Images `[b, c, s, s]` in [-1, 1] -> tokens `[b, grid * grid]` in raster order.
    pub fn encode(&self, images: Tensor<4>) -> Tensor<2, Int> {
        self.ops().encode(images)
    }
    /// Tokens `[b, grid * grid]` -> images `[b, c, s, s]` in [-1, 1].
    pub fn decode(&self, tokens: Tensor<2, Int>) -> Tensor<4> {
        self.ops().decode(tokens)
    }
    /// The code vectors `[codebook_size, dim]` and `dim`: VQGAN's learned codes, VQ-KD's unit-norm
    /// codes, Cluster's unit-norm centroids in the teacher's feature space, FSQ's grid points.
    pub fn codebook(&self) -> (Vec<f32>, usize) {
        self.ops().codes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::weights::HostTensor;

    #[test]
    fn old_names_read_as_new() {
        let t = |n: &str| (n.to_string(), HostTensor { shape: vec![1], values: vec![0.0] });
        let old = NamedTensors::from([t("codebook"), t("teacher.blocks.0.fc.weight"), t("decoder.conv_in.weight")]);
        let c: Vec<String> = migrate_names(TokenizerKind::Cluster, old.clone()).into_keys().collect();
        assert_eq!(c, ["decoder.conv_in.weight", "encoder.blocks.0.fc.weight", "quantizer.codebook"]);
        let v: Vec<String> = migrate_names(TokenizerKind::Vqkd, old.clone()).into_keys().collect();
        assert_eq!(v, ["decoder.conv_in.weight", "quantizer.codebook", "teacher.blocks.0.fc.weight"]);
        assert_eq!(migrate_names(TokenizerKind::Vqgan, old.clone()), old);
    }

    #[test]
    fn kind_names_are_one_name_per_thing() {
        let old: TokenizerKind = serde_json::from_str("\"vq\"").unwrap();
        assert_eq!(old, TokenizerKind::Vqgan);
        assert_eq!(serde_json::to_string(&TokenizerKind::Vqgan).unwrap(), "\"vqgan\"");
        for k in TokenizerKind::ALL {
            assert_eq!(TokenizerKind::parse(k.name()), Some(k));
        }
    }
}

