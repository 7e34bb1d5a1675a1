//! Import of pretrained ViT weights in the Hugging Face `transformers` safetensors layouts of
//! CLIP-vision (`CLIPVisionModel`) and DINOv2 (`Dinov2Model`), for users who have such files (Tessera
//! downloads nothing). Names and shapes are checked and every problem is a typed [`BundleError`];
//! the result is an ordinary [`Vit`] whose patch features can serve as a teacher.
use crate::error::BundleError;
use super::vit::{Vit, VitConfig};
use crate::bundle::weights::{HostTensor, NamedTensors, load_module};
use burn::prelude::*;

/// Which checkpoint layout a file uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HfLayout {
    ClipVision,
    Dinov2,
}

impl HfLayout {
    /// Recognises the layout from tensor names.
    pub fn detect(t: &NamedTensors) -> Option<Self> {
        if t.contains_key("vision_model.embeddings.class_embedding") {
            Some(HfLayout::ClipVision)
        } else if t.contains_key("embeddings.cls_token") {
            Some(HfLayout::Dinov2)
        } else {
            None
        }
    }
}

/// A pretrained checkpoint's tensors, read by name with the shape the model expects (shared by the
/// ViT and EfficientNet imports).
pub(crate) struct Source<'a> {
    pub(crate) t: &'a NamedTensors,
    pub(crate) file: &'a str,
}

impl Source<'_> {
    /// The tensor `name`, checked: present, of `shape`, every value finite.
    pub(crate) fn get(&self, name: &str, shape: &[usize]) -> Result<&HostTensor, BundleError> {
        let t = self.t.get(name).ok_or_else(|| BundleError::MissingTensor { file: self.file.into(), name: name.into() })?;
        if t.shape != shape {
            return Err(BundleError::WrongShape { name: name.into(), expected: shape.to_vec(), actual: t.shape.clone() });
        }
        if let Some(v) = t.values.iter().find(|v| !v.is_finite()) {
            return Err(BundleError::BadWeights { file: self.file.into(), reason: format!("tensor {name} holds {v}") });
        }
        Ok(t)
    }
    fn shape(&self, name: &str) -> Result<&[usize], BundleError> {
        self.t.get(name).map(|t| t.shape.as_slice()).ok_or_else(|| BundleError::MissingTensor { file: self.file.into(), name: name.into() })
    }
}

/// `[out, in]` (PyTorch Linear) -> `[in, out]` (burn Linear).
pub(crate) fn transpose(t: &HostTensor) -> HostTensor {
    let (o, i) = (t.shape[0], t.shape[1]);
    let mut v = vec![0f32; o * i];
    for r in 0..o {
        for c in 0..i {
            v[c * o + r] = t.values[r * i + c];
        }
    }
    HostTensor { shape: vec![i, o], values: v }
}

/// q, k, v `[e, e]` weights (PyTorch) -> one `[e, 3e]` burn weight; biases `[e]` -> `[3e]`.
pub(crate) fn fuse_qkv(q: &HostTensor, k: &HostTensor, v: &HostTensor) -> HostTensor {
    if q.shape.len() == 1 {
        let values = [q.values.as_slice(), &k.values, &v.values].concat();
        return HostTensor { shape: vec![values.len()], values };
    }
    let (q, k, v) = (transpose(q), transpose(k), transpose(v));
    let (i, o) = (q.shape[0], q.shape[1]);
    let mut values = Vec::with_capacity(i * 3 * o);
    for r in 0..i {
        for t in [&q, &k, &v] {
            values.extend_from_slice(&t.values[r * o..(r + 1) * o]);
        }
    }
    HostTensor { shape: vec![i, 3 * o], values }
}

