//! `tessera-train`: train, evaluate and export Tessera models natively (burn flex on the CPU by
//! default; `--device wgpu` for burn's wgpu backend, a GPU when one is present).
mod assemble;
mod checkpoint;
mod data;
mod eval;
mod metrics;
mod plots;
mod table;
mod train;

use anyhow::{Context, Result, bail};
use burn::prelude::*;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use tessera::classifier::ClassifierConfig;
use tessera::cluster::ClusterConfig;
use tessera::fsq::FsqConfig;
use tessera::gpt::GptConfig;
use tessera::maskgit::MaskGitConfig;
use tessera::tokenizer::Tokenizer;
use tessera::vit::VitConfig;
use tessera::vq::VqTokenizerConfig;
use tessera::vqkd::VqKdConfig;

#[derive(Parser)]
#[command(name = "tessera-train", version, about = "Train, evaluate and export Tessera models")]
struct Cli {
    /// Compute device: flex (burn's pure-Rust CPU backend) or wgpu (Vulkan/Metal/DX12).
    #[arg(long, value_enum, default_value_t = DeviceArg::Flex, global = true)]
    device: DeviceArg,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum, Debug, PartialEq)]
pub enum DeviceArg {
    Flex,
    Wgpu,
}

pub fn device(d: DeviceArg) -> Result<Device> {
    match d {
        DeviceArg::Flex => Ok(Device::flex()),
        #[cfg(feature = "wgpu")]
        DeviceArg::Wgpu => Ok(Device::wgpu(DeviceKind::DefaultDevice)),
        #[cfg(not(feature = "wgpu"))]
        DeviceArg::Wgpu => bail!("this binary was built without the `wgpu` feature"),
    }
}

#[derive(Clone, Copy, ValueEnum, Debug, PartialEq)]
enum Stage {
    /// tokenizer, then AR and NAR proposal networks
    All,
    /// the classifier behind VQGAN's perceptual loss
    Classifier,
    /// the evaluator of `eval` (class consistency): a separate classifier, trained with another seed
    /// and width, never seen by any tokenizer
    Evaluator,
    /// the supervised ViT teacher (IU encoder) used by VQ-KD and Cluster
    Teacher,
    Tokenizer,
    Ar,
    Nar,
}

#[derive(Clone, Copy, ValueEnum, Debug, PartialEq)]
enum TeacherKind {
    /// ViT trained to classify (the paper's supervised "ViT" teacher)
    Supervised,
    /// ViT trained by masked image modelling (SimMIM-style, self-supervised)
    Mim,
}

#[derive(Clone, Copy, ValueEnum, Debug, PartialEq)]
enum PixelLoss {
    /// mean squared error only
    Mse,
    /// VQGAN: L1 + perceptual (the classifier's features) + PatchGAN with adaptive weight
    Vqgan,
}

#[derive(Clone, Copy, ValueEnum, Debug, PartialEq)]
enum TokenizerKind {
    /// VQ codebook learned by pixel reconstruction
    Vq,
    /// finite scalar quantization, pixel reconstruction
    Fsq,
    /// VQ-KD: codebook learned by distilling the teacher's features
    Vqkd,
    /// k-means on the teacher's features
    Cluster,
}

