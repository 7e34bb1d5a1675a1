//! Self-supervised teacher: masked image modelling in the style of SimMIM (Xie et al. 2022), the
//! simplest member of the MAE family. A random 60% of the patches have their embeddings replaced by a
//! learned mask token; the ViT sees the whole sequence and a linear head predicts the raw pixels of
//! the masked patches (L1). Chosen over MAE because the encoder is the same at training and feature
//! time (no token dropping, so no gather/scatter), and over DINO because it needs no momentum teacher,
//! multi-crop or centring — a sound self-supervised objective that fits a 2-core CPU budget.
use super::vit::{Vit, VitConfig};
use burn::module::Param;
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MimConfig {
    pub vit: VitConfig,
    /// Share of patches masked per image.
    pub mask_ratio: f64,
}

impl MimConfig {
    pub fn init(&self, device: &Device) -> Result<Mim, crate::config::ConfigError> {
        crate::config::Check::new("mim teacher").float("mask_ratio", self.mask_ratio, 0.0, 1.0)?;
        let e = self.vit.n_embd;
        let p = self.vit.patch;
        Ok(Mim {
            vit: self.vit.init(device)?,
            mask_token: Param::from_tensor(Tensor::zeros([1, 1, e], device)),
            pred: LinearConfig::new(e, p * p * self.vit.image_channels).init(device),
        })
    }
}

#[derive(Module, Debug)]
pub struct Mim {
    /// The teacher: after training, only this is kept.
    pub vit: Vit,
    pub mask_token: Param<Tensor<3>>,
    pub pred: Linear,
}

/// Images `[b, c, s, s]` -> patches `[b, (s/p)^2, p*p*c]` in raster order.
pub fn patchify(images: Tensor<4>, p: usize) -> Tensor<3> {
    let [b, c, s, _] = images.dims();
    let g = s / p;
    images.reshape([b, c, g, p, g, p]).permute([0, 2, 4, 3, 5, 1]).reshape([b, g * g, p * p * c])
}

impl Mim {
    /// Predicted pixels of every patch `[b, patches, p*p*c]`, the masked ones seen only as the mask
    /// token; `mask` `[b, patches]` is true where masked.
    pub fn predict(&self, images: Tensor<4>, mask: Tensor<2, Bool>) -> Tensor<3> {
        let v = &self.vit;
        let x = v.patch_embed.forward(images);
        let [b, e, g, _] = x.dims();
        let n = g * g;
        let x = x.reshape([b, e, n]).swap_dims(1, 2); // [b, n, e]
        let m = mask.float().reshape([b, n, 1]).expand([b, n, e]);
        let x = x.clone() * m.clone().neg().add_scalar(1.0) + self.mask_token.val().expand([b, n, e]) * m;
        let x = Tensor::cat(vec![v.cls_token.val().expand([b, 1, e]), x], 1) + v.pos_emb.val().expand([b, n + 1, e]);
        let x = match &v.pre_ln {
            Some(ln) => ln.forward(x),
            None => x,
        };
        let h = v.encode_sequence(x);
        self.pred.forward(h.narrow(1, 1, n))
    }

    /// L1 loss on the pixels of the masked patches only; `mask` `[b, patches]` is true where masked.
    pub fn loss(&self, images: Tensor<4>, mask: Tensor<2, Bool>) -> Tensor<1> {
        let pred = self.predict(images.clone(), mask.clone()); // [b, n, p*p*c]
        let [b, n, d] = pred.dims();
        let p = self.vit.patch_embed.weight.val().dims()[2]; // the patch side (the kernel of the patch embedding)
        let target = patchify(images, p);
        let w = mask.float().reshape([b, n, 1]).expand([b, n, d]);
        ((pred - target).abs() * w.clone()).sum() / w.sum().clamp_min(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patchify_is_raster_order_of_patches() {
        let d = Device::flex();
        let x = Tensor::<1, Int>::arange(0..16, &d).float().reshape([1, 1, 4, 4]);
        let p: Vec<f32> = patchify(x, 2).into_data().try_to_vec().unwrap();
        // patch 0 = rows 0-1, cols 0-1; patch 1 = rows 0-1, cols 2-3; ...
        assert_eq!(&p[..8], &[0., 1., 4., 5., 2., 3., 6., 7.]);
        assert_eq!(&p[8..], &[8., 9., 12., 13., 10., 11., 14., 15.]);
    }

    #[test]
    fn loss_reads_only_masked_patches() {
        let d = Device::flex();
        d.seed(2);
        let cfg = MimConfig { vit: VitConfig { n_layer: 1, n_head: 2, n_embd: 8, num_classes: 0, image_size: 8, ..Default::default() }, mask_ratio: 0.5 };
        let m = cfg.init(&d).unwrap();
        let img = Tensor::<4>::random([1, 1, 8, 8], burn::tensor::Distribution::Uniform(-1.0, 1.0), &d);
        // patches 0 and 3 of 4 masked
        let mask = Tensor::<2, Bool>::from_data(TensorData::new(vec![true, false, false, true], [1, 4]), &d);
        let loss: f32 = m.loss(img.clone(), mask.clone()).into_scalar();
        let pred: Vec<f32> = m.predict(img.clone(), mask).into_data().try_to_vec().unwrap();
        let target: Vec<f32> = patchify(img, 4).into_data().try_to_vec().unwrap();
        let l1 = |patches: &[usize]| {
            let err: f32 = patches.iter().flat_map(|&p| (p * 16..(p + 1) * 16).map(|i| (pred[i] - target[i]).abs())).sum();
            err / (16 * patches.len()) as f32
        };
        assert!((loss - l1(&[0, 3])).abs() < 1e-5, "loss {loss} vs masked-patch L1 {}", l1(&[0, 3]));
        assert!((loss - l1(&[0, 1, 2, 3])).abs() > 1e-4, "a loss over all patches would give the same value");
    }
}
