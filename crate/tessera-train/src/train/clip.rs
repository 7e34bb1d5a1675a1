//! The tiny CLIP (text-image agreement scorer of text to image): CLIP's symmetric contrastive loss
//! over batches of training images, each paired with one of its captions (a seeded draw).
use super::*;
use super::text::Captions;
use tessera::train::clip::TinyClipConfig;

pub fn train_clip(dir: &Path, cfg: &TinyClipConfig, data: &Dataset, captions: &Captions, sched: &Schedule, device: &Device) -> Result<TrainState> {
    let device = device.clone().autodiff();
    device.seed(sched.seed);
    let model = cfg.init(&device)?;
    let (_, state) = run_stage("clip", dir, sched, serde_json::to_value(cfg)?, model, &device, |model, optim, step, lr, _| {
        // distinct images per batch: a duplicate would be its own negative
        let mut idx = sched.batch(step, data.len());
        idx.sort_unstable();
        idx.dedup();
        let mut rng = Rng::new(sched.seed ^ 0xC11F, step as u64);
        let text = captions.batch(&idx, &mut rng, 0.0, &device);
        let (x, _) = data.batch(&idx);
        let loss = model.loss(data.tensor(x, idx.len(), &device), &text, cfg.logit_scale);
        Ok(update(model, optim, loss, lr, step))
    })?;
    Ok(state)
}