#[derive(clap::Args, Debug, Clone)]
struct TrainArgs {
    /// Run directory of one tokenizer and its proposal networks (checkpoints, cached tokens).
    #[arg(long, default_value = "runs/vq")]
    run: PathBuf,
    #[arg(long, value_enum, default_value_t = TokenizerKind::Vq)]
    tokenizer: TokenizerKind,
    #[arg(long, value_enum, default_value_t = Stage::All)]
    stage: Stage,
    /// Pixel losses: of the whole tokenizer (vq, fsq) or of the pixel decoder on frozen tokens
    /// (vqkd, cluster). The shipped vqgan and fsq bundles use vqgan; the shipped vqkd and cluster mse.
    #[arg(long, value_enum, default_value_t = PixelLoss::Mse)]
    pixel_loss: PixelLoss,
    /// VQGAN: generator steps before the discriminator starts.
    #[arg(long, default_value_t = 300)]
    disc_start: usize,
    /// VQGAN: weight of the perceptual term relative to L1.
    #[arg(long, default_value_t = 1.0)]
    perceptual_weight: f64,
    /// Teacher checkpoint directory (trained by `--stage teacher`, used by vqkd and cluster).
    #[arg(long, default_value = "runs/teacher-vit")]
    teacher: PathBuf,
    /// How `--stage teacher` trains the teacher.
    #[arg(long, value_enum, default_value_t = TeacherKind::Supervised)]
    teacher_kind: TeacherKind,
    /// Classifier checkpoint directory (trained by `--stage classifier`).
    #[arg(long, default_value = "runs/classifier")]
    classifier: PathBuf,
    /// Evaluator checkpoint directory (trained by `--stage evaluator`).
    #[arg(long, default_value = "runs/evaluator")]
    evaluator: PathBuf,
    /// Continue from the last checkpoint of each stage.
    #[arg(long)]
    resume: bool,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value = data::DEFAULT_DIR)]
    data: PathBuf,
    /// Use only the first N training images (quick runs, tests).
    #[arg(long)]
    limit: Option<usize>,
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    #[arg(long, default_value_t = 500)]
    classifier_steps: usize,
    #[arg(long, default_value_t = 500)]
    teacher_steps: usize,
    /// Steps of tokenizer training (VQ, FSQ, VQ-KD distillation) and of the pixel decoder (VQ-KD, Cluster).
    #[arg(long, default_value_t = 1200)]
    tokenizer_steps: usize,
    #[arg(long, default_value_t = 1600)]
    proposal_steps: usize,
    #[arg(long, default_value_t = 200)]
    checkpoint_every: usize,
    /// Tokenizer width and codebook (FSQ: --fsq-levels instead of --codebook-size).
    #[arg(long, default_value_t = 32)]
    channels: usize,
    #[arg(long, default_value_t = 256)]
    codebook_size: usize,
    #[arg(long, default_value_t = 16)]
    code_dim: usize,
    #[arg(long, value_delimiter = ',', default_value = "8,6,5")]
    fsq_levels: Vec<usize>,
    /// Training images whose patch features Cluster's k-means sees.
    #[arg(long, default_value_t = 4000)]
    cluster_images: usize,
    /// Proposal network size (AR and NAR alike).
    #[arg(long, default_value_t = 4)]
    n_layer: usize,
    #[arg(long, default_value_t = 4)]
    n_head: usize,
    #[arg(long, default_value_t = 128)]
    n_embd: usize,
    /// Probability of training on the null class (classifier-free guidance).
    #[arg(long, default_value_t = 0.1)]
    class_dropout: f64,
}

