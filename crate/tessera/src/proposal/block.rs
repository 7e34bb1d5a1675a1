//! The pre-norm transformer block shared by every transformer in Tessera: the AR proposal network
//! (causal, with a KV cache), the NAR proposal network (MaskGIT, bidirectional) and the ViT teachers.
use crate::config::linear_params;
use burn::module::Param;
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::{gelu, sigmoid, softmax};

/// Keys and values of one layer for the positions seen so far: `[b, n_head, t, head_dim]`.
pub type KvSlot = Option<(Tensor<4>, Tensor<4>)>;

/// Parameters of one block of width `e` with an MLP of width `mlp` (LayerScale not counted).
pub fn params(e: usize, mlp: usize) -> u128 {
    linear_params(e, 3 * e) + linear_params(e, e) + linear_params(e, mlp) + linear_params(mlp, e) + 4 * e as u128
}

#[derive(Module, Debug)]
pub struct Block {
    ln1: LayerNorm,
    attn: SelfAttention,
    ln2: LayerNorm,
    fc: Linear,
    proj: Linear,
    /// LayerScale (DINOv2): per-channel scales of the attention and MLP branches.
    ls1: Option<Param<Tensor<1>>>,
    ls2: Option<Param<Tensor<1>>>,
    /// CLIP's `quick_gelu` (x * sigmoid(1.702 x)) instead of GELU.
    quick_gelu: bool,
}

/// Variations of the block needed to import pretrained ViTs (CLIP, DINOv2).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlockOptions {
    pub norm_eps: f64,
    pub layer_scale: bool,
    pub quick_gelu: bool,
}

impl Default for BlockOptions {
    fn default() -> Self {
        Self { norm_eps: 1e-5, layer_scale: false, quick_gelu: false }
    }
}

#[derive(Module, Debug)]
struct SelfAttention {
    qkv: Linear,
    proj: Linear,
    n_head: usize,
}

impl SelfAttention {
    fn forward(&self, x: Tensor<3>, causal: bool, cache: Option<&mut KvSlot>, key_pad: Option<&Tensor<2, Bool>>) -> Tensor<3> {
        let [b, t, c] = x.dims();
        let hd = c / self.n_head;
        let heads = |y: Tensor<3>| y.reshape([b, t, self.n_head, hd]).swap_dims(1, 2); // [b, h, t, hd]
        let qkv = self.qkv.forward(x);
        let q = heads(qkv.clone().narrow(2, 0, c));
        let mut k = heads(qkv.clone().narrow(2, c, c));
        let mut v = heads(qkv.narrow(2, 2 * c, c));
        let past = match cache {
            Some(slot) => {
                let past = slot.as_ref().map_or(0, |(pk, _)| pk.dims()[2]);
                if let Some((pk, pv)) = slot.take() {
                    k = Tensor::cat(vec![pk, k], 2);
                    v = Tensor::cat(vec![pv, v], 2);
                }
                *slot = Some((k.clone(), v.clone()));
                past
            }
            None => 0,
        };
        let s = past + t;
        let mut att = q.matmul(k.swap_dims(2, 3)).div_scalar((hd as f32).sqrt()); // [b, h, t, s]
        if causal && t > 1 {
            // query i (absolute position past + i) may not see key j > past + i
            let mask = Tensor::<2, Bool>::tril_mask([t, s], past as i64, &att.device()); // true above the diagonal
            att = att.mask_fill(mask.reshape([1, 1, t, s]).expand([b, self.n_head, t, s]), -1.0e9);
        }
        if let Some(pad) = key_pad {
            // padding of a text prefix: no query attends to it (`pad` covers all `s` keys)
            att = att.mask_fill(pad.clone().reshape([b, 1, 1, s]).expand([b, self.n_head, t, s]), -1.0e9);
        }
        let y = softmax(att, 3).matmul(v); // [b, h, t, hd]
        self.proj.forward(y.swap_dims(1, 2).reshape([b, t, c]))
    }
}

impl Block {
    pub fn new(e: usize, n_head: usize, device: &Device) -> Self {
        Self::with_options(e, n_head, 4 * e, BlockOptions::default(), device)
    }
    pub fn with_options(e: usize, n_head: usize, mlp: usize, o: BlockOptions, device: &Device) -> Self {
        let ln = || LayerNormConfig::new(e).with_epsilon(o.norm_eps).init(device);
        let scale = || o.layer_scale.then(|| Param::from_tensor(Tensor::ones([e], device)));
        Block {
            ln1: ln(),
            attn: SelfAttention { qkv: LinearConfig::new(e, 3 * e).init(device), proj: LinearConfig::new(e, e).init(device), n_head },
            ln2: ln(),
            fc: LinearConfig::new(e, mlp).init(device),
            proj: LinearConfig::new(mlp, e).init(device),
            ls1: scale(),
            ls2: scale(),
            quick_gelu: o.quick_gelu,
        }
    }
    /// `x`: `[b, t, e]`. `causal` masks future positions; `cache` (AR sampling) holds past keys/values;
    /// `key_pad` `[b, past + t]` is true at keys no query may see (the padding of a text prefix).
    pub fn forward(&self, x: Tensor<3>, causal: bool, cache: Option<&mut KvSlot>, key_pad: Option<&Tensor<2, Bool>>) -> Tensor<3> {
        let scaled = |y: Tensor<3>, ls: &Option<Param<Tensor<1>>>| match ls {
            Some(g) => {
                let [b, t, e] = y.dims();
                y * g.val().reshape([1, 1, e]).expand([b, t, e])
            }
            None => y,
        };
        let x = x.clone() + scaled(self.attn.forward(self.ln1.forward(x), causal, cache, key_pad), &self.ls1);
        let h = self.fc.forward(self.ln2.forward(x.clone()));
        let h = if self.quick_gelu { h.clone() * sigmoid(h.mul_scalar(1.702)) } else { gelu(h) };
        x + scaled(self.proj.forward(h), &self.ls2)
    }
}
