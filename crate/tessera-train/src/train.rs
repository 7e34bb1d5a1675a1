//! The training loops: the IU teacher (supervised ViT), the tokenizers (VQ and FSQ on pixels; VQ-KD
//! by feature distillation; Cluster by k-means on teacher features; the last two then get a pixel
//! decoder trained on their frozen tokens), the AR and NAR proposal networks on a tokenizer's codes,
//! and the classifier used to measure class consistency. Each is resumable (see `checkpoint.rs`),
//! deterministic given `--seed` (the batch at step s depends only on the seed and s), and shows
//! an indicatif progress bar.
use crate::checkpoint::{Checkpoint, TrainState};
use crate::data::{Dataset, SIZE};
use anyhow::Result;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::Path;
use std::time::Instant;
use tessera::train::classifier::{Classifier, ClassifierConfig};
use tessera::tokenizer::decoder::DecoderConfig;
use tessera::tokenizer::fsq::{FsqConfig, FsqTokenizer};
use tessera::train::kmeans::kmeans_cosine;
use tessera::proposal::ProposalConfig;
use tessera::proposal::maskgit::training_mask_count;
use tessera::teacher::mim::{Mim, MimConfig};
use tessera::rng::Rng;
use tessera::ops::rows_to_grid;
use tessera::tokenizer::AnyTokenizer;
use tessera::teacher::vit::{Vit, VitConfig};
use tessera::tokenizer::vqgan::{VqganTokenizer, VqganConfig};
use tessera::train::vqgan_loss::{PatchDiscriminator, VqganLossConfig, adaptive_weight, generator_loss, hinge_d_loss, perceptual_loss};
use tessera::tokenizer::quantizer::cosine::ema_update;
use tessera::tokenizer::vqkd::{VqKdConfig, VqKdDistill};

/// Options common to every training stage.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub steps: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub warmup: usize,
    pub seed: u64,
    pub checkpoint_every: usize,
    pub resume: bool,
    pub command: String,
}

impl Schedule {
    /// Linear warm-up, then cosine decay to 10% of the peak.
    pub fn lr_at(&self, step: usize) -> f64 {
        if step < self.warmup {
            return self.lr * (step + 1) as f64 / self.warmup as f64;
        }
        let t = (step - self.warmup) as f64 / (self.steps - self.warmup).max(1) as f64;
        self.lr * (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * t.min(1.0)).cos()))
    }
    /// Indices of the batch at `step` (sampled with replacement from `n` items).
    pub fn batch(&self, step: usize, n: usize) -> Vec<usize> {
        let mut rng = Rng::new(self.seed, step as u64);
        (0..self.batch_size).map(|_| (rng.next_u64() % n as u64) as usize).collect()
    }
}

fn bar(stage: &str, sched: &Schedule, start: usize) -> ProgressBar {
    let pb = ProgressBar::new(sched.steps as u64);
    pb.set_style(
        ProgressStyle::with_template("{prefix:>10} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta}) {msg}")
            .expect("valid template"),
    );
    pb.set_prefix(stage.to_string());
    pb.set_position(start as u64);
    pb
}

fn optimizer() -> ModuleOptimizer {
    AdamWConfig::new().with_weight_decay(0.0).init()
}

/// Shared loop scaffolding: resume, step, log, checkpoint.
fn run_stage<M: Module>(
    stage: &str,
    dir: &Path,
    sched: &Schedule,
    config: serde_json::Value,
    mut model: M,
    device: &Device,
    mut step_fn: impl FnMut(M, &mut ModuleOptimizer, usize, f64, &mut TrainState) -> Result<(M, Option<f32>)>,
) -> Result<(M, TrainState)> {
    let ckpt = Checkpoint::new(dir)?;
    let mut optim = optimizer();
    let mut state = TrainState {
        stage: stage.into(),
        steps: sched.steps,
        seed: sched.seed,
        batch_size: sched.batch_size,
        command: sched.command.clone(),
        config,
        ..Default::default()
    };
    if sched.resume && ckpt.exists() {
        let prev = ckpt.state()?;
        let (m, o) = ckpt.load(model, Some(optim), device, true)?;
        model = m;
        optim = o.expect("optimizer");
        eprintln!("{stage}: resuming from step {} of {}", prev.step, prev.steps);
        state = TrainState { steps: sched.steps, command: sched.command.clone(), done: false, ..prev };
    } else if ckpt.exists() && !sched.resume {
        eprintln!("{stage}: {} holds a checkpoint; starting over (pass --resume to continue it)", dir.display());
    }
    let pb = bar(stage, sched, state.step);
    let t0 = Instant::now();
    let elapsed0 = state.elapsed_s;
    while state.step < sched.steps {
        let lr = sched.lr_at(state.step);
        let (m, loss) = step_fn(model, &mut optim, state.step, lr, &mut state)?;
        model = m;
        state.step += 1;
        if let Some(l) = loss {
            state.losses.push((state.step, l));
            pb.set_message(format!("loss {l:.4} lr {lr:.2e}"));
        }
        pb.set_position(state.step as u64);
        if pb.is_hidden() && state.step % 50 == 0 {
            // not a terminal (CI, `| tee`): a plain progress line instead of the bar
            let l = state.losses.last().map_or(f32::NAN, |l| l.1);
            eprintln!("{stage}: step {}/{} loss {l:.4} lr {lr:.2e} ({:.0}s)", state.step, sched.steps, elapsed0 + t0.elapsed().as_secs_f64());
        }
        if state.step % sched.checkpoint_every == 0 || state.step == sched.steps {
            state.elapsed_s = elapsed0 + t0.elapsed().as_secs_f64();
            state.done = state.step == sched.steps;
            ckpt.save(&model, Some(&optim), &state)?;
        }
    }
    pb.finish();
    state.elapsed_s = elapsed0 + t0.elapsed().as_secs_f64();
    state.done = true;
    ckpt.save(&model, Some(&optim), &state)?;
    Ok((model, state))
}

