//! The small CNN classifier: VQGAN's perceptual-loss features, and (another seed and width) the
//! in-project evaluator.
use super::*;

/// Trains the classifier (cross-entropy on real training images).
pub fn train_classifier(dir: &Path, cfg: &ClassifierConfig, data: &Dataset, sched: &Schedule, device: &Device) -> Result<TrainState> {
    let device = device.clone().autodiff();
    device.seed(sched.seed);
    let model = cfg.init(&device)?;
    let (_, state) = run_stage("classifier", dir, sched, serde_json::to_value(cfg)?, model, &device, |model, optim, step, lr, _| {
        let idx = sched.batch(step, data.len());
        let (x, y) = data.batch(&idx);
        let b = idx.len();
        let logits = model.forward(data.tensor(x, b, &device));
        let loss = burn::nn::loss::CrossEntropyLossConfig::new()
            .init(&device)
            .forward(logits, Tensor::from_data(TensorData::new(y, [b]), &device));
        Ok(update(model, optim, loss, lr, step))
    })?;
    Ok(state)
}

