//! L2 vector quantizer (VQ-VAE / VQGAN): a codebook of `codebook_size` vectors; each latent vector is
//! replaced by its nearest code (L2). Gradients pass straight through (`z + (q - z).detach()`, van den Oord et al.);
//! the codebook learns from the codebook loss and the encoder is held near its codes by the
//! commitment loss (weight 0.25 in the paper). Codes that go unused are re-seeded from encoder outputs.
use super::{Quantizer, host_rows};
use burn::module::Param;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct QuantizerConfig {
    pub codebook_size: usize,
    pub code_dim: usize,
    /// Weight of the commitment loss `||z - sg(q)||^2`.
    pub commitment: f32,
}

impl QuantizerConfig {
    pub fn init(&self, device: &Device) -> VectorQuantizer {
        let codebook = Tensor::<2>::random(
            [self.codebook_size, self.code_dim],
            burn::tensor::Distribution::Uniform(-1.0 / self.codebook_size as f64, 1.0 / self.codebook_size as f64),
            device,
        );
        VectorQuantizer { codebook: Param::from_tensor(codebook), commitment: self.commitment }
    }
}

#[derive(Module, Debug)]
pub struct VectorQuantizer {
    /// The codebook, `[codebook_size, code_dim]`.
    pub codebook: Param<Tensor<2>>,
    pub commitment: f32,
}

/// Output of [`VectorQuantizer::forward`].
#[cfg(feature = "train")]
pub struct Quantized {
    /// Straight-through quantized latents, same shape as the input `[n, code_dim]`.
    pub quantized: Tensor<2>,
    /// Token (code index) of each latent, `[n]`.
    pub tokens: Tensor<1, Int>,
    /// Codebook loss + commitment * commitment loss.
    pub loss: Tensor<1>,
}

impl VectorQuantizer {
    pub fn codebook_size(&self) -> usize {
        self.codebook.lazy_shape().dims::<2>()[0]
    }
}

impl Quantizer for VectorQuantizer {
    /// Index of the nearest code for each row of `z` (`[n, code_dim]`), by squared L2 distance
    /// `|z|^2 - 2 z.c + |c|^2` (the `|z|^2` term is constant per row and dropped).
    fn nearest(&self, z: Tensor<2>) -> Tensor<1, Int> {
        let c = self.codebook.val();
        let c2 = c.clone().powi_scalar(2).sum_dim(1).reshape([1, -1]); // [1, K]
        let dist = c2 - z.matmul(c.transpose()).mul_scalar(2.0); // [n, K]
        dist.argmin(1).flatten(0, 1)
    }

    fn lookup(&self, tokens: Tensor<1, Int>) -> Tensor<2> {
        self.codebook.val().select(0, tokens)
    }

    fn codes(&self) -> (Vec<f32>, usize) {
        host_rows(self.codebook.val())
    }
}

/// Training: the straight-through forward pass with its losses, and re-seeding of dead codes.
#[cfg(feature = "train")]
impl VectorQuantizer {
    pub fn forward(&self, z: Tensor<2>) -> Quantized {
        let tokens = self.nearest(z.clone().detach());
        let q = self.lookup(tokens.clone());
        let codebook_loss = (q.clone() - z.clone().detach()).powi_scalar(2).mean();
        let commit_loss = (z.clone() - q.clone().detach()).powi_scalar(2).mean();
        let loss = codebook_loss + commit_loss.mul_scalar(self.commitment);
        let quantized = z.clone() + (q - z).detach();
        Quantized { quantized, tokens, loss }
    }

    /// Replace the codes listed in `dead` by the rows of `replacements` (`[dead.len(), code_dim]`),
    /// typically random encoder outputs of the current batch, so that unused codes re-enter play.
    pub fn reseed(self, dead: &[usize], replacements: Tensor<2>) -> Self {
        if dead.is_empty() {
            return self;
        }
        let device = replacements.device();
        let idx = Tensor::<1, Int>::from_data(TensorData::new(dead.iter().map(|&i| i as i64).collect::<Vec<_>>(), [dead.len()]), &device);
        // Edit the values outside the autodiff graph, then re-enter it as a fresh leaf parameter.
        let codebook = self.codebook.map(|c| {
            let tracked = c.is_autodiff();
            let c = c.without_autodiff().select_assign(0, idx, replacements.without_autodiff(), burn::tensor::IndexingUpdateOp::Assign);
            if tracked { c.autodiff() } else { c }
        });
        Self { codebook, commitment: self.commitment }
    }
}

#[cfg(all(test, feature = "train"))]
mod tests {
    use super::*;

    #[test]
    fn nearest_matches_brute_force() {
        let device = Device::flex();
        device.seed(7);
        let vq = QuantizerConfig { codebook_size: 37, code_dim: 5, commitment: 0.25 }.init(&device);
        let vq = VectorQuantizer { codebook: Param::from_tensor(Tensor::random([37, 5], burn::tensor::Distribution::Normal(0.0, 1.0), &device)), ..vq };
        let z = Tensor::<2>::random([200, 5], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
        let got: Vec<i64> = vq.nearest(z.clone()).into_data().convert::<i64>().try_to_vec().unwrap();
        let c: Vec<f32> = vq.codebook.val().into_data().try_to_vec().unwrap();
        let zs: Vec<f32> = z.into_data().try_to_vec().unwrap();
        for (n, &g) in got.iter().enumerate() {
            let d = |k: usize| (0..5).map(|j| (zs[n * 5 + j] - c[k * 5 + j]).powi(2)).sum::<f32>();
            let best = (0..37).min_by(|&a, &b| d(a).partial_cmp(&d(b)).unwrap()).unwrap();
            assert!((d(g as usize) - d(best)).abs() < 1e-5, "row {n}: picked {g} (d={}), best {best} (d={})", d(g as usize), d(best));
        }
    }

    #[test]
    fn reseed_replaces_only_dead_codes() {
        let device = Device::flex();
        let vq = QuantizerConfig { codebook_size: 4, code_dim: 2, commitment: 0.25 }.init(&device);
        let before: Vec<f32> = vq.codebook.val().into_data().try_to_vec().unwrap();
        let vq = vq.reseed(&[2], Tensor::from_data(TensorData::new(vec![9.0f32, 8.0], [1, 2]), &device));
        let after: Vec<f32> = vq.codebook.val().into_data().try_to_vec().unwrap();
        assert_eq!(&after[4..6], &[9.0, 8.0]);
        assert_eq!(&after[..4], &before[..4]);
        assert_eq!(&after[6..], &before[6..]);
    }
}
