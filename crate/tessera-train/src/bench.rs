//! `bench`: native generation speed of a bundle on this device. One JSON line: bundle load, the
//! first generation after it, the median of `runs` further generations, and within those the
//! median of one sampling step (an AR token for the whole batch, or one NAR pass) and of decoding
//! the batch's tokens alone — the figures `scripts/bench.sh` sets beside ONNX Runtime's.
use anyhow::Result;
use burn::prelude::*;
use serde_json::json;
use std::path::Path;
use std::time::Instant;
use tessera::bundle::Bundle;
use tessera::sampling::sampler::SamplingOptions;
use tessera::sampling::{Request, decode, tokens_tensor};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v[v.len() / 2]
}

/// Seconds to decode `tokens` (one grid of `per` codes per image) into pixels.
fn timed_decode(b: &Bundle, tokens: &[Vec<u32>], device: &Device) -> Result<f64> {
    let (per, vocab) = (b.manifest.tokenizer.tokens_per_image(), b.manifest.tokenizer.codebook_size());
    let t = Instant::now();
    let grid = tokens_tensor(tokens, per, vocab, device)?;
    pollster::block_on(decode(&b.tokenizer, grid))?;
    Ok(t.elapsed().as_secs_f64())
}

/// Times of one generation: (total, every step, decode), in seconds; steps read their logits back,
/// so a step's time includes its device work.
fn timed(b: &Bundle, proposal: &str, class: usize, count: usize, options: SamplingOptions, device: &Device) -> Result<(f64, Vec<f64>, f64)> {
    let per = b.manifest.tokenizer.tokens_per_image();
    let t0 = Instant::now();
    let mut s = b.sampler(proposal, Request { class, count, options, prompt: None }, None, device)?;
    let mut steps = Vec::new();
    while !s.done() {
        let t = Instant::now();
        pollster::block_on(s.step())?;
        steps.push(t.elapsed().as_secs_f64());
    }
    let dec = timed_decode(b, &s.filled(0, per), device)?;
    Ok((t0.elapsed().as_secs_f64(), steps, dec))
}

pub fn bench(dir: &Path, proposal: &str, count: usize, runs: usize, device: &Device, device_name: &str) -> Result<()> {
    let t0 = Instant::now();
    let b = Bundle::load_dir(dir, device)?;
    let load = t0.elapsed().as_secs_f64();
    if b.manifest.text.is_some() {
        anyhow::bail!("bench times class-conditional bundles; {} takes prompts", dir.display());
    }
    let opts = b.defaults(proposal)?;
    // the first generation after load (kernel compilation on GPU backends)
    let (first, _, _) = timed(&b, proposal, 0, count, opts.clone(), device)?;
    let (mut totals, mut steps, mut decodes) = (Vec::new(), Vec::new(), Vec::new());
    let classes = b.manifest.dataset.classes.len();
    for r in 0..runs {
        let (total, s, d) = timed(&b, proposal, r % classes, count, SamplingOptions { seed: r as u64 + 1, ..opts.clone() }, device)?;
        totals.push(total);
        steps.extend(s);
        decodes.push(d);
    }
    let med = median(totals);
    let threads = std::env::var("RAYON_NUM_THREADS").ok().and_then(|v| v.parse::<usize>().ok());
    println!(
        "{}",
        json!({
            "device": device_name, "proposal": proposal, "count": count, "runs": runs, "threads": threads,
            "load_s": load, "first_s": first, "median_s": med, "images_per_s": count as f64 / med, "ms_per_image": 1000.0 * med / count as f64,
            "steps_per_image": steps.len() / runs, "step_ms": 1000.0 * median(steps), "decode_ms": 1000.0 * median(decodes),
            "guidance": opts.guidance,
        })
    );
    Ok(())
}

/// Decoding alone: `runs` decodes of the same `count` token grids (a fixed pattern over the
/// codebook), after one warm-up; one JSON line with the median.
pub fn bench_decode(dir: &Path, count: usize, runs: usize, device: &Device, device_name: &str) -> Result<()> {
    let b = Bundle::load_dir(dir, device)?;
    let (per, vocab) = (b.manifest.tokenizer.tokens_per_image(), b.manifest.tokenizer.codebook_size());
    let tokens: Vec<Vec<u32>> = (0..count).map(|i| (0..per).map(|p| ((i * 131 + p * 37) % vocab) as u32).collect()).collect();
    timed_decode(&b, &tokens, device)?;
    let times = (0..runs).map(|_| timed_decode(&b, &tokens, device)).collect::<Result<Vec<_>>>()?;
    let threads = std::env::var("RAYON_NUM_THREADS").ok().and_then(|v| v.parse::<usize>().ok());
    println!("{}", json!({ "device": device_name, "count": count, "runs": runs, "threads": threads, "decode_ms": 1000.0 * median(times) }));
    Ok(())
}

/// GFLOP/s of `runs` square `size` x `size` f32 matrix products on `device` (after one warm-up),
/// median and best: the ceiling the training stages' achieved GFLOP/s are read against.
pub fn bench_gemm(size: usize, runs: usize, device: &Device) -> Result<()> {
    let a: Tensor<2> = Tensor::random([size, size], burn::tensor::Distribution::Uniform(-1.0, 1.0), device);
    let b: Tensor<2> = Tensor::random([size, size], burn::tensor::Distribution::Uniform(-1.0, 1.0), device);
    let flops = 2.0 * (size as f64).powi(3);
    let run = || {
        let t = Instant::now();
        // reading one value back waits for the device (a GPU backend runs asynchronously)
        let c = a.clone().matmul(b.clone());
        let _ = c.slice([0..1, 0..1]).into_data();
        t.elapsed().as_secs_f64()
    };
    run();
    let times: Vec<f64> = (0..runs).map(|_| run()).collect();
    let best = times.iter().cloned().fold(f64::INFINITY, f64::min);
    let threads = std::env::var("RAYON_NUM_THREADS").ok().and_then(|v| v.parse::<usize>().ok());
    println!(
        "{}",
        json!({ "size": size, "runs": runs, "gflop_per_s_median": flops / median(times) / 1e9, "gflop_per_s_best": flops / best / 1e9, "rayon_threads": threads })
    );
    Ok(())
}
