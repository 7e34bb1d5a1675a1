//! The pre-norm transformer block shared by every transformer in Tessera: the AR proposal network
//! (causal, with a KV cache), the NAR proposal network (MaskGIT, bidirectional) and the ViT teachers.
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::{gelu, softmax};

/// Keys and values of one layer for the positions seen so far: `[b, n_head, t, head_dim]`.
pub type KvSlot = Option<(Tensor<4>, Tensor<4>)>;

#[derive(Module, Debug)]
pub struct Block {
    ln1: LayerNorm,
    attn: SelfAttention,
    ln2: LayerNorm,
    fc: Linear,
    proj: Linear,
}

#[derive(Module, Debug)]
struct SelfAttention {
    qkv: Linear,
    proj: Linear,
    n_head: usize,
}

impl SelfAttention {
    fn forward(&self, x: Tensor<3>, causal: bool, cache: Option<&mut KvSlot>) -> Tensor<3> {
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
        let y = softmax(att, 3).matmul(v); // [b, h, t, hd]
        self.proj.forward(y.swap_dims(1, 2).reshape([b, t, c]))
    }
}

impl Block {
    pub fn new(e: usize, n_head: usize, device: &Device) -> Self {
        Block {
            ln1: LayerNormConfig::new(e).init(device),
            attn: SelfAttention { qkv: LinearConfig::new(e, 3 * e).init(device), proj: LinearConfig::new(e, e).init(device), n_head },
            ln2: LayerNormConfig::new(e).init(device),
            fc: LinearConfig::new(e, 4 * e).init(device),
            proj: LinearConfig::new(4 * e, e).init(device),
        }
    }
    /// `x`: `[b, t, e]`. `causal` masks future positions; `cache` (AR sampling) holds past keys/values.
    pub fn forward(&self, x: Tensor<3>, causal: bool, cache: Option<&mut KvSlot>) -> Tensor<3> {
        let x = x.clone() + self.attn.forward(self.ln1.forward(x), causal, cache);
        x.clone() + self.proj.forward(gelu(self.fc.forward(self.ln2.forward(x))))
    }
}
