//! Resumable training state: model weights (safetensors, with parameter ids), the optimizer state
//! (burnpack) and `state.json` (step, elapsed time, loss log). Written every `--checkpoint-every`
//! steps, so a killed run continues with `--resume` from the last one. Each file is written to a
//! temporary name and renamed; `state.json` goes last and records the sha256 of every other file,
//! so a set of files mixed from two steps (a kill between two renames) is detected on load and
//! refused rather than resumed from new weights with an old step count.
use anyhow::{Context, Result, bail};
use burn::optim::ModuleOptimizer;
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tessera::bundle::sha256_hex;
use tessera::bundle::weights::{from_safetensors, load_module_with_ids, module_param_ids, module_to_tensors, to_safetensors};

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
    /// sha256 of each file of this checkpoint (`model.safetensors`, `param_ids.json`, `optim.bpk`).
    #[serde(default)]
    pub files: BTreeMap<String, String>,
}

impl TrainState {
    /// Finished, at exactly `steps`: resuming it with that schedule has nothing to do.
    pub fn finished_at(&self, steps: usize) -> bool {
        self.done && self.step == steps
    }
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

fn file_sha256(path: &Path) -> Result<String> {
    Ok(sha256_hex(&std::fs::read(path).with_context(|| format!("reading {}", path.display()))?))
}

impl Checkpoint {
    /// A checkpoint directory; nothing is created until the first `save`.
    pub fn new(dir: &Path) -> Result<Self> {
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
    /// The state of a finished checkpoint, else an error naming `what` and how to train it (`how`).
    pub fn finished(&self, what: &str, how: &str) -> Result<TrainState> {
        if self.exists() {
            let s = self.state()?;
            if s.done {
                return Ok(s);
            }
        }
        anyhow::bail!("no finished {what} in {} ({how})", self.dir.display())
    }

    pub fn save<M: Module>(&self, model: &M, optim: Option<&ModuleOptimizer>, state: &TrainState) -> Result<()> {
        std::fs::create_dir_all(&self.dir).with_context(|| format!("creating {}", self.dir.display()))?;
        let mut state = state.clone();
        state.files.clear();
        let weights = to_safetensors(&module_to_tensors(model));
        state.files.insert("model.safetensors".into(), sha256_hex(&weights));
        write_atomic(&self.weights_path(), &weights)?;
        let ids = serde_json::to_string(&module_param_ids(model))?;
        state.files.insert("param_ids.json".into(), sha256_hex(ids.as_bytes()));
        write_atomic(&self.dir.join("param_ids.json"), ids.as_bytes())?;
        if let Some(o) = optim {
            let tmp = self.dir.join("optim.bpk.tmp");
            o.save(&tmp).map_err(|e| anyhow::anyhow!("saving optimizer state: {e:?}"))?;
            state.files.insert("optim.bpk".into(), file_sha256(&tmp)?);
            std::fs::rename(&tmp, self.dir.join("optim.bpk"))?;
        }
        // state.json last: it marks the checkpoint complete and names the exact files of this step
        write_atomic(&self.dir.join("state.json"), serde_json::to_string_pretty(&state)?.as_bytes())
    }

    /// Every file that `state.json` lists has the checksum it recorded (checkpoints written before
    /// checksums were recorded list none and pass).
    pub fn verify(&self) -> Result<()> {
        let state = self.state()?;
        for (file, sha) in &state.files {
            let actual = file_sha256(&self.dir.join(file))?;
            if &actual != sha {
                bail!(
                    "the checkpoint in {} is inconsistent: {file} is not the one state.json (step {}) was written with \
                     (the run was stopped while writing a checkpoint). Resuming would not be exact; delete {} to retrain this stage",
                    self.dir.display(),
                    state.step,
                    self.dir.display()
                );
            }
        }
        Ok(())
    }

    /// Loads weights (and, when `optim` is given, its state) into a freshly initialised `model`.
    pub fn load<M: Module>(&self, model: M, optim: Option<ModuleOptimizer>, device: &Device, trainable: bool) -> Result<(M, Option<ModuleOptimizer>)> {
        self.verify()?;
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

/// `tessera-train curves`: the logged losses of every stage a run has (in training order) as one
/// PNG (`plots::loss_png`).
pub fn curves(run: &Path, out: &Path) -> Result<()> {
    let mut stages = Vec::new();
    for s in ["tokenizer", "vqkd", "decoder", "disc", "ar", "nar"] {
        let ck = Checkpoint::new(&run.join(s))?;
        if !ck.exists() {
            continue;
        }
        let st = ck.state()?;
        // an assembled tokenizer (VQ-KD, Cluster) has no losses of its own: its parts do
        if !st.losses.is_empty() {
            stages.push((format!("{s} ({} steps)", st.step), st.losses));
        }
    }
    if stages.is_empty() {
        anyhow::bail!("no stage with logged losses in {}", run.display());
    }
    crate::plots::loss_png(&stages, &format!("training losses: {}", run.display()), out)?;
    eprintln!("wrote {}", out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera::proposal::ProposalConfig;

    #[test]
    fn files_of_two_steps_are_refused_not_resumed() {
        let dir = std::env::temp_dir().join(format!("tessera-ckpt-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let d = Device::flex();
        let cfg = ProposalConfig { vocab_size: 8, num_classes: 2, block_size: 4, n_layer: 1, n_head: 2, n_embd: 8, text: None };
        let ck = Checkpoint::new(&dir).unwrap();
        assert!(!dir.exists(), "a checkpoint directory is created by the first save, not by `new`");
        let step1 = cfg.init_gpt(&d).unwrap();
        ck.save(&step1, None, &TrainState { step: 1, ..Default::default() }).unwrap();
        ck.load(cfg.init_gpt(&d).unwrap(), None, &d, false).unwrap();
        // A kill between the renames of step 2: its weights are in place, state.json is step 1's.
        let step2 = cfg.init_gpt(&d).unwrap();
        std::fs::write(ck.weights_path(), to_safetensors(&module_to_tensors(&step2))).unwrap();
        let err = ck.load(cfg.init_gpt(&d).unwrap(), None, &d, false).err().expect("a mixed checkpoint must be refused").to_string();
        assert!(err.contains("inconsistent") && err.contains("step 1"), "{err}");
        // A complete save of step 2 is consistent again.
        ck.save(&step2, None, &TrainState { step: 2, ..Default::default() }).unwrap();
        let (back, _) = ck.load(cfg.init_gpt(&d).unwrap(), None, &d, false).unwrap();
        assert_eq!(module_to_tensors(&back), module_to_tensors(&step2));
        std::fs::remove_dir_all(&dir).ok();
    }
}