#[derive(clap::Args, Debug, Clone, Default)]
pub struct SampleArgs {
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long)]
    pub temperature: Option<f32>,
    #[arg(long)]
    pub top_k: Option<usize>,
    #[arg(long)]
    pub top_p: Option<f32>,
    /// Classifier-free guidance scale (1 = off).
    #[arg(long)]
    pub guidance: Option<f32>,
    /// NAR: parallel decoding steps.
    #[arg(long)]
    pub steps: Option<usize>,
    /// NAR: Gumbel noise on confidences (annealed to 0).
    #[arg(long)]
    pub confidence_noise: Option<f32>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Train the classifier, a teacher, a tokenizer and its AR/NAR proposal networks (resumable).
    Train(TrainArgs),
    /// Export a trained run as a model bundle (manifest + safetensors + checksums).
    Export {
        #[arg(long, default_value = "runs/vqgan")]
        run: PathBuf,
        #[arg(long, default_value = "models/fmnist-vqgan")]
        out: PathBuf,
        #[arg(long, default_value = "fmnist-vqgan")]
        name: String,
    },
    /// Export the evaluator trained by `train --stage evaluator` (weights + card with its test accuracy).
    ExportEvaluator {
        #[arg(long, default_value = "runs/evaluator")]
        run: PathBuf,
        #[arg(long, default_value = data::DEFAULT_DIR)]
        data: PathBuf,
        #[arg(long, default_value = "models/evaluator")]
        out: PathBuf,
    },
    /// Generate a PNG grid (rows = classes or one class) with a bundle.
    Generate {
        #[arg(long, default_value = "models/fmnist-vqgan")]
        bundle: PathBuf,
        /// Proposal network of the bundle: ar or nar.
        #[arg(long, default_value = "ar")]
        proposal: String,
        /// Class name ("Sneaker") or index; all classes (one row each) when omitted.
        #[arg(long)]
        class: Option<String>,
        #[arg(long, default_value_t = 8)]
        count: usize,
        #[command(flatten)]
        sampling: SampleArgs,
        #[arg(long, default_value = "samples.png")]
        out: PathBuf,
        /// Also write the sampled tokens as JSON.
        #[arg(long)]
        tokens_out: Option<PathBuf>,
    },
    /// Test-set reconstruction error, codebook usage and class consistency of samples.
    Eval {
        #[arg(long, default_value = "models/fmnist-vqgan")]
        bundle: PathBuf,
        /// The evaluator (`export-evaluator`): scores class consistency.
        #[arg(long, default_value = "models/evaluator")]
        evaluator: PathBuf,
        #[arg(long, default_value = data::DEFAULT_DIR)]
        data: PathBuf,
        #[arg(long, default_value_t = 100)]
        samples_per_class: usize,
        #[command(flatten)]
        sampling: SampleArgs,
        /// Write the results as JSON here.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Also write a reconstruction grid (originals above, reconstructions below).
        #[arg(long)]
        recon_png: Option<PathBuf>,
    },
    /// Import a pretrained ViT (Hugging Face safetensors of CLIP-vision or DINOv2) as a teacher
    /// checkpoint for `train --teacher DIR`. Nothing is downloaded: bring the file.
    ImportTeacher {
        /// The checkpoint's model.safetensors.
        #[arg(long)]
        file: PathBuf,
        /// Attention heads (`num_attention_heads` in the checkpoint's config.json).
        #[arg(long)]
        heads: usize,
        #[arg(long)]
        out: PathBuf,
    },
    /// The paper's Table 1 in miniature: every tokenizer x {AR, NAR} x seeds, plus ablations
    /// (teacher, codebook size); JSON + Markdown with mean +- std, codebook t-SNE and sample grids (resumable).
    Table(table::TableArgs),
    /// Native generation speed (images/s) on this device.
    Bench {
        #[arg(long, default_value = "models/fmnist-vqgan")]
        bundle: PathBuf,
        #[arg(long, default_value = "ar")]
        proposal: String,
        #[arg(long, default_value_t = 8)]
        count: usize,
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let dev = device(cli.device)?;
    let command_line = std::env::args().collect::<Vec<_>>().join(" ");
    match cli.cmd {
        Cmd::Train(a) => run_train(&a, &dev, &command_line),
        Cmd::Export { run, out, name } => eval::export(&run, &out, &name, &dev),
        Cmd::ExportEvaluator { run, data, out } => eval::export_evaluator(&run, &data, &out, &dev),
        Cmd::Generate { bundle, proposal, class, count, sampling, out, tokens_out } => {
            eval::generate_grid(&bundle, &proposal, class.as_deref(), count, &sampling, &out, tokens_out.as_deref(), &dev)
        }
        Cmd::Eval { bundle, evaluator, data, samples_per_class, sampling, out, recon_png } => {
            eval::evaluate(&bundle, &evaluator, &data, samples_per_class, &sampling, out.as_deref(), recon_png.as_deref(), &dev)
        }
        Cmd::Table(a) => table::table(&a, &dev, &format!("{:?}", cli.device).to_lowercase()).map(|_| ()),
        Cmd::ImportTeacher { file, heads, out } => import_teacher(&file, heads, &out, &dev, &command_line),
        Cmd::Bench { bundle, proposal, count, runs } => eval::bench(&bundle, &proposal, count, runs, &dev, &format!("{:?}", cli.device).to_lowercase()),
    }
}

