//! `tessera-train`: train, evaluate and export Tessera models natively (burn flex on the CPU by
//! default; `--device wgpu` for burn's wgpu backend, a GPU when one is present).
mod checkpoint;
mod data;
mod eval;
mod train;

use anyhow::{Context, Result, bail};
use burn::prelude::*;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use tessera::classifier::ClassifierConfig;
use tessera::gpt::GptConfig;
use tessera::vq::VqTokenizerConfig;

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
    All,
    Classifier,
    Tokenizer,
    Proposal,
}

#[derive(clap::Args, Debug, Clone)]
struct TrainArgs {
    /// Run directory (checkpoints, logs, cached tokens).
    #[arg(long, default_value = "runs/fmnist")]
    run: PathBuf,
    #[arg(long, value_enum, default_value_t = Stage::All)]
    stage: Stage,
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
    #[arg(long, default_value_t = 1200)]
    tokenizer_steps: usize,
    #[arg(long, default_value_t = 1600)]
    proposal_steps: usize,
    #[arg(long, default_value_t = 200)]
    checkpoint_every: usize,
    /// Tokenizer width and codebook.
    #[arg(long, default_value_t = 32)]
    channels: usize,
    #[arg(long, default_value_t = 256)]
    codebook_size: usize,
    #[arg(long, default_value_t = 16)]
    code_dim: usize,
    /// GPT size.
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

#[derive(clap::Args, Debug, Clone)]
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
}

#[derive(Subcommand)]
enum Cmd {
    /// Train the classifier, the tokenizer and the AR proposal network (resumable).
    Train(TrainArgs),
    /// Export a trained run as a model bundle (manifest + safetensors + checksums).
    Export {
        #[arg(long, default_value = "runs/fmnist")]
        run: PathBuf,
        #[arg(long, default_value = "models/fmnist-vq-ar")]
        out: PathBuf,
        #[arg(long, default_value = "fmnist-vq-ar")]
        name: String,
    },
    /// Generate a PNG grid (rows = classes or one class) with a bundle.
    Generate {
        #[arg(long, default_value = "models/fmnist-vq-ar")]
        bundle: PathBuf,
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
        #[arg(long, default_value = "models/fmnist-vq-ar")]
        bundle: PathBuf,
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
    /// Native generation speed (images/s) on this device.
    Bench {
        #[arg(long, default_value = "models/fmnist-vq-ar")]
        bundle: PathBuf,
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
        Cmd::Generate { bundle, class, count, sampling, out, tokens_out } => {
            eval::generate_grid(&bundle, class.as_deref(), count, &sampling, &out, tokens_out.as_deref(), &dev)
        }
        Cmd::Eval { bundle, data, samples_per_class, sampling, out, recon_png } => {
            eval::evaluate(&bundle, &data, samples_per_class, &sampling, out.as_deref(), recon_png.as_deref(), &dev)
        }
        Cmd::Bench { bundle, count, runs } => eval::bench(&bundle, count, runs, &dev, &format!("{:?}", cli.device).to_lowercase()),
    }
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
    let tok_cfg = VqTokenizerConfig { channels: a.channels, codebook_size: a.codebook_size, code_dim: a.code_dim, ..Default::default() };
    let cls_cfg = ClassifierConfig { in_channels: 1, channels: 32, num_classes: data::CLASSES.len() };
    let gpt_cfg = GptConfig {
        vocab_size: a.codebook_size,
        num_classes: data::CLASSES.len(),
        block_size: tok_cfg.tokens_per_image(),
        n_layer: a.n_layer,
        n_head: a.n_head,
        n_embd: a.n_embd,
    };
    if a.stage == Stage::All || a.stage == Stage::Classifier {
        let s = train::train_classifier(&a.run.join("classifier"), &cls_cfg, &train, &sched(a.classifier_steps, 2e-3, 50), dev)?;
        eprintln!("classifier: {} steps in {:.0}s", s.step, s.elapsed_s);
    }
    if a.stage == Stage::All || a.stage == Stage::Tokenizer {
        let s = train::train_tokenizer(&a.run.join("tokenizer"), &tok_cfg, &train, &sched(a.tokenizer_steps, 2e-3, 50), dev)?;
        eprintln!("tokenizer: {} steps in {:.0}s", s.step, s.elapsed_s);
    }
    if a.stage == Stage::All || a.stage == Stage::Proposal {
        let ckpt = checkpoint::Checkpoint::new(&a.run.join("tokenizer"))?;
        if !ckpt.exists() {
            bail!("no trained tokenizer in {} (run --stage tokenizer first)", a.run.display());
        }
        let (tokenizer, _) = ckpt.load(tok_cfg.init(dev), None, dev, false).context("loading the tokenizer")?;
        let tokens = train::tokenize(&tokenizer, &train, dev);
        let s = train::train_proposal(&a.run.join("proposal"), &gpt_cfg, &tokens, &train.labels, a.class_dropout, &sched(a.proposal_steps, 1e-3, 100), dev)?;
        eprintln!("proposal: {} steps in {:.0}s", s.step, s.elapsed_s);
    }
    Ok(())
}
