//! `tessera-train`: train, evaluate and export Tessera models natively (burn flex on the CPU by
//! default; `--device wgpu` for burn's wgpu backend, a GPU when one is present).
//!
//! - `cli.rs`: commands and flags, validated before work starts;
//! - `pipeline.rs`: `train`, stage by stage; `train.rs`: the training loops; `checkpoint.rs`:
//!   resumable, consistency-checked checkpoints; `assemble.rs`: VQ-KD / Cluster from their parts;
//! - `export.rs`: bundles and the evaluator card; `eval.rs`: generation and the `EvalReport`;
//!   `bench.rs`: native speed; `metrics.rs`: FID/IS/PPL maths;
//! - `table.rs`: the paper's comparison (runs), `table_render.rs` (table.json / table.md / figures);
//!   `plots.rs`: figures; `data.rs`: the data set.
mod assemble;
mod bench;
mod checkpoint;
mod clip_score;
mod cli;
mod data;
mod eval;
mod export;
mod fid_lite;
mod metrics;
mod phrasings;
mod pipeline;
mod plots;
mod table;
mod table_render;
mod train;

use anyhow::Result;
use clap::Parser;
use cli::{Cli, Cmd};
pub use cli::{DeviceArg, SampleArgs, device};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<()> {
    // mimalloc's `mi_option_purge_delay` (15 in mimalloc 2's option enum) = -1: freed pages are kept,
    // not returned to the OS and faulted in again next step (a training process reuses them at once).
    unsafe { libmimalloc_sys::mi_option_set(15, -1) };
    let cli = Cli::parse();
    cli.cmd.validate()?;
    // The command runs on a worker of rayon's pool, not on the main thread: burn flex's parallel
    // kernels (gemm above ~7M multiply-adds, large element-wise maps) then start on the thread that
    // calls them, instead of being handed from the main thread to the pool, which sleeps until
    // they end (a futex wake-up and two context switches per kernel).
    let pool = rayon::ThreadPoolBuilder::new().thread_name(|i| format!("tessera-{i}")).build()?;
    pool.install(|| run(cli))
}

fn run(cli: Cli) -> Result<()> {
    let dev = device(cli.device)?;
    let command_line = std::env::args().collect::<Vec<_>>().join(" ");
    match cli.cmd {
        Cmd::Train(a) => {
            let devices = cli::devices(cli.device, a.devices as usize)?;
            pipeline::run_train_on(&a, &train::parallel::Devices(devices), &command_line)
        }
        Cmd::Export { run, out, name } => export::export(&run, &out, &name, &dev),
        Cmd::ExportClip { run, out } => clip_score::export_clip(&run, &out, &dev),
        Cmd::EvalPhrasings { bundles, prompts, clip, evaluator, proposal, samples_per_prompt, sampling, out } => {
            phrasings::evaluate(&bundles, &prompts, &clip, &evaluator, &proposal, samples_per_prompt, &sampling, &out, &dev)
        }
        Cmd::ExportTextEncoder { bundle } => export::export_text_encoder(&bundle, &dev),
        Cmd::ExportEvaluator { run, data, out } => export::export_evaluator(&run, data.as_ref(), &out, &dev),
        Cmd::Generate { bundle, proposal, class, prompt, max_classes, count, sampling, out, tokens_out, pixels_out } => {
            eval::generate_grid(&bundle, &proposal, class.as_deref(), &prompt, max_classes, count, &sampling, &out, eval::Outputs { tokens: tokens_out.as_deref(), pixels: pixels_out.as_deref() }, &dev)
        }
        Cmd::Eval { bundle, evaluator, data, samples_per_class, sampling, out, recon_png, clip } => {
            eval::evaluate(&bundle, &evaluator, data.as_ref(), samples_per_class, &sampling, out.as_deref(), recon_png.as_deref(), clip.as_deref(), &dev)
        }
        Cmd::Table(a) => table::table(&a, &dev, &format!("{:?}", cli.device).to_lowercase()).map(|_| ()),
        Cmd::ImportTeacher { file, heads, image_size, image_channels, blocks, out } => match heads {
            Some(h) => pipeline::import_teacher(&file, h, &out, &dev, &command_line),
            None => pipeline::import_efficientnet(&file, image_size, image_channels, blocks, &out, &dev, &command_line),
        },
        Cmd::Data { data, image_size, image_channels, preview } => data::summary(&data, image_size, image_channels, preview.as_deref()),
        Cmd::Curves { run, out } => checkpoint::curves(&run, &out),
        Cmd::BenchGemm { size, runs } => bench::bench_gemm(size, runs, &dev),
        Cmd::Bench { bundle, count, runs, decode_only: true, .. } => bench::bench_decode(&bundle, count, runs, &dev, &format!("{:?}", cli.device).to_lowercase()),
        Cmd::Bench { bundle, proposal, count, runs, decode_only: false } => bench::bench(&bundle, &proposal, count, runs, &dev, &format!("{:?}", cli.device).to_lowercase()),
    }
}