/// Converts a CLIP-vision or DINOv2 checkpoint into a [`Vit`] with `n_head` heads (from the
/// checkpoint's `config.json`: `num_attention_heads`; heads cannot be read off the weights).
pub fn import_vit(tensors: &NamedTensors, file: &str, n_head: usize, device: &Device) -> Result<(VitConfig, Vit), BundleError> {
    let layout = HfLayout::detect(tensors).ok_or_else(|| BundleError::Invalid(format!("'{file}' is neither a CLIP-vision nor a DINOv2 checkpoint")))?;
    let s = Source { t: tensors, file };
    let (layer, patch_w) = match layout {
        HfLayout::ClipVision => ("vision_model.encoder.layers", "vision_model.embeddings.patch_embedding.weight"),
        HfLayout::Dinov2 => ("encoder.layer", "embeddings.patch_embeddings.projection.weight"),
    };
    let pw = s.shape(patch_w)?.to_vec();
    let [e, c, p, p2] = pw[..] else { return Err(BundleError::WrongShape { name: patch_w.into(), expected: vec![0, 0, 0, 0], actual: pw }) };
    if p != p2 || n_head == 0 || e % n_head != 0 {
        return Err(BundleError::Invalid(format!("patch {p}x{p2} or {n_head} heads do not fit width {e}")));
    }
    let pos_name = match layout {
        HfLayout::ClipVision => "vision_model.embeddings.position_embedding.weight",
        HfLayout::Dinov2 => "embeddings.position_embeddings",
    };
    let positions = s.shape(pos_name)?.iter().rev().nth(1).copied().unwrap_or(0);
    let grid = ((positions.saturating_sub(1)) as f64).sqrt() as usize;
    if grid * grid + 1 != positions {
        return Err(BundleError::Invalid(format!("{pos_name}: {positions} positions is not 1 + a square grid")));
    }
    let n_layer = (0..).take_while(|i| tensors.keys().any(|k| k.starts_with(&format!("{layer}.{i}.")))).count();
    let mlp = s.shape(&format!("{layer}.0.mlp.fc1.weight"))?.first().copied().unwrap_or(0);
    let cfg = VitConfig {
        image_channels: c, image_size: grid * p, patch: p, n_layer, n_head, n_embd: e, num_classes: 0, mlp,
        pre_norm: layout == HfLayout::ClipVision, layer_scale: layout == HfLayout::Dinov2, quick_gelu: layout == HfLayout::ClipVision,
        norm_eps: if layout == HfLayout::Dinov2 { 1e-6 } else { 1e-5 }, patch_bias: layout == HfLayout::Dinov2,
    };
    let mut out = NamedTensors::new();
    let mut put = |name: &str, t: HostTensor| {
        out.insert(name.to_string(), t);
    };
    let cls_pos = |t: &HostTensor, rows: usize| HostTensor { shape: vec![1, rows, e], values: t.values.clone() };
    match layout {
        HfLayout::ClipVision => {
            put("cls_token", cls_pos(s.get("vision_model.embeddings.class_embedding", &[e])?, 1));
            put("pos_emb", cls_pos(s.get(pos_name, &[positions, e])?, positions));
            put("pre_ln.gamma", s.get("vision_model.pre_layrnorm.weight", &[e])?.clone());
            put("pre_ln.beta", s.get("vision_model.pre_layrnorm.bias", &[e])?.clone());
            // last_hidden_state is taken before post_layernorm in CLIP; it is the natural final norm here
            put("ln_f.gamma", s.get("vision_model.post_layernorm.weight", &[e])?.clone());
            put("ln_f.beta", s.get("vision_model.post_layernorm.bias", &[e])?.clone());
        }
        HfLayout::Dinov2 => {
            put("cls_token", s.get("embeddings.cls_token", &[1, 1, e])?.clone());
            put("pos_emb", s.get(pos_name, &[1, positions, e])?.clone());
            put("patch_embed.bias", s.get("embeddings.patch_embeddings.projection.bias", &[e])?.clone());
            put("ln_f.gamma", s.get("layernorm.weight", &[e])?.clone());
            put("ln_f.beta", s.get("layernorm.bias", &[e])?.clone());
        }
    }
    put("patch_embed.weight", s.get(patch_w, &[e, c, p, p])?.clone());
    for i in 0..n_layer {
        let l = format!("{layer}.{i}");
        let b = format!("blocks.{i}");
        let (q, k, v, o, n1, n2) = match layout {
            HfLayout::ClipVision => ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj", "layer_norm1", "layer_norm2"),
            HfLayout::Dinov2 => ("attention.attention.query", "attention.attention.key", "attention.attention.value", "attention.output.dense", "norm1", "norm2"),
        };
        for (suffix, shape) in [("weight", vec![e, e]), ("bias", vec![e])] {
            let g = |n: &str| s.get(&format!("{l}.{n}.{suffix}"), &shape);
            put(&format!("{b}.attn.qkv.{suffix}"), fuse_qkv(g(q)?, g(k)?, g(v)?));
            let proj = g(o)?;
            put(&format!("{b}.attn.proj.{suffix}"), if suffix == "weight" { transpose(proj) } else { proj.clone() });
        }
        for (ours, theirs) in [("ln1", n1), ("ln2", n2)] {
            put(&format!("{b}.{ours}.gamma"), s.get(&format!("{l}.{theirs}.weight"), &[e])?.clone());
            put(&format!("{b}.{ours}.beta"), s.get(&format!("{l}.{theirs}.bias"), &[e])?.clone());
        }
        put(&format!("{b}.fc.weight"), transpose(s.get(&format!("{l}.mlp.fc1.weight"), &[mlp, e])?));
        put(&format!("{b}.fc.bias"), s.get(&format!("{l}.mlp.fc1.bias"), &[mlp])?.clone());
        put(&format!("{b}.proj.weight"), transpose(s.get(&format!("{l}.mlp.fc2.weight"), &[e, mlp])?));
        put(&format!("{b}.proj.bias"), s.get(&format!("{l}.mlp.fc2.bias"), &[e])?.clone());
        if layout == HfLayout::Dinov2 {
            put(&format!("{b}.ls1"), s.get(&format!("{l}.layer_scale1.lambda1"), &[e])?.clone());
            put(&format!("{b}.ls2"), s.get(&format!("{l}.layer_scale2.lambda1"), &[e])?.clone());
        }
    }
    // The supervised head is not part of these checkpoints: keep the freshly initialised one.
    let model = cfg.init(device)?;
    let head = crate::bundle::weights::module_to_tensors(&model.head);
    for (k, v) in head {
        out.insert(format!("head.{k}"), v);
    }
    let vit = load_module(model, out, file, device, false)?;
    Ok((cfg, vit))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use crate::bundle::weights::{from_safetensors, module_to_tensors, to_safetensors};

    /// A tiny checkpoint in `layout` (width 8, 2 layers, MLP 16, 3 channels, 8x8 image, patch 4).
    fn checkpoint(layout: HfLayout) -> NamedTensors {
        let mut rng = Rng::new(1, 2);
        let mut t = NamedTensors::new();
        let mut add = |name: String, shape: Vec<usize>| {
            let n = shape.iter().product();
            t.insert(name, HostTensor { shape, values: (0..n).map(|_| rng.uniform() as f32 - 0.5).collect() });
        };
        let (e, m) = (8, 16);
        match layout {
            HfLayout::ClipVision => {
                let v = "vision_model.";
                add(format!("{v}embeddings.class_embedding"), vec![e]);
                add(format!("{v}embeddings.patch_embedding.weight"), vec![e, 3, 4, 4]);
                add(format!("{v}embeddings.position_embedding.weight"), vec![5, e]);
                for n in ["pre_layrnorm", "post_layernorm"] {
                    add(format!("{v}{n}.weight"), vec![e]);
                    add(format!("{v}{n}.bias"), vec![e]);
                }
                for i in 0..2 {
                    let l = format!("{v}encoder.layers.{i}");
                    for p in ["q_proj", "k_proj", "v_proj", "out_proj"] {
                        add(format!("{l}.self_attn.{p}.weight"), vec![e, e]);
                        add(format!("{l}.self_attn.{p}.bias"), vec![e]);
                    }
                    for n in ["layer_norm1", "layer_norm2"] {
                        add(format!("{l}.{n}.weight"), vec![e]);
                        add(format!("{l}.{n}.bias"), vec![e]);
                    }
                    add(format!("{l}.mlp.fc1.weight"), vec![m, e]);
                    add(format!("{l}.mlp.fc1.bias"), vec![m]);
                    add(format!("{l}.mlp.fc2.weight"), vec![e, m]);
                    add(format!("{l}.mlp.fc2.bias"), vec![e]);
                }
            }
            HfLayout::Dinov2 => {
                add("embeddings.cls_token".into(), vec![1, 1, e]);
                add("embeddings.mask_token".into(), vec![1, e]);
                add("embeddings.position_embeddings".into(), vec![1, 5, e]);
                add("embeddings.patch_embeddings.projection.weight".into(), vec![e, 3, 4, 4]);
                add("embeddings.patch_embeddings.projection.bias".into(), vec![e]);
                add("layernorm.weight".into(), vec![e]);
                add("layernorm.bias".into(), vec![e]);
                for i in 0..2 {
                    let l = format!("encoder.layer.{i}");
                    for p in ["attention.attention.query", "attention.attention.key", "attention.attention.value", "attention.output.dense"] {
                        add(format!("{l}.{p}.weight"), vec![e, e]);
                        add(format!("{l}.{p}.bias"), vec![e]);
                    }
                    for n in ["norm1", "norm2"] {
                        add(format!("{l}.{n}.weight"), vec![e]);
                        add(format!("{l}.{n}.bias"), vec![e]);
                    }
                    add(format!("{l}.layer_scale1.lambda1"), vec![e]);
                    add(format!("{l}.layer_scale2.lambda1"), vec![e]);
                    add(format!("{l}.mlp.fc1.weight"), vec![m, e]);
                    add(format!("{l}.mlp.fc1.bias"), vec![m]);
                    add(format!("{l}.mlp.fc2.weight"), vec![e, m]);
                    add(format!("{l}.mlp.fc2.bias"), vec![e]);
                }
            }
        }
        t
    }

    #[test]
    fn imports_clip_and_dinov2_layouts() {
        let d = Device::flex();
        for layout in [HfLayout::ClipVision, HfLayout::Dinov2] {
            // through real safetensors bytes, as a user's file would arrive
            let bytes = to_safetensors(&checkpoint(layout));
            let t = from_safetensors("ckpt.safetensors", &bytes).unwrap();
            assert_eq!(HfLayout::detect(&t), Some(layout));
            let (cfg, vit) = import_vit(&t, "ckpt.safetensors", 2, &d).unwrap();
            assert_eq!((cfg.n_embd, cfg.n_layer, cfg.patch, cfg.image_size, cfg.mlp, cfg.image_channels), (8, 2, 4, 8, 16, 3));
            let ours = module_to_tensors(&vit);
            // the fused qkv weight holds q^T, k^T, v^T side by side
            let (q, k) = match layout {
                HfLayout::ClipVision => ("vision_model.encoder.layers.1.self_attn.q_proj.weight", "vision_model.encoder.layers.1.self_attn.k_proj.weight"),
                HfLayout::Dinov2 => ("encoder.layer.1.attention.attention.query.weight", "encoder.layer.1.attention.attention.key.weight"),
            };
            let qkv = &ours["blocks.1.attn.qkv.weight"];
            assert_eq!(qkv.shape, vec![8, 24]);
            for r in 0..8 {
                for c in 0..8 {
                    assert_eq!(qkv.values[r * 24 + c], t[q].values[c * 8 + r]);
                    assert_eq!(qkv.values[r * 24 + 8 + c], t[k].values[c * 8 + r]);
                }
            }
            let f = vit.patch_features(Tensor::random([2, 3, 8, 8], burn::tensor::Distribution::Normal(0.0, 1.0), &d));
            assert_eq!(f.dims(), [2, 4, 8]);
            let v: Vec<f32> = f.into_data().try_to_vec().unwrap();
            assert!(v.iter().all(|x| x.is_finite()));
        }
    }

    #[test]
    fn rejects_wrong_shapes_missing_tensors_and_unknown_layouts() {
        let d = Device::flex();
        let mut t = checkpoint(HfLayout::Dinov2);
        t.get_mut("encoder.layer.1.attention.attention.key.weight").unwrap().shape = vec![8, 4];
        assert!(matches!(import_vit(&t, "f", 2, &d), Err(BundleError::WrongShape { ref name, .. }) if name.contains("key")));
        let mut t = checkpoint(HfLayout::ClipVision);
        t.remove("vision_model.encoder.layers.0.mlp.fc2.bias");
        assert!(matches!(import_vit(&t, "f", 2, &d), Err(BundleError::MissingTensor { .. })));
        assert!(matches!(import_vit(&checkpoint(HfLayout::ClipVision), "f", 3, &d), Err(BundleError::Invalid(_))));
        assert!(matches!(import_vit(&NamedTensors::new(), "f", 2, &d), Err(BundleError::Invalid(_))));
    }
}
