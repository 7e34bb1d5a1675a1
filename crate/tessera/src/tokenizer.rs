//! The tokenizer zoo behind one interface. Every tokenizer maps images `[b, c, s, s]` in [-1, 1] to
//! a `grid x grid` token map and back through the shared pixel decoder; they differ in how codes
//! are learned: pixel reconstruction (VQ/VQGAN, FSQ) or image-understanding features (VQ-KD
//! distils a teacher, Cluster runs k-means on a teacher's features) — the paper's comparison.
use crate::cluster::{ClusterConfig, ClusterTokenizer};
use crate::error::BundleError;
use crate::fsq::{FsqConfig, FsqTokenizer};
use crate::vq::{VqTokenizer, VqTokenizerConfig};
use crate::vqkd::{VqKdConfig, VqKdTokenizer};
use crate::weights::{NamedTensors, load_module};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// `[b, d, g, g]` -> `[b * g * g, d]` in raster order (row-major over the grid).
pub fn grid_to_rows(z: Tensor<4>) -> Tensor<2> {
    let [b, d, g, _] = z.dims();
    z.permute([0, 2, 3, 1]).reshape([b * g * g, d])
}

/// Inverse of [`grid_to_rows`].
pub fn rows_to_grid(z: Tensor<2>, b: usize, g: usize) -> Tensor<4> {
    let [_, d] = z.dims();
    z.reshape([b, g, g, d]).permute([0, 3, 1, 2])
}

/// A tokenizer's kind and configuration (the manifest's `tokenizer` entry).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", content = "config", rename_all = "lowercase")]
pub enum TokenizerSpec {
    /// VQ / VQGAN: L2 codebook learned by pixel reconstruction.
    Vq(VqTokenizerConfig),
    /// FSQ: implicit codebook of rounded, bounded latents.
    Fsq(FsqConfig),
    /// VQ-KD: cosine codebook learned by distilling a teacher's features.
    Vqkd(VqKdConfig),
    /// Cluster: k-means centroids of a frozen teacher's features.
    Cluster(ClusterConfig),
}

impl TokenizerSpec {
    pub fn kind(&self) -> &'static str {
        match self {
            TokenizerSpec::Vq(_) => "vq",
            TokenizerSpec::Fsq(_) => "fsq",
            TokenizerSpec::Vqkd(_) => "vqkd",
            TokenizerSpec::Cluster(_) => "cluster",
        }
    }
    pub fn grid(&self) -> usize {
        match self {
            TokenizerSpec::Vq(c) => c.grid,
            TokenizerSpec::Fsq(c) => c.grid,
            TokenizerSpec::Vqkd(c) => c.grid,
            TokenizerSpec::Cluster(c) => c.teacher.grid(),
        }
    }
    pub fn codebook_size(&self) -> usize {
        match self {
            TokenizerSpec::Vq(c) => c.codebook_size,
            TokenizerSpec::Fsq(c) => c.codebook_size(),
            TokenizerSpec::Vqkd(c) => c.codebook_size,
            TokenizerSpec::Cluster(c) => c.codebook_size,
        }
    }
    pub fn image_channels(&self) -> usize {
        match self {
            TokenizerSpec::Vq(c) => c.image_channels,
            TokenizerSpec::Fsq(c) => c.image_channels,
            TokenizerSpec::Vqkd(c) => c.image_channels,
            TokenizerSpec::Cluster(c) => c.teacher.image_channels,
        }
    }
    pub fn tokens_per_image(&self) -> usize {
        self.grid() * self.grid()
    }

    /// Builds the tokenizer from named tensors (names and shapes checked).
    pub fn load(&self, tensors: NamedTensors, file: &str, device: &Device) -> Result<Tokenizer, BundleError> {
        Ok(match self {
            TokenizerSpec::Vq(c) => Tokenizer::Vq(load_module(c.init(device), tensors, file, device, false)?),
            TokenizerSpec::Fsq(c) => Tokenizer::Fsq(load_module(c.init(device), tensors, file, device, false)?),
            TokenizerSpec::Vqkd(c) => Tokenizer::Vqkd(load_module(c.init(device), tensors, file, device, false)?),
            TokenizerSpec::Cluster(c) => Tokenizer::Cluster(load_module(c.init(device), tensors, file, device, false)?),
        })
    }
}

/// A loaded tokenizer of any kind.
#[derive(Debug, Clone)]
pub enum Tokenizer {
    Vq(VqTokenizer),
    Fsq(FsqTokenizer),
    Vqkd(VqKdTokenizer),
    Cluster(ClusterTokenizer),
}

impl Tokenizer {
    /// Images `[b, c, s, s]` in [-1, 1] -> tokens `[b, grid * grid]` in raster order.
    pub fn encode(&self, images: Tensor<4>) -> Tensor<2, Int> {
        match self {
            Tokenizer::Vq(t) => t.encode(images),
            Tokenizer::Fsq(t) => t.encode(images),
            Tokenizer::Vqkd(t) => t.encode(images),
            Tokenizer::Cluster(t) => t.encode(images),
        }
    }
    /// The code vectors `[codebook_size, dim]` (row-major) and `dim`, for codebook figures: VQ's
    /// learned codes, VQ-KD's unit-norm codes, Cluster's unit-norm centroids in the teacher's
    /// feature space, FSQ's implicit grid points.
    pub fn codebook(&self) -> (Vec<f32>, usize) {
        let rows = |t: Tensor<2>| {
            let d = t.dims()[1];
            (t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap_or_default(), d)
        };
        match self {
            Tokenizer::Vq(t) => rows(t.quantizer.codebook.val()),
            Tokenizer::Fsq(t) => (crate::fsq::implicit_codebook(&t.levels), t.levels.len()),
            Tokenizer::Vqkd(t) => rows(t.codebook.val()),
            Tokenizer::Cluster(t) => rows(t.codebook.val()),
        }
    }
    /// Tokens `[b, grid * grid]` -> images `[b, c, s, s]` in [-1, 1].
    pub fn decode(&self, tokens: Tensor<2, Int>) -> Tensor<4> {
        match self {
            Tokenizer::Vq(t) => t.decode(tokens),
            Tokenizer::Fsq(t) => t.decode(tokens),
            Tokenizer::Vqkd(t) => t.decode(tokens),
            Tokenizer::Cluster(t) => t.decode(tokens),
        }
    }
}
