//! FSQ (Mentzer et al. 2023, "Finite Scalar Quantization"): one latent channel per entry of
//! `levels`; each channel is bounded (tanh) and rounded to `levels[i]` values, so the codebook is
//! implicit (the product of the levels) and every code is reachable by construction.
use super::Quantizer;
use burn::prelude::*;

#[derive(Module, Debug)]
pub struct FsqQuantizer {
    pub levels: Vec<usize>,
}

/// Per-channel constants of the bound: (half range, offset, shift), from the FSQ reference code.
pub(crate) fn bound_constants(levels: &[usize]) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let eps = 1e-3f64;
    let half_l: Vec<f64> = levels.iter().map(|&l| (l as f64 - 1.0) * (1.0 - eps) / 2.0).collect();
    let offset: Vec<f64> = levels.iter().map(|&l| if l % 2 == 0 { 0.5 } else { 0.0 }).collect();
    let shift: Vec<f64> = offset.iter().zip(&half_l).map(|(o, h)| (o / h).atanh()).collect();
    let f = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect();
    (f(half_l), f(offset), f(shift))
}

/// Code vector of every index, `[product(levels), levels.len()]`, values in [-1, 1].
pub fn implicit_codebook(levels: &[usize]) -> Vec<f32> {
    let k: usize = levels.iter().product();
    let mut out = Vec::with_capacity(k * levels.len());
    for idx in 0..k {
        let mut rest = idx;
        for &l in levels {
            let digit = rest % l;
            rest /= l;
            let hw = (l / 2) as f32;
            out.push((digit as f32 - hw) / hw);
        }
    }
    out
}

fn row(v: Vec<f32>, device: &Device) -> Tensor<2> {
    let d = v.len();
    Tensor::from_data(TensorData::new(v, [1, d]), device)
}

impl FsqQuantizer {
    pub fn codebook_size(&self) -> usize {
        self.levels.iter().product()
    }

    /// Latent rows `[n, d]` -> (straight-through codes in [-1, 1], token indices `[n]`).
    pub fn quantize(&self, z: Tensor<2>) -> (Tensor<2>, Tensor<1, Int>) {
        let [n, d] = z.dims();
        let dev = z.device();
        let (half_l, offset, shift) = bound_constants(&self.levels);
        let bounded = (z + row(shift, &dev).expand([n, d])).tanh() * row(half_l, &dev).expand([n, d]) - row(offset, &dev).expand([n, d]);
        let rounded = bounded.clone() + (bounded.clone().round() - bounded).detach(); // straight-through
        let hw: Vec<f32> = self.levels.iter().map(|&l| (l / 2) as f32).collect();
        let hw = row(hw, &dev).expand([n, d]);
        let codes = rounded / hw.clone();
        // index = sum_i digit_i * prod_{j<i} levels_j, digit = code * hw + hw
        let basis: Vec<f32> = self
            .levels
            .iter()
            .scan(1usize, |acc, &l| {
                let b = *acc;
                *acc *= l;
                Some(b as f32)
            })
            .collect();
        let digits = codes.clone().detach() * hw.clone() + hw;
        let tokens = (digits * row(basis, &dev).expand([n, d])).sum_dim(1).round().int().reshape([n]);
        (codes, tokens)
    }
}

impl Quantizer for FsqQuantizer {
    fn nearest(&self, z: Tensor<2>) -> Tensor<1, Int> {
        self.quantize(z).1
    }
    fn lookup(&self, tokens: Tensor<1, Int>) -> Tensor<2> {
        let dev = tokens.device();
        let (k, d) = (self.codebook_size(), self.levels.len());
        Tensor::<2>::from_data(TensorData::new(implicit_codebook(&self.levels), [k, d]), &dev).select(0, tokens)
    }
    fn codes(&self) -> (Vec<f32>, usize) {
        (implicit_codebook(&self.levels), self.levels.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fsq() -> FsqQuantizer {
        FsqQuantizer { levels: vec![8, 6, 5] }
    }

    #[test]
    fn every_code_index_round_trips() {
        let d = Device::flex();
        let fsq = fsq();
        let k = fsq.codebook_size();
        assert_eq!(k, 240);
        let idx = Tensor::<1, Int>::arange(0..k as i64, &d);
        let codes = fsq.lookup(idx);
        // feed a pre-image of each code: bound^-1 of a value 0.4 inside it (the extreme levels are
        // only reached by rounding), i.e. atanh((t + offset) / half_l) - shift
        let (half_l, offset, shift) = bound_constants(&fsq.levels);
        let c: Vec<f32> = codes.into_data().try_to_vec().unwrap();
        let mut z = Vec::new();
        for r in c.chunks(3) {
            for (i, &v) in r.iter().enumerate() {
                let hw = (fsq.levels[i] / 2) as f32;
                let t = v * hw;
                let t = t - 0.4 * t.signum();
                z.push(((t + offset[i]) / half_l[i]).atanh() - shift[i]);
            }
        }
        let (q, tokens) = fsq.quantize(Tensor::from_data(TensorData::new(z, [k, 3]), &d));
        let t: Vec<i64> = tokens.into_data().convert::<i64>().try_to_vec().unwrap();
        assert_eq!(t, (0..k as i64).collect::<Vec<_>>());
        let q: Vec<f32> = q.into_data().try_to_vec().unwrap();
        assert!(q.iter().zip(&c).all(|(a, b)| (a - b).abs() < 1e-5));
    }

    #[test]
    fn any_latent_lands_on_a_valid_code() {
        let d = Device::flex();
        let z = Tensor::<2>::random([500, 3], burn::tensor::Distribution::Normal(0.0, 3.0), &d);
        let t: Vec<i64> = fsq().nearest(z).into_data().convert::<i64>().try_to_vec().unwrap();
        assert!(t.iter().all(|&v| (0..240).contains(&v)));
        let distinct: std::collections::BTreeSet<_> = t.iter().collect();
        assert!(distinct.len() > 100, "only {} codes hit", distinct.len());
    }
}
