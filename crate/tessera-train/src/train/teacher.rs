//! The IU teacher: supervised ViT (a classifier) or self-supervised (masked image modelling), and
//! its patch features (what VQ-KD distils and Cluster clusters).
use super::*;

/// Trains the supervised ViT teacher (cross-entropy on the class token).
pub fn train_teacher(dir: &Path, cfg: &VitConfig, data: &Dataset, sched: &Schedule, device: &Device) -> Result<TrainState> {
    let device = device.clone().autodiff();
    device.seed(sched.seed);
    let model = cfg.init(&device)?;
    let (_, state) = run_stage("teacher", dir, sched, serde_json::to_value(cfg)?, model, &device, |model: Vit, optim, step, lr, _| {
        let idx = sched.batch(step, data.len());
        let (x, y) = data.batch(&idx);
        let b = idx.len();
        let logits = model.forward(data.tensor(x, b, &device));
        let loss = burn::nn::loss::CrossEntropyLossConfig::new().init(&device).forward(logits, Tensor::from_data(TensorData::new(y, [b]), &device));
        Ok(update(model, optim, loss, lr, step))
    })?;
    Ok(state)
}

/// `n` flags with `m` of them set at distinct random positions (a partial Fisher-Yates shuffle).
pub(crate) fn random_mask(rng: &mut Rng, n: usize, m: usize) -> Vec<bool> {
    let mut order: Vec<usize> = (0..n).collect();
    for j in 0..m {
        let r = j + (rng.next_u64() % (n - j) as u64) as usize;
        order.swap(j, r);
    }
    let mut row = vec![false; n];
    order[..m].iter().for_each(|&p| row[p] = true);
    row
}

/// Trains the self-supervised teacher by masked image modelling (`tessera::mim`); afterwards the
/// ViT alone is written to `dir` as the teacher checkpoint (the MIM head stays in `dir/mim`).
pub fn train_teacher_mim(dir: &Path, cfg: &MimConfig, data: &Dataset, sched: &Schedule, device: &Device) -> Result<TrainState> {
    let ad = device.clone().autodiff();
    ad.seed(sched.seed);
    let model = cfg.init(&ad)?;
    let n = cfg.vit.grid() * cfg.vit.grid();
    let masked = ((n as f64) * cfg.mask_ratio).round() as usize;
    let ck = Checkpoint::new(dir)?;
    // resumed when both it and its ViT checkpoint finished at this schedule: `run_stage` keeps the MIM
    // stage as it is, and so is the ViT written when it finished
    let kept = sched.resume
        && [&Checkpoint::new(&dir.join("mim"))?, &ck]
            .into_iter()
            .all(|c| c.exists() && c.state().is_ok_and(|s| s.finished_at(sched.steps)));
    let (model, state) = run_stage("teacher-mim", &dir.join("mim"), sched, serde_json::to_value(cfg)?, model, &ad, |model: Mim, optim, step, lr, _| {
        let idx = sched.batch(step, data.len());
        let (x, _) = data.batch(&idx);
        let b = idx.len();
        let mut rng = Rng::new(sched.seed ^ 0x313, step as u64);
        let mut mask = Vec::with_capacity(b * n);
        for _ in 0..b {
            mask.extend(random_mask(&mut rng, n, masked));
        }
        let loss = model.loss(data.tensor(x, b, &ad), Tensor::from_data(TensorData::new(mask, [b, n]), &ad));
        Ok(update(model, optim, loss, lr, step))
    })?;
    let teacher = TrainState { stage: "teacher".into(), config: serde_json::to_value(&cfg.vit)?, ..state.clone() };
    if !kept {
        ck.save(&model.vit, None, &teacher)?;
    }
    Ok(state)
}

/// Patch features of the first `n` training images (`[n * patches, dim]`, inference device).
pub fn teacher_features(teacher: &Teacher, data: &Dataset, n: usize, device: &Device) -> Vec<f32> {
    let mut out = Vec::new();
    for start in (0..n.min(data.len())).step_by(250) {
        let idx: Vec<usize> = (start..(start + 250).min(n).min(data.len())).collect();
        let (x, _) = data.batch(&idx);
        let f = teacher.patch_features(data.tensor(x, idx.len(), device));
        out.extend(f.into_data().convert::<f32>().try_to_vec::<f32>().expect("floats"));
    }
    out
}