/// One optimizer step on `loss`; returns the model and, every 10 steps, the loss value (a
/// read-back, so not every step).
fn update<M: Module>(model: M, optim: &mut ModuleOptimizer, loss: Tensor<1>, lr: f64, step: usize) -> (M, Option<f32>) {
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let model = optim.step(lr, model, grads);
    (model, (step % 10 == 0).then(|| loss.into_scalar::<f32>()))
}

fn images(x: Vec<f32>, n: usize, device: &Device) -> Tensor<4> {
    Tensor::from_data(TensorData::new(x, [n, 1, SIZE, SIZE]), device)
}

/// Codes unused since the last check and, for each, a random encoder output of this batch to restart
/// it from (the usual VQ remedy against codebook collapse); `None` when every code is in use.
fn dead_code_restarts(usage: &[u32], latents: Tensor<2>, seed: u64, step: usize) -> Option<(Vec<usize>, Tensor<2>)> {
    let dead: Vec<usize> = (0..usage.len()).filter(|&i| usage[i] == 0).collect();
    if dead.is_empty() {
        return None;
    }
    let [rows, d] = latents.dims();
    let device = latents.device();
    let lat: Vec<f32> = latents.detach().into_data().convert::<f32>().try_to_vec().expect("floats");
    let mut rng = Rng::new(seed ^ 0x5EED, step as u64);
    let mut rep = Vec::with_capacity(dead.len() * d);
    for _ in &dead {
        let r = (rng.next_u64() % rows as u64) as usize;
        rep.extend_from_slice(&lat[r * d..(r + 1) * d]);
    }
    let n = dead.len();
    Some((dead, Tensor::from_data(TensorData::new(rep, [n, d]), &device)))
}

/// Trains the VQ tokenizer: MSE on pixels + codebook/commitment loss; dead codes are re-seeded
/// from encoder outputs every 50 steps.
pub fn train_tokenizer(dir: &Path, cfg: &VqganConfig, data: &Dataset, sched: &Schedule, device: &Device) -> Result<TrainState> {
    let device = device.clone().autodiff();
    device.seed(sched.seed);
    let model = cfg.init(&device)?;
    let k = cfg.codebook_size;
    let mut usage = vec![0u32; k];
    let mut reseeded_total = 0usize;
    let (_, state) = run_stage("tokenizer", dir, sched, serde_json::to_value(cfg)?, model, &device, |model, optim, step, lr, state| {
        let idx = sched.batch(step, data.len());
        let (x, _) = data.batch(&idx);
        let x = images(x, idx.len(), &device);
        let out = model.forward(x.clone());
        let rec = (out.reconstruction - x).powi_scalar(2).mean();
        let loss = rec.clone() + out.vq_loss;
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let mut model: VqganTokenizer = optim.step(lr, model, grads);
        let toks: Vec<i64> = out.tokens.into_data().convert::<i64>().try_to_vec().expect("ints");
        for t in toks {
            usage[t as usize] += 1;
        }
        if step % 50 == 0 {
            if let Some((dead, rep)) = dead_code_restarts(&usage, out.latents, sched.seed, step) {
                reseeded_total += dead.len();
                model = VqganTokenizer { quantizer: model.quantizer.reseed(&dead, rep), ..model };
            }
            usage.iter_mut().for_each(|u| *u = 0);
            state.extra.insert("codes_reseeded".into(), reseeded_total.into());
        }
        let l = (step % 10 == 0).then(|| rec.into_scalar::<f32>());
        Ok((model, l))
    })?;
    Ok(state)
}

/// Tokenizes a whole data set with a trained tokenizer (inference device, batches of 500).
pub fn tokenize(tokenizer: &AnyTokenizer, data: &Dataset, device: &Device) -> Vec<u16> {
    let mut out = Vec::with_capacity(data.len() * 64);
    for start in (0..data.len()).step_by(500) {
        let idx: Vec<usize> = (start..(start + 500).min(data.len())).collect();
        let (x, _) = data.batch(&idx);
        let t = tokenizer.encode(images(x, idx.len(), device));
        out.extend(t.into_data().convert::<i64>().try_to_vec::<i64>().expect("ints").into_iter().map(|v| v as u16));
    }
    out
}

