//! Seeded token sampling: temperature, top-k, top-p (nucleus) and classifier-free guidance.
//! Everything here runs on the host in f64 over logits read back from the device, with a
//! counter-based RNG, so the same seed gives the same tokens natively and in wasm (up to the rare
//! draw that falls on a boundary moved by float differences between backends).
use crate::error::TesseraError;
use crate::rng::Rng;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct SamplingOptions {
    pub seed: u64,
    /// Softmax temperature (> 0).
    pub temperature: f32,
    /// Keep only the k most likely tokens (0 = off).
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches p (1 = off).
    pub top_p: f32,
    /// Classifier-free guidance scale s: logits = uncond + s (cond - uncond); 1 = conditional only.
    pub guidance: f32,
    /// NAR (MaskGIT) only: number of parallel decoding steps.
    pub steps: usize,
    /// NAR only: scale of the Gumbel noise added to confidences, annealed to 0 over the steps.
    pub confidence_noise: f32,
}

impl Default for SamplingOptions {
    fn default() -> Self {
        Self { seed: 0, temperature: 1.0, top_k: 0, top_p: 1.0, guidance: 1.0, steps: 10, confidence_noise: 4.5 }
    }
}

impl SamplingOptions {
    pub fn validate(&self, vocab: usize) -> Result<(), TesseraError> {
        let bad = |s: String| Err(TesseraError::InvalidOption(s));
        if !(self.temperature.is_finite() && self.temperature > 0.0 && self.temperature <= 10.0) {
            return bad(format!("temperature must be in (0, 10], got {}", self.temperature));
        }
        if self.top_k > vocab {
            return bad(format!("top_k must be at most the codebook size {vocab} (0 = off), got {}", self.top_k));
        }
        if !(self.top_p.is_finite() && self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad(format!("top_p must be in (0, 1], got {}", self.top_p));
        }
        if !(self.guidance.is_finite() && (0.0..=20.0).contains(&self.guidance)) {
            return bad(format!("guidance must be in [0, 20], got {}", self.guidance));
        }
        if !(1..=256).contains(&self.steps) {
            return bad(format!("steps must be in 1..=256, got {}", self.steps));
        }
        if !(self.confidence_noise.is_finite() && (0.0..=100.0).contains(&self.confidence_noise)) {
            return bad(format!("confidence_noise must be in [0, 100], got {}", self.confidence_noise));
        }
        Ok(())
    }
    pub fn uses_guidance(&self) -> bool {
        self.guidance != 1.0
    }
}

/// Larger first; NaN after every number (a broken model's NaN logits must not make the ordering
/// inconsistent: Rust's sorts may panic on a comparator that is not a total order); -0 equals +0.
pub(crate) fn descending(x: f64, y: f64) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    match (x.is_nan(), y.is_nan()) {
        (false, false) => y.partial_cmp(&x).unwrap_or(Equal),
        (true, true) => Equal,
        (true, false) => Greater,
        (false, true) => Less,
    }
}

/// A u64 whose ascending order is [`descending`]'s order of the f64s: -0 as +0, NaN last.
pub(crate) fn descending_key(x: f64) -> u64 {
    if x.is_nan() {
        return u64::MAX;
    }
    let b = (x + 0.0).to_bits(); // -0 + 0 = +0
    // IEEE bits ordered as integers: negatives flipped, positives above them
    let ascending = if b >> 63 == 1 { !b } else { b | 1 << 63 };
    !ascending
}

/// The first `keep` (0: all) indices of `logits`, largest first (ties by index): [`descending`] then
/// index, sorted as integer pairs. A total order, so the unstable sort gives the stable sort's order
/// and selecting the `keep` smallest pairs before sorting them gives the full sort's prefix; comparing
/// two u64 costs less than two float loads and branches (the sort of 256 logits per token was ~10% of an NAR step).
fn descending_order(logits: &[f64], keep: usize) -> Vec<usize> {
    let mut keyed: Vec<(u64, usize)> = logits.iter().enumerate().map(|(i, &x)| (descending_key(x), i)).collect();
    if keep > 0 && keep < keyed.len() {
        keyed.select_nth_unstable(keep - 1);
        keyed.truncate(keep);
    }
    keyed.sort_unstable();
    keyed.into_iter().map(|k| k.1).collect()
}

