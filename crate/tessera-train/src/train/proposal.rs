//! Stage 2 training: the AR (GPT) and NAR (MaskGIT) proposal networks on a tokenizer's cached codes,
//! with class dropout for classifier-free guidance.
use super::*;

/// Trains the NAR (MaskGIT) proposal network: each sequence gets a cosine-schedule number of
/// random positions masked; the loss is cross-entropy on those. Class dropout as for AR.
pub fn train_nar(dir: &Path, cfg: &ProposalConfig, tokens: &[u16], labels: &[u16], class_dropout: f64, sched: &Schedule, device: &Device) -> Result<TrainState> {
    let device = device.clone().autodiff();
    device.seed(sched.seed);
    let model = cfg.init_maskgit(&device)?;
    let t = cfg.block_size;
    let n = labels.len();
    let (_, state) = run_stage("nar", dir, sched, serde_json::to_value(cfg)?, model, &device, |model, optim, step, lr, _| {
        let idx = sched.batch(step, n);
        let mut rng = Rng::new(sched.seed ^ 0x3A5C, step as u64);
        let classes: Vec<i64> = idx.iter().map(|&i| if rng.uniform() < class_dropout { cfg.null_class() as i64 } else { labels[i] as i64 }).collect();
        let toks: Vec<i64> = idx.iter().flat_map(|&i| tokens[i * t..(i + 1) * t].iter().map(|&v| v as i64)).collect();
        let mut mask = Vec::with_capacity(idx.len() * t);
        for _ in &idx {
            let m = training_mask_count(rng.uniform(), t);
            mask.extend(random_mask(&mut rng, t, m));
        }
        let b = idx.len();
        let loss = model.loss(
            Tensor::from_data(TensorData::new(classes, [b]), &device),
            Tensor::from_data(TensorData::new(toks, [b, t]), &device),
            Tensor::from_data(TensorData::new(mask, [b, t]), &device),
            cfg.mask_token(),
        );
        Ok(update(model, optim, loss, lr, step))
    })?;
    Ok(state)
}

/// Trains the AR proposal network on cached tokens; the class is replaced by the null class
/// with probability `class_dropout` (classifier-free guidance).
pub fn train_proposal(dir: &Path, cfg: &ProposalConfig, tokens: &[u16], labels: &[u16], class_dropout: f64, sched: &Schedule, device: &Device) -> Result<TrainState> {
    let device = device.clone().autodiff();
    device.seed(sched.seed);
    let model = cfg.init_gpt(&device)?;
    let t = cfg.block_size;
    let n = labels.len();
    let (_, state) = run_stage("proposal", dir, sched, serde_json::to_value(cfg)?, model, &device, |model, optim, step, lr, _| {
        let idx = sched.batch(step, n);
        let mut rng = Rng::new(sched.seed ^ 0xC1A55, step as u64);
        let classes: Vec<i64> =
            idx.iter().map(|&i| if rng.uniform() < class_dropout { cfg.null_class() as i64 } else { labels[i] as i64 }).collect();
        let toks: Vec<i64> = idx.iter().flat_map(|&i| tokens[i * t..(i + 1) * t].iter().map(|&v| v as i64)).collect();
        let b = idx.len();
        let loss = model.loss(
            Tensor::from_data(TensorData::new(classes, [b]), &device),
            Tensor::from_data(TensorData::new(toks, [b, t]), &device),
        );
        Ok(update(model, optim, loss, lr, step))
    })?;
    Ok(state)
}

