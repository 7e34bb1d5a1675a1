//! `bench`: native generation speed of a bundle on this device (first run, median of the rest).
use crate::eval::sample;
use anyhow::Result;
use burn::prelude::*;
use serde_json::json;
use std::path::Path;
use std::time::Instant;
use tessera::bundle::Bundle;
use tessera::sampling::sampler::SamplingOptions;

pub fn bench(dir: &Path, proposal: &str, count: usize, runs: usize, device: &Device, device_name: &str) -> Result<()> {
    let b = Bundle::load_dir(dir, device)?;
    let opts = b.defaults(proposal)?;
    let t0 = Instant::now();
    sample(&b, proposal, 0, count, &opts, device)?; // warm-up (kernel compilation on GPU backends)
    let first = t0.elapsed().as_secs_f64();
    let mut times = Vec::new();
    for r in 0..runs {
        let t = Instant::now();
        sample(&b, proposal, r % 10, count, &SamplingOptions { seed: r as u64 + 1, ..opts.clone() }, device)?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let med = times[times.len() / 2];
    println!("{}", json!({"device": device_name, "proposal": proposal, "count": count, "first_s": first, "median_s": med, "images_per_s": count as f64 / med, "ms_per_image": 1000.0 * med / count as f64}));
    Ok(())
}