fn import_teacher(file: &std::path::Path, heads: usize, out: &std::path::Path, dev: &Device, command: &str) -> Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let name = file.display().to_string();
    let tensors = tessera::weights::from_safetensors(&name, &bytes)?;
    let layout = tessera::import::HfLayout::detect(&tensors);
    let (cfg, vit) = tessera::import::import_vit(&tensors, &name, heads, dev)?;
    let state = checkpoint::TrainState { stage: "teacher".into(), command: command.into(), config: serde_json::to_value(&cfg)?, done: true, ..Default::default() };
    checkpoint::Checkpoint::new(out)?.save(&vit, None, &state)?;
    eprintln!("imported {layout:?}: {} layers, width {}, patch {}, {}x{} input, {} channels -> {}", cfg.n_layer, cfg.n_embd, cfg.patch, cfg.image_size, cfg.image_size, cfg.image_channels, out.display());
    Ok(())
}

fn run_train(a: &TrainArgs, dev: &Device, command: &str) -> Result<()> {
    let mut train = data::load(&a.data, "train")?;
    if let Some(n) = a.limit {
        train = train.truncate(n);
    }
    if a.batch_size == 0 || a.checkpoint_every == 0 {
        bail!("--batch-size and --checkpoint-every must be positive");
    }
    let sched = |steps: usize, lr: f64, warmup: usize| train::Schedule {
        steps,
        batch_size: a.batch_size,
        lr,
        warmup: warmup.min(steps / 2).max(1),
        seed: a.seed,
        checkpoint_every: a.checkpoint_every,
        resume: a.resume,
        command: command.to_string(),
    };
    let n_classes = data::CLASSES.len();
    let cls_cfg = ClassifierConfig { in_channels: 1, channels: 32, num_classes: n_classes };
    let vit_cfg = VitConfig { num_classes: n_classes, ..Default::default() };
    let stage = |s: Stage| a.stage == s || (a.stage == Stage::All && matches!(s, Stage::Tokenizer | Stage::Ar | Stage::Nar));
    if stage(Stage::Classifier) {
        let s = train::train_classifier(&a.classifier, &cls_cfg, &train, &sched(a.classifier_steps, 2e-3, 50), dev)?;
        eprintln!("classifier: {} steps in {:.0}s", s.step, s.elapsed_s);
    }
    if stage(Stage::Evaluator) {
        // Another seed and width than the perceptual-loss classifier: an independent yardstick.
        let cfg = ClassifierConfig { channels: 40, ..cls_cfg.clone() };
        let s = train::train_classifier(&a.evaluator, &cfg, &train, &train::Schedule { seed: a.seed + 1, ..sched(a.classifier_steps + 100, 2e-3, 50) }, dev)?;
        eprintln!("evaluator: {} steps in {:.0}s", s.step, s.elapsed_s);
    }
    if stage(Stage::Teacher) {
        let s = match a.teacher_kind {
            TeacherKind::Supervised => train::train_teacher(&a.teacher, &vit_cfg, &train, &sched(a.teacher_steps, 1e-3, 50), dev)?,
            TeacherKind::Mim => {
                let cfg = tessera::mim::MimConfig { vit: VitConfig { num_classes: 0, ..vit_cfg.clone() }, mask_ratio: 0.6 };
                train::train_teacher_mim(&a.teacher, &cfg, &train, &sched(a.teacher_steps, 1e-3, 50), dev)?
            }
        };
        eprintln!("teacher: {} steps in {:.0}s", s.step, s.elapsed_s);
    }
    let load_teacher = || -> Result<(VitConfig, tessera::vit::Vit)> {
        let ck = checkpoint::Checkpoint::new(&a.teacher)?;
        if !ck.exists() || !ck.state()?.done {
            bail!("no finished teacher in {} (run --stage teacher first)", a.teacher.display());
        }
        let cfg: VitConfig = serde_json::from_value(ck.state()?.config)?;
        if cfg.image_channels != 1 || cfg.image_size != data::SIZE || cfg.grid() != 8 {
            bail!("the teacher in {} takes {}x{}x{} images with a {}x{} patch grid; the tokenizers here need 1x32x32 and 8x8", a.teacher.display(), cfg.image_channels, cfg.image_size, cfg.image_size, cfg.grid(), cfg.grid());
        }
        let vit = ck.load(cfg.init(dev), None, dev, false)?.0;
        Ok((cfg, vit))
    };
    let teacher_name = a.teacher.file_name().map(|s| s.to_string_lossy().replace("teacher-", "")).unwrap_or_default();
    if stage(Stage::Tokenizer) {
        let tsched = sched(a.tokenizer_steps, 2e-3, 50);
        let dir = a.run.join("tokenizer");
        let t0 = std::time::Instant::now();
        let vqgan = a.pixel_loss == PixelLoss::Vqgan;
        // L1 needs a linear output layer (see `DecoderOutput`); MSE keeps tanh.
        let decoder_output = if vqgan { tessera::decoder::DecoderOutput::Linear } else { tessera::decoder::DecoderOutput::Tanh };
        let losses = tessera::vqgan::VqganLossConfig { disc_start: a.disc_start, perceptual_weight: a.perceptual_weight, ..Default::default() };
        // VQGAN's losses train on an autodiff device with the frozen classifier's features.
        let vqgan_setup = || -> Result<(Device, tessera::classifier::Classifier)> {
            let ad = dev.clone().autodiff();
            ad.seed(a.seed);
            let ck = checkpoint::Checkpoint::new(&a.classifier)?;
            if !ck.exists() {
                bail!("VQGAN's perceptual loss uses the classifier: train it first (--stage classifier)");
            }
            let (cls, _) = ck.load(cls_cfg.init(&ad), None, &ad, false)?;
            Ok((ad, cls))
        };
        // The pixel decoder of VQ-KD and Cluster, on their frozen tokens.
        let train_decoder = |cfg: &tessera::decoder::DecoderConfig, codebook: &[f32], grid: usize, tokens: &[u16]| -> Result<()> {
            let dir = a.run.join("decoder");
            if vqgan {
                let (ad, cls) = vqgan_setup()?;
                train::train_decoder_vqgan(&dir, cfg, codebook, grid, tokens, &losses, &cls, &train, &tsched, &ad)?;
            } else {
                train::train_decoder(&dir, cfg, codebook, grid, tokens, &train, &tsched, dev)?;
            }
            Ok(())
        };
        match a.tokenizer {
            TokenizerKind::Vq | TokenizerKind::Fsq if vqgan => {
                let (ad, cls) = vqgan_setup()?;
                if a.tokenizer == TokenizerKind::Vq {
                    let cfg = VqTokenizerConfig { channels: a.channels, codebook_size: a.codebook_size, code_dim: a.code_dim, decoder_output, ..Default::default() };
                    let spec = serde_json::to_value(tessera::tokenizer::TokenizerSpec::Vq(cfg.clone()))?;
                    train::train_vqgan(&dir, cfg.init(&ad), spec, &losses, &cls, &train, &tsched, &ad)?;
                } else {
                    let cfg = FsqConfig { channels: a.channels, levels: a.fsq_levels.clone(), decoder_output, ..Default::default() };
                    let spec = serde_json::to_value(tessera::tokenizer::TokenizerSpec::Fsq(cfg.clone()))?;
                    train::train_vqgan(&dir, cfg.init(&ad), spec, &losses, &cls, &train, &tsched, &ad)?;
                }
            }
            TokenizerKind::Vq => {
                let cfg = VqTokenizerConfig { channels: a.channels, codebook_size: a.codebook_size, code_dim: a.code_dim, ..Default::default() };
                train::train_tokenizer(&dir, &cfg, &train, &tsched, dev)?;
            }
            TokenizerKind::Fsq => {
                let cfg = FsqConfig { channels: a.channels, levels: a.fsq_levels.clone(), ..Default::default() };
                train::train_fsq(&dir, &cfg, &train, &tsched, dev)?;
            }
            TokenizerKind::Vqkd => {
                let (tcfg, teacher) = load_teacher()?;
                let cfg = VqKdConfig {
                    image_channels: 1, image_size: data::SIZE, grid: tcfg.grid(), channels: a.channels, codebook_size: a.codebook_size,
                    code_dim: a.code_dim, teacher_dim: tcfg.n_embd, teacher_name: teacher_name.clone(), decay: 0.99, commitment: 0.25, decoder_output,
                };
                train::train_vqkd(&a.run.join("vqkd"), &cfg, &teacher, &train, &tsched, dev)?;
                let (distill, _) = checkpoint::Checkpoint::new(&a.run.join("vqkd"))?.load(cfg.init_distill(dev), None, dev, false)?;
                let codebook: Vec<f32> = distill.codebook.val().into_data().convert::<f32>().try_to_vec().expect("floats");
                let encoder_only = tessera::vqkd::VqKdTokenizer { encoder: distill.encoder.clone(), codebook: distill.codebook.clone(), decoder: cfg.init(dev).decoder, grid: cfg.grid };
                let tokens = train::tokenize(&Tokenizer::Vqkd(encoder_only), &train, dev);
                train_decoder(&cfg.decoder(), &codebook, cfg.grid, &tokens)?;
                assemble::vqkd(&a.run, &cfg, command, t0.elapsed().as_secs_f64())?;
            }
            TokenizerKind::Cluster => {
                let (tcfg, teacher) = load_teacher()?;
                let cfg = ClusterConfig { teacher: tcfg.clone(), teacher_name: teacher_name.clone(), codebook_size: a.codebook_size, channels: a.channels, decoder_output };
                let codebook = assemble::cluster_codebook(&a.run, &teacher, &train, a.cluster_images, a.codebook_size, a.seed, dev)?;
                let mut feats = train::teacher_features(&teacher, &train, train.len(), dev);
                tessera::kmeans::normalize_rows(&mut feats, tcfg.n_embd);
                let tokens: Vec<u16> = tessera::kmeans::assign(&feats, &codebook, tcfg.n_embd).into_iter().map(|t| t as u16).collect();
                train_decoder(&cfg.decoder(), &codebook, tcfg.grid(), &tokens)?;
                assemble::cluster(&a.run, &a.teacher, &cfg, &codebook, command, t0.elapsed().as_secs_f64())?;
            }
        }
        eprintln!("tokenizer: done in {:.0}s", t0.elapsed().as_secs_f64());
    }
    if stage(Stage::Ar) || stage(Stage::Nar) {
        let ck = checkpoint::Checkpoint::new(&a.run.join("tokenizer"))?;
        if !ck.exists() || !ck.state()?.done {
            bail!("no finished tokenizer in {} (run --stage tokenizer first)", a.run.display());
        }
        let spec = eval::tokenizer_spec(&ck.state()?.config)?;
        let bytes = std::fs::read(ck.weights_path())?;
        let tokenizer = spec.load(tessera::weights::from_safetensors("tokenizer", &bytes)?, "tokenizer", dev).context("loading the tokenizer")?;
        let tokens = assemble::cached_tokens(&a.run, &bytes, || train::tokenize(&tokenizer, &train, dev))?;
        let (vocab, block) = (spec.codebook_size(), spec.tokens_per_image());
        if stage(Stage::Ar) {
            let cfg = GptConfig { vocab_size: vocab, num_classes: n_classes, block_size: block, n_layer: a.n_layer, n_head: a.n_head, n_embd: a.n_embd };
            let s = train::train_proposal(&a.run.join("ar"), &cfg, &tokens, &train.labels, a.class_dropout, &sched(a.proposal_steps, 1e-3, 100), dev)?;
            eprintln!("ar: {} steps in {:.0}s", s.step, s.elapsed_s);
        }
        if stage(Stage::Nar) {
            let cfg = MaskGitConfig { vocab_size: vocab, num_classes: n_classes, block_size: block, n_layer: a.n_layer, n_head: a.n_head, n_embd: a.n_embd };
            let s = train::train_nar(&a.run.join("nar"), &cfg, &tokens, &train.labels, a.class_dropout, &sched(a.proposal_steps, 1e-3, 100), dev)?;
            eprintln!("nar: {} steps in {:.0}s", s.step, s.elapsed_s);
        }
    }
    Ok(())
}