/// Combines conditional and unconditional logits by classifier-free guidance.
pub fn guide(cond: &[f32], uncond: &[f32], scale: f32) -> Vec<f64> {
    cond.iter().zip(uncond).map(|(&c, &u)| u as f64 + scale as f64 * (c as f64 - u as f64)).collect()
}

/// The filtered distribution: `(token, probability)` sorted by probability (ties by index),
/// renormalised, after temperature, top-k and top-p.
pub fn filtered_probs(logits: &[f64], opts: &SamplingOptions) -> Vec<(usize, f64)> {
    filtered_probs_with(logits, None, opts)
}

/// [`filtered_probs`], reusing `exps[i] = exp(logits[i] - max)` (index order, `max` the largest
/// logit) when the caller has them and the temperature is 1: `(l - max) / 1.0` is `l - max`
/// exactly, so the probabilities are the same bits and the tokens the same.
fn filtered_probs_with(logits: &[f64], exps: Option<&[f64]>, opts: &SamplingOptions) -> Vec<(usize, f64)> {
    let t = opts.temperature as f64;
    let order = descending_order(logits, opts.top_k);
    let max = logits[order[0]];
    let mut probs: Vec<(usize, f64)> = match exps {
        Some(e) if t == 1.0 && e.len() == logits.len() => order.iter().map(|&i| (i, e[i])).collect(),
        _ => order.iter().map(|&i| (i, ((logits[i] - max) / t).exp())).collect(),
    };
    let z: f64 = probs.iter().map(|p| p.1).sum();
    probs.iter_mut().for_each(|p| p.1 /= z);
    if opts.top_p < 1.0 {
        let mut cum = 0.0;
        let mut keep = probs.len();
        for (n, p) in probs.iter().enumerate() {
            cum += p.1;
            if cum >= opts.top_p as f64 {
                keep = n + 1;
                break;
            }
        }
        probs.truncate(keep);
        let z: f64 = probs.iter().map(|p| p.1).sum();
        probs.iter_mut().for_each(|p| p.1 /= z);
    }
    probs
}

/// Draws one token from `logits` (cond) — guided by `uncond` when given.
pub fn sample(cond: &[f32], uncond: Option<&[f32]>, opts: &SamplingOptions, rng: &mut Rng) -> u32 {
    sample_with_logits(cond, uncond, opts, rng).0
}

/// [`sample`], also returning the guided logits the token was drawn from (MaskGIT scores its
/// confidence on them).
pub fn sample_with_logits(cond: &[f32], uncond: Option<&[f32]>, opts: &SamplingOptions, rng: &mut Rng) -> (u32, Vec<f64>) {
    let logits = guided_logits(cond, uncond, opts);
    (draw(&logits, None, opts, rng), logits)
}

/// The logits a token is drawn from: `cond`, guided by `uncond` when given, in f64.
pub(crate) fn guided_logits(cond: &[f32], uncond: Option<&[f32]>, opts: &SamplingOptions) -> Vec<f64> {
    match uncond {
        Some(u) => guide(cond, u, opts.guidance),
        None => cond.iter().map(|&x| x as f64).collect(),
    }
}

/// Log-probability of every logit's token: `max + ln(sum exp(l - max))` summed in index order,
/// with the `exp(l - max)` terms (index order), which [`draw`] reuses at temperature 1.
pub(crate) fn log_sum_exp(logits: &[f64]) -> (f64, Vec<f64>) {
    let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f64> = logits.iter().map(|x| (x - max).exp()).collect();
    (max + exps.iter().sum::<f64>().ln(), exps)
}

