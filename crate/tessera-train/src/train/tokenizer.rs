//! Stage 1 training: VQGAN (MSE or the VQGAN losses), FSQ, VQ-KD's distillation, and the pixel
//! decoders of VQ-KD and Cluster on their frozen tokens; and tokenizing a data set.
use super::*;

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
        let x = data.tensor(x, idx.len(), &device);
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
        let t = tokenizer.encode(data.tensor(x, idx.len(), device));
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
    let mut disc = PatchDiscriminator::new(data.shape().channels, losses.disc_channels, device);
    let mut dopt = optimizer(sched.grad_clip);
    if sched.resume && disc_ck.exists() {
        let (d, o) = disc_ck.load(disc, Some(dopt), device, true)?;
        disc = d;
        dopt = o.expect("optimizer");
    }
    let mut usage = vec![0u32; k];
    let (_, state) = run_stage(M::STAGE, dir, sched, spec, model, device, |model: M, optim, step, lr, state| {
        let idx = sched.batch(step, data.len());
        let (x, _) = data.batch(&idx);
        let x = data.tensor(x, idx.len(), device);
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
            // the generator's terms see the discriminator frozen (its own step comes below): no
            // gradients for its weights in these backward passes (a forked copy: `no_grad` on a plain
            // clone also untracked the original's shared parameters)
            let frozen = disc.clone().fork(device).no_grad();
            let norm = |g: Option<Tensor<4>>| g.map_or(0.0, |g| g.powi_scalar(2).sum().sqrt().into_scalar::<f64>());
            let n_rec = norm(w.grad(&nll(dec.head(h.clone().detach())).backward()));
            let n_gan = norm(w.grad(&generator_loss(frozen.forward(dec.head(h.detach()))).backward()));
            let lambda = adaptive_weight(n_rec, n_gan, losses.disc_weight);
            state.extra.insert("gan_weight".into(), lambda.into());
            total = total + generator_loss(frozen.forward(rec.clone())).mul_scalar(lambda);
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
        let x = data.tensor(x, idx.len(), &device);
        let (rec, _) = model.forward(x.clone());
        let loss = (rec - x).powi_scalar(2).mean();
        Ok(update(model, optim, loss, lr, step))
    })?;
    Ok(state)
}

/// VQ-KD stage 1: encoder + cosine codebook (k-means initialised, EMA updated) + feature adaptor,
/// trained to reconstruct the frozen `teacher`'s patch features.
pub fn train_vqkd(dir: &Path, cfg: &VqKdConfig, teacher: &Teacher, data: &Dataset, sched: &Schedule, device: &Device) -> Result<TrainState> {
    let plain = device.clone();
    let device = device.clone().autodiff();
    device.seed(sched.seed);
    let model = cfg.init_distill(&device)?;
    let (k, d) = (cfg.codebook_size, cfg.code_dim);
    // The teacher is frozen: its features of the training set are computed once (when they fit in
    // 2 GB) instead of once per batch and epoch.
    let (per, dim) = (cfg.grid * cfg.grid, cfg.teacher_dim);
    let cached = (data.len() * per * dim <= (1 << 29)).then(|| teacher_features(teacher, data, data.len(), &plain));
    let features = |idx: &[usize], x: &[f32]| -> Tensor<3> {
        match &cached {
            Some(all) => {
                let mut v = Vec::with_capacity(idx.len() * per * dim);
                idx.iter().for_each(|&i| v.extend_from_slice(&all[i * per * dim..(i + 1) * per * dim]));
                Tensor::from_data(TensorData::new(v, [idx.len(), per, dim]), &plain)
            }
            None => teacher.patch_features(data.tensor(x.to_vec(), idx.len(), &plain)),
        }
    };
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
                    let e = model.encoder.forward(data.tensor(x, idx.len(), &device).detach());
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
        let feats = features(&idx, &x).autodiff();
        let out = model.forward(data.tensor(x, b, &device), feats, cfg.commitment);
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
        let loss = (rec - data.tensor(x, idx.len(), &device)).powi_scalar(2).mean();
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

