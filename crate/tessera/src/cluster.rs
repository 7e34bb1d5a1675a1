//! Cluster tokenizer (the paper's training-free IU tokenizer): the codebook is the set of k-means
//! (cosine) centroids of a frozen teacher's patch features; a patch's token is its nearest
//! centroid. Only the pixel decoder is trained, on the frozen tokens. Encoding runs the teacher, so
//! the teacher's weights ship inside this tokenizer.
use crate::decoder::{Decoder, DecoderConfig, DecoderOutput};
use crate::tokenizer::rows_to_grid;
use crate::vit::{Vit, VitConfig};
use burn::module::Param;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClusterConfig {
    pub teacher: VitConfig,
    /// Short name of the teacher (e.g. "vit-sup", "vit-mae"), for display.
    pub teacher_name: String,
    pub codebook_size: usize,
    /// Width of the pixel decoder.
    pub channels: usize,
    /// The pixel decoder's output layer (tanh for MSE training, linear for the VQGAN losses).
    #[serde(default)]
    pub decoder_output: DecoderOutput,
}

impl ClusterConfig {
    pub fn decoder(&self) -> DecoderConfig {
        DecoderConfig { latent_dim: self.teacher.n_embd, channels: self.channels, out_channels: self.teacher.image_channels, output: self.decoder_output }
    }
    pub fn init(&self, device: &Device) -> ClusterTokenizer {
        ClusterTokenizer {
            teacher: self.teacher.init(device),
            codebook: Param::from_tensor(Tensor::zeros([self.codebook_size, self.teacher.n_embd], device)),
            decoder: self.decoder().init(device),
            grid: self.teacher.grid(),
        }
    }
}

#[derive(Module, Debug)]
pub struct ClusterTokenizer {
    pub teacher: Vit,
    /// Unit-norm centroids `[codebook_size, teacher_dim]`.
    pub codebook: Param<Tensor<2>>,
    pub decoder: Decoder,
    pub grid: usize,
}

/// Rows divided by their L2 norm.
pub fn l2_normalize(z: Tensor<2>) -> Tensor<2> {
    let n = z.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-12);
    z / n
}

/// Nearest code by cosine similarity (codebook rows are unit vectors): `[n, d]` -> `[n]`.
pub fn nearest_cosine(z: Tensor<2>, codebook: Tensor<2>) -> Tensor<1, Int> {
    l2_normalize(z).matmul(codebook.transpose()).argmax(1).flatten(0, 1)
}

impl ClusterTokenizer {
    pub fn encode(&self, images: Tensor<4>) -> Tensor<2, Int> {
        let f = self.teacher.patch_features(images);
        let [b, p, e] = f.dims();
        nearest_cosine(f.reshape([b * p, e]), self.codebook.val()).reshape([b, p])
    }
    pub fn decode(&self, tokens: Tensor<2, Int>) -> Tensor<4> {
        let b = tokens.dims()[0];
        self.decoder.forward(rows_to_grid(self.codebook.val().select(0, tokens.flatten(0, 1)), b, self.grid))
    }
}