/// What VQGAN-style training needs from a model with a pixel decoder: the pixel-reconstruction
/// tokenizers (VQ, FSQ) and the decoder of a feature tokenizer on its frozen tokens.
pub trait PixelTokenizer: Module + Clone {
    /// Name of the training stage (progress, checkpoint state).
    const STAGE: &'static str = "tokenizer";
    /// Quantized latent grid, auxiliary loss (VQ: codebook + commitment), tokens `[b * g * g]`,
    /// and the pre-quantization latent rows (for re-seeding dead codes), for the training
    /// images `idx` (given as `images`).
    fn quantize_images(&self, images: Tensor<4>, idx: &[usize]) -> (Tensor<4>, Option<Tensor<1>>, Tensor<1, Int>, Tensor<2>);
    fn pixel_decoder(&self) -> &tessera::tokenizer::decoder::Decoder;
    /// Re-seeds unused codes with the given latent rows (VQ); FSQ has nothing to re-seed.
    fn reseed(self, _dead: &[usize], _rows: Tensor<2>) -> Self {
        self
    }
    fn codebook_size(&self) -> usize;
}

impl PixelTokenizer for VqganTokenizer {
    fn quantize_images(&self, images: Tensor<4>, _idx: &[usize]) -> (Tensor<4>, Option<Tensor<1>>, Tensor<1, Int>, Tensor<2>) {
        let b = images.dims()[0];
        let latents = tessera::ops::grid_to_rows(self.encoder.forward(images));
        let q = self.quantizer.forward(latents.clone());
        (rows_to_grid(q.quantized, b, self.grid), Some(q.loss), q.tokens, latents)
    }
    fn pixel_decoder(&self) -> &tessera::tokenizer::decoder::Decoder {
        &self.decoder
    }
    fn reseed(self, dead: &[usize], rows: Tensor<2>) -> Self {
        VqganTokenizer { quantizer: self.quantizer.reseed(dead, rows), ..self }
    }
    fn codebook_size(&self) -> usize {
        self.quantizer.codebook_size()
    }
}

impl PixelTokenizer for FsqTokenizer {
    fn quantize_images(&self, images: Tensor<4>, _idx: &[usize]) -> (Tensor<4>, Option<Tensor<1>>, Tensor<1, Int>, Tensor<2>) {
        let b = images.dims()[0];
        let latents = tessera::ops::grid_to_rows(self.encoder.forward(images));
        let (codes, tokens) = self.quantizer.quantize(latents.clone());
        (rows_to_grid(codes, b, self.grid), None, tokens, latents)
    }
    fn pixel_decoder(&self) -> &tessera::tokenizer::decoder::Decoder {
        &self.decoder
    }
    fn codebook_size(&self) -> usize {
        self.quantizer.codebook_size()
    }
}

/// The pixel decoder of a feature tokenizer (VQ-KD, Cluster) seen as a `PixelTokenizer`: the
/// codebook and the training set's tokens are frozen, so `train_vqgan` trains the decoder alone,
/// with the same losses as VQGAN and FSQ (the paper trains these decoders with LPIPS + GAN too).
#[derive(Module, Debug)]
pub struct FrozenTokenDecoder {
    pub decoder: tessera::tokenizer::decoder::Decoder,
    /// `[codebook_size, latent_dim]`
    #[module(skip)]
    codes: Tensor<2>,
    /// The training set's tokens, `grid * grid` per image.
    #[module(skip)]
    tokens: std::sync::Arc<Vec<u16>>,
    #[module(skip)]
    grid: usize,
}

impl PixelTokenizer for FrozenTokenDecoder {
    const STAGE: &'static str = "decoder";
    fn quantize_images(&self, _images: Tensor<4>, idx: &[usize]) -> (Tensor<4>, Option<Tensor<1>>, Tensor<1, Int>, Tensor<2>) {
        let (grid, tokens, rows) = frozen_latents(&self.codes, &self.tokens, self.grid, idx);
        (grid, None, tokens, rows)
    }
    fn pixel_decoder(&self) -> &tessera::tokenizer::decoder::Decoder {
        &self.decoder
    }
    fn codebook_size(&self) -> usize {
        self.codes.dims()[0]
    }
}

/// The frozen codebook `[k, d]` of a feature tokenizer as a tensor.
fn codes_tensor(codebook: &[f32], d: usize, device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(codebook.to_vec(), [codebook.len() / d, d]), device)
}

