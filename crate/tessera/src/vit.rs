//! ViT (Dosovitskiy et al. 2021): the image-understanding teacher. Patches of `patch` x `patch`
//! pixels give exactly one feature per token of the tokenizer grid (32 / 4 = 8), so a teacher's
//! patch features are what VQ-KD distils and what Cluster clusters. Trained in-project either
//! supervised (class token -> classes, the paper's "ViT" teacher) or self-supervised (MAE, see
//! `mae.rs`); pretrained CLIP-vision / DINOv2 weights import into the same module (`import.rs`).
use crate::transformer::{Block, BlockOptions};
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
    pub fn grid(&self) -> usize {
        self.image_size / self.patch
    }
    pub fn init(&self, device: &Device) -> Vit {
        let e = self.n_embd;
        let p = self.grid() * self.grid();
        let normal = |shape: [usize; 3]| Param::from_tensor(Tensor::<3>::random(shape, burn::tensor::Distribution::Normal(0.0, 0.02), device));
        let opts = BlockOptions { norm_eps: self.norm_eps, layer_scale: self.layer_scale, quick_gelu: self.quick_gelu };
        let mlp = if self.mlp == 0 { 4 * e } else { self.mlp };
        let ln = || LayerNormConfig::new(e).with_epsilon(self.norm_eps).init(device);
        Vit {
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
        }
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
            x = block.forward(x, false, None);
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
