//! ViT (Dosovitskiy et al. 2021): the image-understanding teacher. Patches of `patch` x `patch`
//! pixels give exactly one feature per token of the tokenizer grid (32 / 4 = 8), so a teacher's
//! patch features are what VQ-KD distils and what Cluster clusters. Trained in-project either
//! supervised (class token -> classes, the paper's "ViT" teacher) or self-supervised (masked image
//! modelling, see `mim.rs`); pretrained CLIP-vision / DINOv2 weights import into the same module
//! (`import.rs`).
use crate::config::{Check, ConfigError, conv_params, limits, linear_params};
use crate::proposal::block::{Block, BlockOptions};
use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VitConfig {
    pub image_channels: usize,
    pub image_size: usize,
    pub patch: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_embd: usize,
    /// Classes of the supervised head (0 for a self-supervised teacher: no head is used).
    pub num_classes: usize,
    /// Width of the MLP hidden layer (0 = 4 x n_embd, in-project; as in the checkpoint when imported).
    #[serde(default)]
    pub mlp: usize,
    /// Variants met in pretrained checkpoints (see `import.rs`): CLIP's LayerNorm after the
    /// embeddings and quick-GELU, DINOv2's LayerScale and eps 1e-6; patch projection bias.
    #[serde(default)]
    pub pre_norm: bool,
    #[serde(default)]
    pub layer_scale: bool,
    #[serde(default)]
    pub quick_gelu: bool,
    #[serde(default = "default_eps")]
    pub norm_eps: f64,
    #[serde(default = "default_true")]
    pub patch_bias: bool,
}

fn default_eps() -> f64 {
    1e-5
}
fn default_true() -> bool {
    true
}

impl Default for VitConfig {
    fn default() -> Self {
        Self {
            image_channels: 1, image_size: 32, patch: 4, n_layer: 4, n_head: 4, n_embd: 96, num_classes: 10,
            mlp: 0, pre_norm: false, layer_scale: false, quick_gelu: false, norm_eps: 1e-5, patch_bias: true,
        }
    }
}

impl VitConfig {
    /// Patches per side (0 for a patch size of 0, which `validate` refuses).
    pub fn grid(&self) -> usize {
        self.image_size.checked_div(self.patch).unwrap_or(0)
    }
    fn mlp_width(&self) -> usize {
        if self.mlp == 0 { 4 * self.n_embd } else { self.mlp }
    }
    /// Parameter count (call after the sizes are checked).
    pub fn params(&self) -> u128 {
        let (e, p) = (self.n_embd, self.grid() * self.grid());
        let block = crate::proposal::block::params(e, self.mlp_width());
        conv_params(self.patch, self.image_channels, e) + ((p + 2) * e) as u128 + self.n_layer as u128 * block + 4 * e as u128 + linear_params(e, self.num_classes.max(1))
    }
    pub fn validate(&self) -> Result<(), ConfigError> {
        let c = Check::new("teacher (ViT)");
        c.range("image_channels", self.image_channels, 1, limits::IMAGE_CHANNELS)?;
        c.range("image_size", self.image_size, 1, limits::IMAGE_SIZE)?;
        c.range("patch", self.patch, 1, self.image_size)?;
        c.that(self.image_size % self.patch == 0, || format!("patch {} must divide image_size {}", self.patch, self.image_size))?;
        c.range("n_layer", self.n_layer, 1, limits::LAYERS)?;
        c.range("n_embd", self.n_embd, 1, limits::WIDTH)?;
        c.range("n_head", self.n_head, 1, self.n_embd)?;
        c.that(self.n_embd % self.n_head == 0, || format!("n_head {} must divide n_embd {}", self.n_head, self.n_embd))?;
        c.range("num_classes", self.num_classes, 0, limits::CLASSES)?;
        c.range("mlp", self.mlp, 0, 4 * limits::WIDTH)?;
        c.float("norm_eps", self.norm_eps, 0.0, 1.0)?;
        c.params(self.params())?;
        // per image: the attention matrix and the MLP of a full pass over 1 + patches positions
        let t = (self.grid() * self.grid()) as u128 + 1;
        c.activations(t * (self.n_head as u128 * t).max(self.mlp_width() as u128))
    }
    pub fn init(&self, device: &Device) -> Result<Vit, ConfigError> {
        self.validate()?;
        let e = self.n_embd;
        let p = self.grid() * self.grid();
        let normal = |shape: [usize; 3]| Param::from_tensor(Tensor::<3>::random(shape, burn::tensor::Distribution::Normal(0.0, 0.02), device));
        let opts = BlockOptions { norm_eps: self.norm_eps, layer_scale: self.layer_scale, quick_gelu: self.quick_gelu };
        let mlp = self.mlp_width();
        let ln = || LayerNormConfig::new(e).with_epsilon(self.norm_eps).init(device);
        Ok(Vit {
            patch_embed: Conv2dConfig::new([self.image_channels, e], [self.patch, self.patch])
                .with_stride([self.patch, self.patch])
                .with_bias(self.patch_bias)
                .init(device),
            cls_token: normal([1, 1, e]),
            pos_emb: normal([1, p + 1, e]),
            pre_ln: self.pre_norm.then(ln),
            blocks: (0..self.n_layer).map(|_| Block::with_options(e, self.n_head, mlp, opts, device)).collect(),
            ln_f: ln(),
            head: LinearConfig::new(e, self.num_classes.max(1)).init(device),
        })
    }
}