/// The latent grid `[b, d, g, g]` of the training images `idx` looked up from their frozen tokens
/// (`grid * grid` per image), with those tokens `[b * g * g]` and the latent rows `[b * g * g, d]`.
fn frozen_latents(codes: &Tensor<2>, tokens: &[u16], grid: usize, idx: &[usize]) -> (Tensor<4>, Tensor<1, Int>, Tensor<2>) {
    let t = grid * grid;
    let tok: Vec<i64> = idx.iter().flat_map(|&i| tokens[i * t..(i + 1) * t].iter().map(|&v| v as i64)).collect();
    let tok = Tensor::<1, Int>::from_data(TensorData::new(tok, [idx.len() * t]), &codes.device());
    let rows = codes.clone().select(0, tok.clone());
    (rows_to_grid(rows.clone(), idx.len(), grid), tok, rows)
}

/// Trains a pixel tokenizer with VQGAN's losses: L1 + perceptual (the frozen `classifier`'s
/// features) + codebook/commitment, and after `disc_start` steps a PatchGAN hinge loss weighted
/// adaptively (gradient norms at the decoder's last layer). The discriminator has its own
/// optimizer and checkpoint (`dir/../disc`); dead VQ codes are re-seeded every 50 steps.
#[allow(clippy::too_many_arguments)]
pub fn train_vqgan<M: PixelTokenizer>(
    dir: &Path, model: M, spec: serde_json::Value, losses: &VqganLossConfig, classifier: &Classifier, data: &Dataset, sched: &Schedule, device: &Device,
) -> Result<TrainState> {
    let k = model.codebook_size();
    let disc_dir = dir.with_file_name("disc");
    let disc_ck = Checkpoint::new(&disc_dir)?;
    let mut disc = PatchDiscriminator::new(1, losses.disc_channels, device);
    let mut dopt = optimizer();
    if sched.resume && disc_ck.exists() {
        let (d, o) = disc_ck.load(disc, Some(dopt), device, true)?;
        disc = d;
        dopt = o.expect("optimizer");
    }
    let mut usage = vec![0u32; k];
    let (_, state) = run_stage(M::STAGE, dir, sched, spec, model, device, |model: M, optim, step, lr, state| {
        let idx = sched.batch(step, data.len());
        let (x, _) = data.batch(&idx);
        let x = images(x, idx.len(), device);
        let (zq, aux, tokens, latents) = model.quantize_images(x.clone(), &idx);
        let dec = model.pixel_decoder();
        let h = dec.features(zq);
        let rec = dec.head(h.clone());
        let l1 = |y: Tensor<4>| (y - x.clone()).abs().mean();
        let nll = |y: Tensor<4>| l1(y.clone()) + perceptual_loss(classifier, y, x.clone()).mul_scalar(losses.perceptual_weight);
        let l_rec = nll(rec.clone());
        if step % 10 == 0 {
            // the L1 part alone: comparable across perceptual weights
            state.extra.insert("l1".into(), l1(rec.clone().detach()).into_scalar::<f64>().into());
        }
        let mut total = match aux {
            Some(a) => l_rec.clone() + a,
            None => l_rec.clone(),
        };
        let gan_on = step >= losses.disc_start;
        if gan_on {
            // adaptive weight from gradients at the last layer only (small separate graphs)
            let w = dec.conv_out.weight.val();
            let norm = |g: Option<Tensor<4>>| g.map_or(0.0, |g| g.powi_scalar(2).sum().sqrt().into_scalar::<f64>());
            let n_rec = norm(w.grad(&nll(dec.head(h.clone().detach())).backward()));
            let n_gan = norm(w.grad(&generator_loss(disc.forward(dec.head(h.detach()))).backward()));
            let lambda = adaptive_weight(n_rec, n_gan, losses.disc_weight);
            state.extra.insert("gan_weight".into(), lambda.into());
            total = total + generator_loss(disc.forward(rec.clone())).mul_scalar(lambda);
        }
        let mut grads = total.backward();
        let tok_grads = GradientsParams::from_module(&mut grads, &model);
        let mut model: M = optim.step(lr, model, tok_grads);
        if gan_on {
            let d_loss = hinge_d_loss(disc.forward(x.clone()), disc.forward(rec.detach()));
            let mut g = d_loss.backward();
            let dg = GradientsParams::from_module(&mut g, &disc);
            disc = dopt.step(lr, disc.clone(), dg);
        }
        for t in tokens.into_data().convert::<i64>().try_to_vec::<i64>().expect("ints") {
            usage[t as usize] += 1;
        }
        if step % 50 == 0 {
            if let Some((dead, rep)) = dead_code_restarts(&usage, latents, sched.seed, step) {
                model = model.reseed(&dead, rep);
            }
            usage.iter_mut().for_each(|u| *u = 0);
        }
        if (step + 1) % sched.checkpoint_every == 0 || step + 1 == sched.steps {
            let ds = TrainState { stage: "disc".into(), step: step + 1, steps: sched.steps, done: step + 1 == sched.steps, ..Default::default() };
            disc_ck.save(&disc, Some(&dopt), &ds)?;
        }
        Ok((model, (step % 10 == 0).then(|| l_rec.into_scalar::<f32>())))
    })?;
    Ok(state)
}

