//! The quantizer: the codebook between a tokenizer's encoder and its decoder (one of the paper's
//! axes). Three kinds, one interface: an L2 codebook learned by gradients (VQGAN), a cosine
//! codebook of unit vectors (VQ-KD's EMA codes, Cluster's k-means centroids) and FSQ's implicit grid.
pub mod cosine;
pub mod fsq;
pub mod l2;

pub use cosine::CosineQuantizer;
pub use fsq::FsqQuantizer;
pub use l2::VectorQuantizer;

use burn::prelude::*;

/// Latent rows to tokens and tokens to code vectors.
pub trait Quantizer {
    /// Token of each latent row: `[n, dim]` -> `[n]`.
    fn nearest(&self, z: Tensor<2>) -> Tensor<1, Int>;
    /// Code vectors of tokens: `[n]` -> `[n, dim]`.
    fn lookup(&self, tokens: Tensor<1, Int>) -> Tensor<2>;
    /// Every code vector `[codebook_size, dim]` (row-major) and `dim`, for codebook figures
    /// (a synchronous read-back: native only).
    fn codes(&self) -> (Vec<f32>, usize);
}

/// A 2-d tensor's values and width (synchronous read-back).
pub(crate) fn host_rows(t: Tensor<2>) -> (Vec<f32>, usize) {
    let d = t.dims()[1];
    (t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap_or_default(), d)
}
