//! Stage 2 training: the AR (GPT) and NAR (MaskGIT) proposal networks on a tokenizer's cached codes,
//! conditioned on the class or on a caption, with condition dropout for classifier-free guidance.
use super::parallel::{Devices, Share, batch_grads, materialise};
use super::text::Captions;
use super::*;
use tessera::proposal::condition::Condition;
use tessera::proposal::gpt::Gpt;
use tessera::proposal::maskgit::MaskGit;

/// What a proposal network learns to condition on.
pub enum Conditioning<'a> {
    /// The class of each training image.
    Classes(&'a [u16]),
    /// One of the captions of each training image (text-to-image).
    Text(&'a Captions),
}

impl Conditioning<'_> {
    /// The condition of the batch `idx`; the unconditional one (null class, empty prompt) with
    /// probability `dropout`.
    fn batch(&self, cfg: &ProposalConfig, idx: &[usize], rng: &mut Rng, dropout: f64, device: &Device) -> Condition {
        match self {
            Conditioning::Classes(labels) => {
                let classes: Vec<i64> = idx.iter().map(|&i| if rng.uniform() < dropout { cfg.null_class() as i64 } else { labels[i] as i64 }).collect();
                Condition::Class(Tensor::from_data(TensorData::new(classes, [idx.len()]), device))
            }
            Conditioning::Text(c) => Condition::Text(c.batch(idx, rng, dropout, device)),
        }
    }
}

/// Trains the NAR (MaskGIT) proposal network: each sequence gets a cosine-schedule number of
/// random positions masked; the loss is cross-entropy on those. Condition dropout as for AR.
pub fn train_nar(dir: &Path, cfg: &ProposalConfig, tokens: &[u16], cond: &Conditioning, dropout: f64, sched: &Schedule, devices: &Devices) -> Result<TrainState> {
    let devices = devices.autodiff();
    let device = devices.main().clone();
    device.seed(sched.seed);
    let model = cfg.init_maskgit(&device)?;
    materialise(&model); // the same initial weights on any number of devices
    let t = cfg.block_size;
    let n = tokens.len() / t;
    let (_, state) = run_stage("nar", dir, sched, serde_json::to_value(cfg)?, model, &device, |model, optim, step, lr, _| {
        let idx = sched.batch(step, n);
        let mut rng = Rng::new(sched.seed ^ 0x3A5C, step as u64);
        let condition = cond.batch(cfg, &idx, &mut rng, dropout, &device);
        let toks: Vec<i64> = idx.iter().flat_map(|&i| tokens[i * t..(i + 1) * t].iter().map(|&v| v as i64)).collect();
        let mut mask = Vec::with_capacity(idx.len() * t);
        for _ in &idx {
            let m = training_mask_count(rng.uniform(), t);
            mask.extend(random_mask(&mut rng, t, m));
        }
        let b = idx.len();
        // the loss is a mean over masked positions: a share weighs by its masked positions
        let masked = |rows: std::ops::Range<usize>| mask[rows.start * t..rows.end * t].iter().filter(|&&m| m).count();
        let total = masked(0..b).max(1);
        let (toks, mask_t) = (Tensor::<2, Int>::from_data(TensorData::new(toks, [b, t]), &device), Tensor::<2, Bool>::from_data(TensorData::new(mask.clone(), [b, t]), &device));
        let (grads, loss) = batch_grads(&model, &devices, b, |m: &MaskGit, s| {
            let whole = s.len == b;
            let (c, x, k) = if whole { (condition.clone(), toks.clone(), mask_t.clone()) } else {
                (condition.rows(s.start, s.len, &s.device), toks.clone().narrow(0, s.start, s.len).to_device(&s.device), mask_t.clone().narrow(0, s.start, s.len).to_device(&s.device))
            };
            let l = m.loss_with(&c, x, k, cfg.mask_token())?;
            Ok(if whole { l } else { l.mul_scalar(masked(s.start..s.start + s.len) as f64 / total as f64) })
        })?;
        Ok(apply(model, optim, grads, loss, lr, step))
    })?;
    Ok(state)
}

/// The AR loss of one data-parallel share of the batch (`condition`, `toks` `[b, t]`), weighted by its
/// rows: the loss is a mean over rows of equal length.
pub(crate) fn ar_share_loss(m: &Gpt, condition: &Condition, toks: &Tensor<2, Int>, s: &Share) -> Result<Tensor<1>> {
    let b = toks.dims()[0];
    if s.len == b {
        return Ok(m.loss_with(condition, toks.clone())?);
    }
    let l = m.loss_with(&condition.rows(s.start, s.len, &s.device), toks.clone().narrow(0, s.start, s.len).to_device(&s.device))?;
    Ok(l.mul_scalar(s.len as f64 / b as f64))
}

/// Trains the AR proposal network on cached tokens; the condition is replaced by the
/// unconditional one with probability `dropout` (classifier-free guidance).
pub fn train_proposal(dir: &Path, cfg: &ProposalConfig, tokens: &[u16], cond: &Conditioning, dropout: f64, sched: &Schedule, devices: &Devices) -> Result<TrainState> {
    let devices = devices.autodiff();
    let device = devices.main().clone();
    device.seed(sched.seed);
    let model = cfg.init_gpt(&device)?;
    materialise(&model); // the same initial weights on any number of devices
    let t = cfg.block_size;
    let n = tokens.len() / t;
    let (_, state) = run_stage("proposal", dir, sched, serde_json::to_value(cfg)?, model, &device, |model, optim, step, lr, _| {
        let idx = sched.batch(step, n);
        let mut rng = Rng::new(sched.seed ^ 0xC1A55, step as u64);
        let condition = cond.batch(cfg, &idx, &mut rng, dropout, &device);
        let toks: Vec<i64> = idx.iter().flat_map(|&i| tokens[i * t..(i + 1) * t].iter().map(|&v| v as i64)).collect();
        let b = idx.len();
        let toks = Tensor::<2, Int>::from_data(TensorData::new(toks, [b, t]), &device);
        let (grads, loss) = batch_grads(&model, &devices, b, |m: &Gpt, s| ar_share_loss(m, &condition, &toks, s))?;
        Ok(apply(model, optim, grads, loss, lr, step))
    })?;
    Ok(state)
}
