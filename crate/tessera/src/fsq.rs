//! FSQ tokenizer (Mentzer et al. 2023, "Finite Scalar Quantization"): the encoder's latent has one
//! channel per entry of `levels`; each channel is bounded (tanh) and rounded to `levels[i]` values,
//! so the codebook is implicit (the product of the levels) and every code is used by construction.
//! Pixel-reconstruction tokenizer like VQ; decodes through the shared pixel decoder.
use crate::decoder::{Decoder, DecoderConfig};
use crate::encoder::{Encoder, EncoderConfig};
use crate::tokenizer::{grid_to_rows, rows_to_grid};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FsqConfig {
    pub image_channels: usize,
    pub image_size: usize,
    pub grid: usize,
    pub channels: usize,
    /// Quantization levels per latent channel; the codebook size is their product
    /// ([8, 6, 5] = 240, the FSQ paper's choice near 2^8).
    pub levels: Vec<usize>,
    /// The pixel decoder's output layer (tanh for MSE training, linear for the VQGAN losses).
    #[serde(default)]
    pub decoder_output: crate::decoder::DecoderOutput,
}

impl Default for FsqConfig {
    fn default() -> Self {
        Self { image_channels: 1, image_size: 32, grid: 8, channels: 32, levels: vec![8, 6, 5], decoder_output: Default::default() }
    }
}

impl FsqConfig {
    pub fn init(&self, device: &Device) -> FsqTokenizer {
        let d = self.levels.len();
        FsqTokenizer {
            encoder: EncoderConfig { in_channels: self.image_channels, channels: self.channels, latent_dim: d }.init(device),
            decoder: DecoderConfig { latent_dim: d, channels: self.channels, out_channels: self.image_channels, output: self.decoder_output }.init(device),
            levels: self.levels.clone(),
            grid: self.grid,
        }
    }
    pub fn codebook_size(&self) -> usize {
        self.levels.iter().product()
    }
}

#[derive(Module, Debug)]
pub struct FsqTokenizer {
    pub encoder: Encoder,
    pub decoder: Decoder,
    pub levels: Vec<usize>,
    pub grid: usize,
}

/// Per-channel constants of the bound: (half range, offset, shift), from the FSQ reference code.
fn bound_constants(levels: &[usize]) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
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

impl FsqTokenizer {
    fn row(&self, v: Vec<f32>, device: &Device) -> Tensor<2> {
        let d = v.len();
        Tensor::from_data(TensorData::new(v, [1, d]), device)
    }

    /// Latent rows `[n, d]` -> (straight-through codes in [-1, 1], token indices `[n]`).
    pub fn quantize(&self, z: Tensor<2>) -> (Tensor<2>, Tensor<1, Int>) {
        let [n, d] = z.dims();
        let dev = z.device();
        let (half_l, offset, shift) = bound_constants(&self.levels);
        let bounded = (z + self.row(shift, &dev).expand([n, d])).tanh() * self.row(half_l, &dev).expand([n, d]) - self.row(offset, &dev).expand([n, d]);
        let rounded = bounded.clone() + (bounded.clone().round() - bounded).detach(); // straight-through
        let hw: Vec<f32> = self.levels.iter().map(|&l| (l / 2) as f32).collect();
        let hw = self.row(hw, &dev).expand([n, d]);
        let codes = rounded / hw.clone();
        // index = sum_i digit_i * prod_{j<i} levels_j, digit = code * hw + hw
        let basis: Vec<f32> = self.levels.iter().scan(1usize, |acc, &l| {
            let b = *acc;
            *acc *= l;
            Some(b as f32)
        }).collect();
        let digits = codes.clone().detach() * hw.clone() + hw;
        let tokens = (digits * self.row(basis, &dev).expand([n, d])).sum_dim(1).round().int().reshape([n]);
        (codes, tokens)
    }

    /// Token indices `[n]` -> code vectors `[n, d]`.
    pub fn lookup(&self, tokens: Tensor<1, Int>) -> Tensor<2> {
        let dev = tokens.device();
        let (k, d) = (self.levels.iter().product::<usize>(), self.levels.len());
        Tensor::<2>::from_data(TensorData::new(implicit_codebook(&self.levels), [k, d]), &dev).select(0, tokens)
    }

    /// Training forward: (reconstruction, tokens `[b, grid * grid]`).
    pub fn forward(&self, images: Tensor<4>) -> (Tensor<4>, Tensor<2, Int>) {
        let b = images.dims()[0];
        let (codes, tokens) = self.quantize(grid_to_rows(self.encoder.forward(images)));
        (self.decoder.forward(rows_to_grid(codes, b, self.grid)), tokens.reshape([b, self.grid * self.grid]))
    }

    pub fn encode(&self, images: Tensor<4>) -> Tensor<2, Int> {
        let b = images.dims()[0];
        self.quantize(grid_to_rows(self.encoder.forward(images))).1.reshape([b, self.grid * self.grid])
    }

    pub fn decode(&self, tokens: Tensor<2, Int>) -> Tensor<4> {
        let b = tokens.dims()[0];
        self.decoder.forward(rows_to_grid(self.lookup(tokens.flatten(0, 1)), b, self.grid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_index_round_trips() {
        let d = Device::flex();
        let cfg = FsqConfig { channels: 4, ..Default::default() };
        let fsq = cfg.init(&d);
        let k = cfg.codebook_size();
        assert_eq!(k, 240);
        let idx = Tensor::<1, Int>::arange(0..k as i64, &d);
        let codes = fsq.lookup(idx);
        // feed a pre-image of each code: bound^-1 of a value 0.4 inside it (the extreme levels are
        // only reached by rounding), i.e. atanh((t + offset) / half_l) - shift
        let (half_l, offset, shift) = bound_constants(&cfg.levels);
        let c: Vec<f32> = codes.into_data().try_to_vec().unwrap();
        let mut z = Vec::new();
        for row in c.chunks(3) {
            for (i, &v) in row.iter().enumerate() {
                let hw = (cfg.levels[i] / 2) as f32;
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
        let fsq = FsqConfig { channels: 4, ..Default::default() }.init(&d);
        let z = Tensor::<2>::random([500, 3], burn::tensor::Distribution::Normal(0.0, 3.0), &d);
        let t: Vec<i64> = fsq.quantize(z).1.into_data().convert::<i64>().try_to_vec().unwrap();
        assert!(t.iter().all(|&v| (0..240).contains(&v)));
        let distinct: std::collections::BTreeSet<_> = t.iter().collect();
        assert!(distinct.len() > 100, "only {} codes hit", distinct.len());
    }
}
