//! Resumable training state: model weights (safetensors, with parameter ids), the optimizer state
//! (burnpack) and `state.json` (step, elapsed time, loss log). Written atomically every
//! `--checkpoint-every` steps, so a killed run continues with `--resume` from the last one.
use anyhow::{Context, Result};
use burn::optim::ModuleOptimizer;
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tessera::weights::{from_safetensors, load_module_with_ids, module_param_ids, module_to_tensors, to_safetensors};

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct TrainState {
    pub stage: String,
    pub step: usize,
    pub steps: usize,
    pub seed: u64,
    pub batch_size: usize,
    pub elapsed_s: f64,
    pub command: String,
    pub config: serde_json::Value,
    /// (step, loss) every few steps.
    pub losses: Vec<(usize, f32)>,
    #[serde(default)]
    pub extra: BTreeMap<String, serde_json::Value>,
    pub done: bool,
}

pub struct Checkpoint {
    pub dir: PathBuf,
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

impl Checkpoint {
    pub fn new(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self { dir: dir.to_path_buf() })
    }
    pub fn weights_path(&self) -> PathBuf {
        self.dir.join("model.safetensors")
    }
    pub fn exists(&self) -> bool {
        self.dir.join("state.json").exists() && self.weights_path().exists()
    }
    pub fn state(&self) -> Result<TrainState> {
        let s = std::fs::read_to_string(self.dir.join("state.json"))?;
        Ok(serde_json::from_str(&s)?)
    }

    pub fn save<M: Module>(&self, model: &M, optim: Option<&ModuleOptimizer>, state: &TrainState) -> Result<()> {
        write_atomic(&self.weights_path(), &to_safetensors(&module_to_tensors(model)))?;
        write_atomic(&self.dir.join("param_ids.json"), serde_json::to_string(&module_param_ids(model))?.as_bytes())?;
        if let Some(o) = optim {
            let tmp = self.dir.join("optim.bpk.tmp");
            o.save(&tmp).map_err(|e| anyhow::anyhow!("saving optimizer state: {e:?}"))?;
            std::fs::rename(&tmp, self.dir.join("optim.bpk"))?;
        }
        // state.json last: it marks the checkpoint complete
        write_atomic(&self.dir.join("state.json"), serde_json::to_string_pretty(state)?.as_bytes())
    }

    /// Loads weights (and, when `optim` is given, its state) into a freshly initialised `model`.
    pub fn load<M: Module>(&self, model: M, optim: Option<ModuleOptimizer>, device: &Device, trainable: bool) -> Result<(M, Option<ModuleOptimizer>)> {
        let bytes = std::fs::read(self.weights_path())?;
        let file = self.weights_path().display().to_string();
        let ids: Option<BTreeMap<String, u64>> =
            std::fs::read_to_string(self.dir.join("param_ids.json")).ok().and_then(|s| serde_json::from_str(&s).ok());
        let model = load_module_with_ids(model, from_safetensors(&file, &bytes)?, &file, device, trainable, ids.as_ref())?;
        let optim = match optim {
            Some(o) if self.dir.join("optim.bpk").exists() => {
                Some(o.load(self.dir.join("optim.bpk")).map_err(|e| anyhow::anyhow!("loading optimizer state: {e:?}"))?)
            }
            o => o,
        };
        Ok((model, optim))
    }
}
