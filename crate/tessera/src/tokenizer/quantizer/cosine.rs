//! Cosine quantizer: unit-norm codes, a latent's token is the code of largest cosine similarity.
//! VQ-KD (BEiT v2) sets its codes by an EMA of the vectors assigned to them; Cluster takes k-means
//! centroids of a frozen teacher's features. No gradient reaches the codes in either.
use super::{Quantizer, host_rows};
use crate::ops::nearest_cosine;
use burn::module::Param;
use burn::prelude::*;

#[derive(Module, Debug)]
pub struct CosineQuantizer {
    /// Unit-norm codes `[codebook_size, dim]`.
    pub codebook: Param<Tensor<2>>,
}

impl CosineQuantizer {
    pub fn new(codebook: Tensor<2>) -> Self {
        Self { codebook: Param::from_tensor(codebook) }
    }
}

impl Quantizer for CosineQuantizer {
    fn nearest(&self, z: Tensor<2>) -> Tensor<1, Int> {
        nearest_cosine(z, self.codebook.val())
    }
    fn lookup(&self, tokens: Tensor<1, Int>) -> Tensor<2> {
        self.codebook.val().select(0, tokens)
    }
    fn codes(&self) -> (Vec<f32>, usize) {
        host_rows(self.codebook.val())
    }
}

/// EMA update of a cosine codebook (BEiT v2's norm-EMA): for every code k that received vectors,
/// `c_k <- normalize(decay * c_k + (1 - decay) * normalize(mean of its vectors))`; unused codes stay.
/// `codebook` `[k, d]` and `z` `[n, d]` row-major; `tokens[i]` is the code of row i (tokens outside
/// the codebook are ignored).
#[cfg(feature = "train")]
pub fn ema_update(codebook: &mut [f32], d: usize, z: &[f32], tokens: &[usize], decay: f32) {
    let k = codebook.len() / d.max(1);
    let mut sums = vec![0f32; k * d];
    let mut counts = vec![0usize; k];
    for (i, &t) in tokens.iter().enumerate().filter(|&(i, &t)| t < k && (i + 1) * d <= z.len()) {
        counts[t] += 1;
        sums[t * d..(t + 1) * d].iter_mut().zip(&z[i * d..(i + 1) * d]).for_each(|(s, v)| *s += v);
    }
    let norm = |v: &mut [f32]| {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        v.iter_mut().for_each(|x| *x /= n);
    };
    for j in (0..k).filter(|&j| counts[j] > 0) {
        let mean = &mut sums[j * d..(j + 1) * d];
        norm(mean);
        let c = &mut codebook[j * d..(j + 1) * d];
        c.iter_mut().zip(mean.iter()).for_each(|(c, m)| *c = decay * *c + (1.0 - decay) * m);
        norm(c);
    }
}

#[cfg(all(test, feature = "train"))]
mod tests {
    use super::*;

    #[test]
    fn ema_update_matches_hand_computation() {
        // two codes in 2-d; code 0 receives (0,1) and (1,0) -> mean direction (1,1)/sqrt2; code 1 unused
        let mut c = vec![1.0f32, 0.0, 0.0, -1.0];
        ema_update(&mut c, 2, &[0.0, 1.0, 1.0, 0.0], &[0, 0], 0.9);
        let s = std::f32::consts::FRAC_1_SQRT_2;
        let (a, b) = (0.9 + 0.1 * s, 0.1 * s);
        let n = (a * a + b * b).sqrt();
        assert!((c[0] - a / n).abs() < 1e-6 && (c[1] - b / n).abs() < 1e-6, "{c:?}");
        assert_eq!(&c[2..], &[0.0, -1.0]);
    }
}