/// Draws one token from `logits` (already guided); `exps` as [`log_sum_exp`] returns them.
pub(crate) fn draw(logits: &[f64], exps: Option<&[f64]>, opts: &SamplingOptions, rng: &mut Rng) -> u32 {
    let probs = filtered_probs_with(logits, exps, opts);
    let u = rng.uniform();
    let mut cum = 0.0;
    for &(i, p) in &probs {
        cum += p;
        if u < cum {
            return i as u32;
        }
    }
    probs.last().map_or(0, |p| p.0 as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> SamplingOptions {
        SamplingOptions::default()
    }

    #[test]
    fn nan_logits_sort_last_and_never_panic() {
        let l = [f64::NAN, 1.0, f64::NAN, 3.0, -0.0, 0.0, f64::NAN, 2.0];
        let p = filtered_probs(&l, &SamplingOptions { top_k: 4, ..opts() });
        assert_eq!(p.iter().map(|x| x.0).collect::<Vec<_>>(), vec![3, 7, 1, 4]);
        let many: Vec<f64> = (0..256).map(|i| if i % 3 == 0 { f64::NAN } else { (i as f64 * 0.37).sin() }).collect();
        let order: Vec<usize> = filtered_probs(&many, &SamplingOptions { top_k: 100, ..opts() }).iter().map(|x| x.0).collect();
        assert!(order.iter().all(|&i| i % 3 != 0));
    }

    #[test]
    fn the_keyed_sort_gives_the_comparator_order() {
        let mut rng = Rng::new(5, 0);
        let specials = [0.0, -0.0, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, f64::MIN_POSITIVE, -f64::MIN_POSITIVE, 5e-324, -5e-324, f64::MAX, f64::MIN];
        for round in 0..200 {
            let n = 1 + round % 300;
            let l: Vec<f64> = (0..n)
                .map(|_| {
                    let u = rng.uniform();
                    if u < 0.1 { specials[(rng.uniform() * specials.len() as f64) as usize % specials.len()] } else if u < 0.3 { ((u * 40.0) as i32 - 6) as f64 } else { (u - 0.6) * 1e3 }
                })
                .collect();
            let mut want: Vec<usize> = (0..n).collect();
            want.sort_by(|&a, &b| descending(l[a], l[b]).then(a.cmp(&b)));
            assert_eq!(descending_order(&l, 0), want, "logits {l:?}");
            // top-k: the selected prefix is the full order's
            for keep in [1, n / 2, n.saturating_sub(1), n] {
                let k = if keep == 0 { n } else { keep };
                assert_eq!(descending_order(&l, keep), want[..k], "top {keep} of {l:?}");
            }
        }
    }

    #[test]
    fn top_k_keeps_k_most_likely() {
        let l = [0.0, 3.0, 1.0, 2.0, -1.0];
        let p = filtered_probs(&l, &SamplingOptions { top_k: 2, ..opts() });
        assert_eq!(p.iter().map(|x| x.0).collect::<Vec<_>>(), vec![1, 3]);
        assert!((p.iter().map(|x| x.1).sum::<f64>() - 1.0).abs() < 1e-12);
        let e = (1.0f64).exp();
        assert!((p[0].1 - e / (e + 1.0)).abs() < 1e-12);
    }

    #[test]
    fn top_p_keeps_smallest_nucleus() {
        // probabilities 0.5, 0.25, 0.125, 0.125
        let l = [2f64.ln() * 2.0, 2f64.ln(), 0.0, 0.0];
        let keep = |p: f32| filtered_probs(&l, &SamplingOptions { top_p: p, ..opts() }).iter().map(|x| x.0).collect::<Vec<_>>();
        assert_eq!(keep(0.5), vec![0]);
        assert_eq!(keep(0.6), vec![0, 1]);
        assert_eq!(keep(0.75), vec![0, 1]);
        assert_eq!(keep(0.8), vec![0, 1, 2]);
        assert_eq!(keep(1.0).len(), 4);
    }

    #[test]
    fn temperature_sharpens() {
        let l = [1.0, 0.0];
        let hot = filtered_probs(&l, &SamplingOptions { temperature: 2.0, ..opts() })[0].1;
        let cold = filtered_probs(&l, &SamplingOptions { temperature: 0.5, ..opts() })[0].1;
        assert!(cold > hot && hot > 0.5);
    }

    #[test]
    fn guidance_formula() {
        let g = guide(&[2.0, 0.0], &[1.0, 1.0], 1.75);
        assert!((g[0] - (1.0 + 1.75 * 1.0)).abs() < 1e-9 && (g[1] - (1.0 - 1.75)).abs() < 1e-9);
        assert_eq!(guide(&[2.0, 0.0], &[5.0, 5.0], 1.0), vec![2.0, 0.0]);
    }

    #[test]
    fn seed_determinism_and_stream_independence() {
        let l: Vec<f32> = (0..50).map(|i| ((i * 37) % 11) as f32 * 0.3).collect();
        let draw = |seed, stream| {
            let mut r = Rng::new(seed, stream);
            (0..64).map(|_| sample(&l, None, &opts(), &mut r)).collect::<Vec<_>>()
        };
        assert_eq!(draw(42, 0), draw(42, 0));
        assert_ne!(draw(42, 0), draw(43, 0));
        assert_ne!(draw(42, 0), draw(42, 1));
    }

    #[test]
    fn sampling_follows_distribution() {
        let l = [0.0f32, 1.0, 2.0];
        let mut r = Rng::new(1, 0);
        let mut counts = [0usize; 3];
        for _ in 0..30000 {
            counts[sample(&l, None, &opts(), &mut r) as usize] += 1;
        }
        let z: f64 = l.iter().map(|&x| (x as f64).exp()).sum();
        for i in 0..3 {
            let p = (l[i] as f64).exp() / z;
            assert!((counts[i] as f64 / 30000.0 - p).abs() < 0.01, "{counts:?}");
        }
    }

    #[test]
    fn reused_exps_give_the_same_probabilities_and_tokens() {
        // MaskGIT's log-sum-exp terms stand in for the draw's own exps at temperature 1: same bits
        let mut r = Rng::new(7, 3);
        for case in 0..200 {
            let mut l: Vec<f64> = (0..257).map(|_| (r.uniform() - 0.5) * 30.0).collect();
            if case % 3 == 0 {
                l[case % 257] = f64::NAN; // a broken model's NaN stays harmless on both paths
            }
            let (_, exps) = log_sum_exp(&l);
            for o in [opts(), SamplingOptions { top_k: 40, top_p: 0.9, ..opts() }, SamplingOptions { temperature: 0.7, ..opts() }] {
                let own = filtered_probs(&l, &o);
                let reused = filtered_probs_with(&l, Some(&exps), &o);
                assert_eq!(own.len(), reused.len());
                for (a, b) in own.iter().zip(&reused) {
                    assert!(a.0 == b.0 && a.1.to_bits() == b.1.to_bits(), "{case}: {a:?} vs {b:?}");
                }
                let (mut r1, mut r2) = (Rng::new(case as u64, 0), Rng::new(case as u64, 0));
                assert_eq!(draw(&l, None, &o, &mut r1), draw(&l, Some(&exps), &o, &mut r2));
            }
        }
    }

    #[test]
    fn validation_rejects_bad_options() {
        for o in [
            SamplingOptions { temperature: 0.0, ..opts() },
            SamplingOptions { temperature: f32::NAN, ..opts() },
            SamplingOptions { top_k: 1000, ..opts() },
            SamplingOptions { top_p: 0.0, ..opts() },
            SamplingOptions { guidance: -1.0, ..opts() },
            SamplingOptions { steps: 0, ..opts() },
            SamplingOptions { confidence_noise: f32::INFINITY, ..opts() },
        ] {
            assert!(o.validate(256).is_err(), "{o:?}");
        }
        assert!(opts().validate(256).is_ok());
    }
}