#[derive(Module, Debug)]
pub struct Vit {
    pub patch_embed: Conv2d,
    pub cls_token: Param<Tensor<3>>,
    pub pos_emb: Param<Tensor<3>>,
    pub pre_ln: Option<LayerNorm>,
    pub blocks: Vec<Block>,
    pub ln_f: LayerNorm,
    pub head: Linear,
}

impl Vit {
    /// Patch embeddings + positions, `[b, 1 + patches, e]` (class token first).
    pub fn embed(&self, images: Tensor<4>) -> Tensor<3> {
        let x = self.patch_embed.forward(images); // [b, e, g, g]
        let [b, e, g, _] = x.dims();
        let x = x.reshape([b, e, g * g]).swap_dims(1, 2);
        let cls = self.cls_token.val().expand([b, 1, e]);
        let x = Tensor::cat(vec![cls, x], 1) + self.pos_emb.val().expand([b, g * g + 1, e]);
        match &self.pre_ln {
            Some(ln) => ln.forward(x),
            None => x,
        }
    }

    /// Runs the blocks and the final norm over an embedded sequence.
    pub fn encode_sequence(&self, mut x: Tensor<3>) -> Tensor<3> {
        for block in &self.blocks {
            x = block.forward(x, false, None, None);
        }
        self.ln_f.forward(x)
    }

    /// Patch features `[b, patches, e]` in raster order (the teacher signal).
    pub fn patch_features(&self, images: Tensor<4>) -> Tensor<3> {
        let x = self.encode_sequence(self.embed(images));
        let [b, t, e] = x.dims();
        x.narrow(1, 1, t - 1).reshape([b, t - 1, e])
    }

    /// Class logits from the class token (supervised teacher).
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let x = self.encode_sequence(self.embed(images));
        let [b, _, e] = x.dims();
        self.head.forward(x.narrow(1, 0, 1).reshape([b, e]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_configs_are_config_errors() {
        let ok = VitConfig::default();
        assert!(ok.validate().is_ok());
        for bad in [
            VitConfig { patch: 0, ..ok.clone() },
            VitConfig { patch: 5, ..ok.clone() },
            VitConfig { n_head: 0, ..ok.clone() },
            VitConfig { n_head: 5, ..ok.clone() },
            VitConfig { image_channels: 0, ..ok.clone() },
            VitConfig { n_layer: 100_000_000, ..ok.clone() },
            VitConfig { n_embd: 4096, n_head: 4, n_layer: 64, ..ok.clone() },
            VitConfig { norm_eps: f64::NAN, ..ok.clone() },
        ] {
            assert!(bad.init(&Device::flex()).is_err(), "{bad:?}");
        }
    }
}