/// Trains the FSQ tokenizer: MSE on pixels (the implicit codebook needs no codebook loss).
pub fn train_fsq(dir: &Path, cfg: &FsqConfig, data: &Dataset, sched: &Schedule, device: &Device) -> Result<TrainState> {
    let device = device.clone().autodiff();
    device.seed(sched.seed);
    let model = cfg.init(&device)?;
    let spec = serde_json::to_value(tessera::tokenizer::TokenizerSpec::Fsq(cfg.clone()))?;
    let (_, state) = run_stage("tokenizer", dir, sched, spec, model, &device, |model: FsqTokenizer, optim, step, lr, _| {
        let idx = sched.batch(step, data.len());
        let (x, _) = data.batch(&idx);
        let x = images(x, idx.len(), &device);
        let (rec, _) = model.forward(x.clone());
        let loss = (rec - x).powi_scalar(2).mean();
        Ok(update(model, optim, loss, lr, step))
    })?;
    Ok(state)
}

/// Trains the supervised ViT teacher (cross-entropy on the class token).
pub fn train_teacher(dir: &Path, cfg: &VitConfig, data: &Dataset, sched: &Schedule, device: &Device) -> Result<TrainState> {
    let device = device.clone().autodiff();
    device.seed(sched.seed);
    let model = cfg.init(&device)?;
    let (_, state) = run_stage("teacher", dir, sched, serde_json::to_value(cfg)?, model, &device, |model: Vit, optim, step, lr, _| {
        let idx = sched.batch(step, data.len());
        let (x, y) = data.batch(&idx);
        let b = idx.len();
        let logits = model.forward(images(x, b, &device));
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
    let (model, state) = run_stage("teacher-mim", &dir.join("mim"), sched, serde_json::to_value(cfg)?, model, &ad, |model: Mim, optim, step, lr, _| {
        let idx = sched.batch(step, data.len());
        let (x, _) = data.batch(&idx);
        let b = idx.len();
        let mut rng = Rng::new(sched.seed ^ 0x313, step as u64);
        let mut mask = Vec::with_capacity(b * n);
        for _ in 0..b {
            mask.extend(random_mask(&mut rng, n, masked));
        }
        let loss = model.loss(images(x, b, &ad), Tensor::from_data(TensorData::new(mask, [b, n]), &ad));
        Ok(update(model, optim, loss, lr, step))
    })?;
    let teacher = TrainState { stage: "teacher".into(), config: serde_json::to_value(&cfg.vit)?, ..state.clone() };
    Checkpoint::new(dir)?.save(&model.vit, None, &teacher)?;
    Ok(state)
}

/// VQ-KD stage 1: encoder + cosine codebook (k-means initialised, EMA updated) + feature adaptor,
/// trained to reconstruct the frozen `teacher`'s patch features.
pub fn train_vqkd(dir: &Path, cfg: &VqKdConfig, teacher: &Vit, data: &Dataset, sched: &Schedule, device: &Device) -> Result<TrainState> {
    let plain = device.clone();
    let device = device.clone().autodiff();
    device.seed(sched.seed);
    let model = cfg.init_distill(&device)?;
    let (k, d) = (cfg.codebook_size, cfg.code_dim);
    let mut host: Option<Vec<f32>> = None; // host copy of the codebook (EMA runs on the host)
    let mut usage = vec![0u32; k];
    let mut reseeded_total = 0usize;
    let (_, state) = run_stage("vqkd", dir, sched, serde_json::to_value(cfg)?, model, &device, |mut model: VqKdDistill, optim, step, lr, state| {
        if host.is_none() {
            if step == 0 {
                // k-means initialisation on encoder outputs of the first 4 batches
                let mut z = Vec::new();
                for s in 0..4 {
                    let idx = sched.batch(s, data.len());
                    let (x, _) = data.batch(&idx);
                    let e = model.encoder.forward(images(x, idx.len(), &device).detach());
                    z.extend(tessera::ops::grid_to_rows(e).detach().into_data().convert::<f32>().try_to_vec::<f32>().expect("floats"));
                }
                let (c, _) = kmeans_cosine(&z, d, k, 10, sched.seed)?;
                model = model.with_codebook(c.clone());
                host = Some(c);
            } else {
                host = Some(model.quantizer.codebook.val().into_data().convert::<f32>().try_to_vec().expect("floats"));
            }
        }
        let idx = sched.batch(step, data.len());
        let (x, _) = data.batch(&idx);
        let b = idx.len();
        let feats = teacher.patch_features(images(x.clone(), b, &plain)).autodiff();
        let out = model.forward(images(x, b, &device), feats, cfg.commitment);
        let grads = GradientsParams::from_grads(out.loss.backward(), &model);
        let model: VqKdDistill = optim.step(lr, model, grads);
        let toks: Vec<usize> = out.tokens.into_data().convert::<i64>().try_to_vec::<i64>().expect("ints").into_iter().map(|t| t as usize).collect();
        let lat: Vec<f32> = out.latents.into_data().convert::<f32>().try_to_vec().expect("floats");
        let cb = host.as_mut().expect("initialised");
        ema_update(cb, d, &lat, &toks, cfg.decay);
        toks.iter().for_each(|&t| usage[t] += 1);
        if step % 100 == 99 {
            // codes unused for 100 steps restart at random latents of this batch
            let mut rng = Rng::new(sched.seed ^ 0x5EED, step as u64);
            let rows = lat.len() / d;
            let dead: Vec<usize> = (0..k).filter(|&i| usage[i] == 0).collect();
            for &j in &dead {
                let r = (rng.next_u64() % rows as u64) as usize;
                cb[j * d..(j + 1) * d].copy_from_slice(&lat[r * d..(r + 1) * d]);
            }
            reseeded_total += dead.len();
            usage.iter_mut().for_each(|u| *u = 0);
            state.extra.insert("codes_reseeded".into(), reseeded_total.into());
        }
        let model = model.with_codebook(cb.clone());
        Ok((model, (step % 10 == 0).then(|| out.feature_loss.into_scalar::<f32>())))
    })?;
    Ok(state)
}

/// Patch features of the first `n` training images (`[n * patches, dim]`, inference device).
pub fn teacher_features(teacher: &Vit, data: &Dataset, n: usize, device: &Device) -> Vec<f32> {
    let mut out = Vec::new();
    for start in (0..n.min(data.len())).step_by(250) {
        let idx: Vec<usize> = (start..(start + 250).min(n).min(data.len())).collect();
        let (x, _) = data.batch(&idx);
        let f = teacher.patch_features(images(x, idx.len(), device));
        out.extend(f.into_data().convert::<f32>().try_to_vec::<f32>().expect("floats"));
    }
    out
}

/// Trains a pixel decoder on frozen tokens (VQ-KD and Cluster): codes of `codebook` (`[k, d]`)
/// looked up from cached `tokens` -> decoder -> MSE against the images.
#[allow(clippy::too_many_arguments)]
pub fn train_decoder(dir: &Path, cfg: &DecoderConfig, codebook: &[f32], grid: usize, tokens: &[u16], data: &Dataset, sched: &Schedule, device: &Device) -> Result<TrainState> {
    let device = device.clone().autodiff();
    device.seed(sched.seed);
    let model = cfg.init(&device);
    let codes = codes_tensor(codebook, cfg.latent_dim, &device);
    let (_, state) = run_stage("decoder", dir, sched, serde_json::to_value(cfg)?, model, &device, |model: tessera::tokenizer::decoder::Decoder, optim, step, lr, _| {
        let idx = sched.batch(step, data.len());
        let (x, _) = data.batch(&idx);
        let (z, _, _) = frozen_latents(&codes, tokens, grid, &idx);
        let rec = model.forward(z);
        let loss = (rec - images(x, idx.len(), &device)).powi_scalar(2).mean();
        Ok(update(model, optim, loss, lr, step))
    })?;
    Ok(state)
}

/// Trains the pixel decoder on frozen tokens with VQGAN's losses (see `FrozenTokenDecoder`); its
/// checkpoint holds the decoder's tensors under `decoder.`. `device` must be an autodiff device.
#[allow(clippy::too_many_arguments)]
pub fn train_decoder_vqgan(
    dir: &Path, cfg: &DecoderConfig, codebook: &[f32], grid: usize, tokens: &[u16], losses: &VqganLossConfig, classifier: &Classifier, data: &Dataset, sched: &Schedule, device: &Device,
) -> Result<TrainState> {
    let codes = codes_tensor(codebook, cfg.latent_dim, device);
    let model = FrozenTokenDecoder { decoder: cfg.init(device), codes, tokens: std::sync::Arc::new(tokens.to_vec()), grid };
    train_vqgan(dir, model, serde_json::to_value(cfg)?, losses, classifier, data, sched, device)
}

/// Trains the NAR (MaskGIT) proposal network: each sequence gets a cosine-schedule number of
/// random positions masked; the loss is cross-entropy on those. Class dropout as for AR.
pub fn train_nar(dir: &Path, cfg: &ProposalConfig, tokens: &[u16], labels: &[u8], class_dropout: f64, sched: &Schedule, device: &Device) -> Result<TrainState> {
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
pub fn train_proposal(dir: &Path, cfg: &ProposalConfig, tokens: &[u16], labels: &[u8], class_dropout: f64, sched: &Schedule, device: &Device) -> Result<TrainState> {
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

/// Trains the classifier (cross-entropy on real training images).
pub fn train_classifier(dir: &Path, cfg: &ClassifierConfig, data: &Dataset, sched: &Schedule, device: &Device) -> Result<TrainState> {
    let device = device.clone().autodiff();
    device.seed(sched.seed);
    let model = cfg.init(&device)?;
    let (_, state) = run_stage("classifier", dir, sched, serde_json::to_value(cfg)?, model, &device, |model, optim, step, lr, _| {
        let idx = sched.batch(step, data.len());
        let (x, y) = data.batch(&idx);
        let b = idx.len();
        let logits = model.forward(images(x, b, &device));
        let loss = burn::nn::loss::CrossEntropyLossConfig::new()
            .init(&device)
            .forward(logits, Tensor::from_data(TensorData::new(y, [b]), &device));
        Ok(update(model, optim, loss, lr, step))
    })?;
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 64 synthetic images: a bright square whose position depends on the class.
    fn squares() -> Dataset {
        let n = 64;
        let mut images = vec![-1.0f32; n * SIZE * SIZE];
        let mut labels = Vec::new();
        for i in 0..n {
            let c = i % 4;
            let (ox, oy) = (4 + (c % 2) * 14, 4 + (c / 2) * 14);
            for y in oy..oy + 10 {
                for x in ox..ox + 10 {
                    images[i * SIZE * SIZE + y * SIZE + x] = 1.0;
                }
            }
            labels.push(c as u8);
        }
        Dataset { images, labels }
    }

    fn sched(steps: usize, resume: bool) -> Schedule {
        Schedule { steps, batch_size: 16, lr: 3e-3, warmup: 2, seed: 1, checkpoint_every: 5, resume, command: "test".into() }
    }

    fn mean(l: &[(usize, f32)]) -> f32 {
        l.iter().map(|x| x.1).sum::<f32>() / l.len() as f32
    }

    #[test]
    fn tokenizer_and_proposal_losses_fall_and_resume_continues() {
        let dir = std::env::temp_dir().join(format!("tessera-train-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let d = Device::flex();
        let data = squares();
        let cfg = VqganConfig { channels: 8, codebook_size: 16, code_dim: 4, ..Default::default() };
        let tok_dir = dir.join("tokenizer");
        let s = train_tokenizer(&tok_dir, &cfg, &data, &sched(40, false), &d).unwrap();
        let l = &s.losses;
        assert!(l.len() >= 4);
        assert!(l.last().unwrap().1 < l[0].1 * 0.7, "tokenizer loss did not fall: {l:?}");

        // Resume: a longer schedule continues from the saved step instead of starting over.
        let s2 = train_tokenizer(&tok_dir, &cfg, &data, &sched(50, true), &d).unwrap();
        assert_eq!(s2.step, 50);
        assert_eq!(&s2.losses[..l.len()], &l[..], "resumed run must keep the earlier log");

        let (tok, _) = Checkpoint::new(&tok_dir).unwrap().load(cfg.init(&d).unwrap(), None, &d, false).unwrap();
        let tokens = tokenize(&AnyTokenizer::Vqgan(tok), &data, &d);
        assert_eq!(tokens.len(), 64 * 64);
        let gpt = ProposalConfig { vocab_size: 16, num_classes: 4, block_size: 64, n_layer: 1, n_head: 2, n_embd: 32 };
        let s = train_proposal(&dir.join("proposal"), &gpt, &tokens, &data.labels, 0.1, &sched(40, false), &d).unwrap();
        let l = &s.losses;
        assert!(mean(&l[l.len() - 2..]) < mean(&l[..2]) * 0.8, "proposal loss did not fall: {l:?}");
        let mg = ProposalConfig { vocab_size: 16, num_classes: 4, block_size: 64, n_layer: 1, n_head: 2, n_embd: 32 };
        let s = train_nar(&dir.join("nar"), &mg, &tokens, &data.labels, 0.1, &sched(40, false), &d).unwrap();
        let l = &s.losses;
        assert!(mean(&l[l.len() - 2..]) < mean(&l[..2]) * 0.8, "NAR loss did not fall: {l:?}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn feature_tokenizers_train() {
        let dir = std::env::temp_dir().join(format!("tessera-train-iu-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let d = Device::flex();
        let data = squares();
        let vit = VitConfig { n_layer: 1, n_head: 2, n_embd: 16, num_classes: 4, ..Default::default() };
        let s = train_teacher(&dir.join("teacher"), &vit, &data, &sched(30, false), &d).unwrap();
        assert!(s.losses.last().unwrap().1 < s.losses[0].1, "teacher loss did not fall: {:?}", s.losses);
        let mim = MimConfig { vit: VitConfig { num_classes: 0, ..vit.clone() }, mask_ratio: 0.6 };
        let s = train_teacher_mim(&dir.join("teacher-mim"), &mim, &data, &sched(30, false), &d).unwrap();
        assert!(s.losses.last().unwrap().1 < s.losses[0].1, "MIM loss did not fall: {:?}", s.losses);
        let ck = Checkpoint::new(&dir.join("teacher-mim")).unwrap();
        assert!(ck.state().unwrap().done);
        ck.load(mim.vit.init(&d).unwrap(), None, &d, false).unwrap(); // the teacher checkpoint is a plain ViT
        let (teacher, _) = Checkpoint::new(&dir.join("teacher")).unwrap().load(vit.init(&d).unwrap(), None, &d, false).unwrap();
        let kd = VqKdConfig { image_channels: 1, image_size: 32, grid: 8, channels: 8, codebook_size: 16, code_dim: 8, teacher_dim: 16, teacher_name: "t".into(), decay: 0.9, commitment: 0.25, decoder_output: Default::default() };
        let s = train_vqkd(&dir.join("vqkd"), &kd, &teacher, &data, &sched(30, false), &d).unwrap();
        let l = &s.losses;
        assert!(l.last().unwrap().1 < l[0].1, "VQ-KD feature loss did not fall: {l:?}");
        // Cluster: k-means on teacher features, then a decoder on the frozen tokens
        let f = teacher_features(&teacher, &data, 32, &d);
        let (codebook, labels) = kmeans_cosine(&f, 16, 16, 5, 0).unwrap();
        assert_eq!(labels.len(), 32 * 64);
        let toks: Vec<u16> = tessera::train::kmeans::assign(&{ let mut g = teacher_features(&teacher, &data, 64, &d); tessera::train::kmeans::normalize_rows(&mut g, 16); g }, &codebook, 16).into_iter().map(|t| t as u16).collect();
        let dc = DecoderConfig { latent_dim: 16, channels: 8, out_channels: 1, output: Default::default() };
        let s = train_decoder(&dir.join("decoder"), &dc, &codebook, 8, &toks, &data, &sched(30, false), &d).unwrap();
        assert!(s.losses.last().unwrap().1 < s.losses[0].1 * 0.8, "decoder loss did not fall: {:?}", s.losses);
        // VQGAN losses on VQ (GAN from step 10) and FSQ
        let ad = d.clone().autodiff();
        let cls_cfg = ClassifierConfig { in_channels: 1, channels: 8, num_classes: 4 };
        train_classifier(&dir.join("cls"), &cls_cfg, &data, &sched(5, false), &d).unwrap();
        let (cls, _) = Checkpoint::new(&dir.join("cls")).unwrap().load(cls_cfg.init(&ad).unwrap(), None, &ad, false).unwrap();
        let losses = VqganLossConfig { disc_start: 10, disc_channels: 8, ..Default::default() };
        let vq = VqganConfig { channels: 8, codebook_size: 16, code_dim: 4, ..Default::default() };
        let s = train_vqgan(&dir.join("vqgan/tokenizer"), vq.init(&ad).unwrap(), serde_json::json!({}), &losses, &cls, &data, &sched(30, false), &ad).unwrap();
        assert!(s.losses.last().unwrap().1 < s.losses[0].1, "VQGAN loss did not fall: {:?}", s.losses);
        assert!(s.extra["gan_weight"].as_f64().unwrap() > 0.0, "the GAN term never switched on");
        assert!(Checkpoint::new(&dir.join("vqgan/disc")).unwrap().state().unwrap().done);
        // the Cluster decoder again, on its frozen tokens with the VQGAN losses: only the decoder is saved
        let dcl = DecoderConfig { output: tessera::tokenizer::decoder::DecoderOutput::Linear, ..dc.clone() };
        let s = train_decoder_vqgan(&dir.join("gan/decoder"), &dcl, &codebook, 8, &toks, &losses, &cls, &data, &sched(30, false), &ad).unwrap();
        assert_eq!(s.stage, "decoder");
        assert!(s.losses.last().unwrap().1 < s.losses[0].1, "decoder (VQGAN losses) loss did not fall: {:?}", s.losses);
        let saved = tessera::bundle::weights::from_safetensors("d", &std::fs::read(dir.join("gan/decoder/model.safetensors")).unwrap()).unwrap();
        let plain = tessera::bundle::weights::module_to_tensors(&dcl.init(&d));
        assert_eq!(saved.keys().cloned().collect::<Vec<_>>(), plain.keys().map(|k| format!("decoder.{k}")).collect::<Vec<_>>());
        let fsqg = FsqConfig { channels: 8, levels: vec![4, 4], ..Default::default() };
        let start = fsqg.init(&ad).unwrap();
        let before = tessera::bundle::weights::module_to_tensors(&start);
        let s = train_vqgan(&dir.join("fsqgan/tokenizer"), start, serde_json::json!({}), &losses, &cls, &data, &sched(12, false), &ad).unwrap();
        assert_eq!(s.step, 12);
        // every trained part moved: the encoder and the decoder (FSQ has no codebook parameters)
        let after = tessera::bundle::weights::from_safetensors("f", &std::fs::read(dir.join("fsqgan/tokenizer/model.safetensors")).unwrap()).unwrap();
        for part in ["encoder.", "decoder."] {
            let moved = before.iter().filter(|(k, _)| k.starts_with(part)).any(|(k, v)| after[k].values != v.values);
            assert!(moved, "FSQ with the VQGAN losses did not update its {part}");
        }
        let fsq = FsqConfig { channels: 8, levels: vec![4, 4], ..Default::default() };
        let s = train_fsq(&dir.join("fsq"), &fsq, &data, &sched(30, false), &d).unwrap();
        assert!(s.losses.last().unwrap().1 < s.losses[0].1 * 0.8, "FSQ loss did not fall: {:?}", s.losses);
        std::fs::remove_dir_all(&dir).ok();
    }
}
