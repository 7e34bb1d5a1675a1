//! The paper's metrics on in-project features (definitions: shared/PAPER.md). The evaluator is an
//! in-project classifier, never Inception: its penultimate features give `FID_eval`, its class
//! probabilities `IS_eval`. Linear algebra (the matrix square root) is nalgebra's symmetric
//! eigendecomposition, not hand-rolled.
use nalgebra::{DMatrix, DVector};

/// Mean and unbiased covariance (n - 1, as numpy's `cov`) of `n` rows of `d` features.
pub fn mean_cov(x: &[f32], d: usize) -> (DVector<f64>, DMatrix<f64>) {
    let n = x.len() / d;
    let m = DMatrix::from_row_iterator(n, d, x.iter().map(|&v| v as f64));
    let mu = m.row_mean().transpose();
    let centred = DMatrix::from_fn(n, d, |i, j| m[(i, j)] - mu[j]);
    let cov = centred.transpose() * &centred / (n.max(2) - 1) as f64;
    (mu, cov)
}

/// Square root of a symmetric positive semi-definite matrix (negative eigenvalues from rounding are
/// clamped to 0).
fn sqrt_psd(m: &DMatrix<f64>) -> DMatrix<f64> {
    let sym = (m + m.transpose()) * 0.5;
    let e = sym.symmetric_eigen();
    let s = e.eigenvalues.map(|l| l.max(0.0).sqrt());
    &e.eigenvectors * DMatrix::from_diagonal(&s) * e.eigenvectors.transpose()
}

/// Fréchet distance between Gaussians: `|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))`.
/// `tr((S1 S2)^(1/2)) = tr((A S2 A)^(1/2))` with `A = S1^(1/2)`, a symmetric PSD matrix, so only
/// symmetric eigendecompositions are needed.
pub fn frechet_distance(mu1: &DVector<f64>, s1: &DMatrix<f64>, mu2: &DVector<f64>, s2: &DMatrix<f64>) -> f64 {
    let a = sqrt_psd(s1);
    let inner = &a * s2 * &a;
    // eigenvalues only: the same tridiagonal QR as `symmetric_eigen`, less the eigenvector
    // accumulation that dominated it at 1280 features (so the same values, bit for bit)
    let tr_sqrt: f64 = ((&inner + inner.transpose()) * 0.5).symmetric_eigenvalues().iter().map(|l| l.max(0.0).sqrt()).sum();
    (mu1 - mu2).norm_squared() + s1.trace() + s2.trace() - 2.0 * tr_sqrt
}

/// FID between two feature sets (`[n, d]` row-major each).
pub fn fid(a: &[f32], b: &[f32], d: usize) -> f64 {
    let (m1, s1) = mean_cov(a, d);
    let (m2, s2) = mean_cov(b, d);
    frechet_distance(&m1, &s1, &m2, &s2)
}

/// Inception-style score from class probabilities (`[n, k]`): `exp(E_x KL(p(y|x) || p(y)))`.
pub fn inception_score(probs: &[f32], k: usize) -> f64 {
    let n = probs.len() / k;
    let mut marginal = vec![0f64; k];
    for row in probs.chunks(k) {
        row.iter().enumerate().for_each(|(j, &p)| marginal[j] += p as f64 / n as f64);
    }
    let kl: f64 = probs
        .chunks(k)
        .map(|row| row.iter().zip(&marginal).filter(|(p, _)| **p > 0.0).map(|(&p, &q)| p as f64 * ((p as f64).ln() - q.ln())).sum::<f64>())
        .sum::<f64>()
        / n as f64;
    kl.exp()
}

/// Share of codes used at least once.
pub fn usage(counts: &[u64]) -> f64 {
    counts.iter().filter(|&&c| c > 0).count() as f64 / counts.len() as f64
}

/// Entropy of the code distribution in bits (log2(K) when uniform).
pub fn code_entropy(counts: &[u64]) -> f64 {
    let total: u64 = counts.iter().sum();
    counts.iter().filter(|&&c| c > 0).map(|&c| {
        let p = c as f64 / total as f64;
        -p * p.log2()
    }).sum()
}

/// Majority class of every code from per-code class counts (`[k][classes]`), `None` when unused.
pub fn majority_class(class_counts: &[Vec<u64>]) -> Vec<Option<usize>> {
    class_counts
        .iter()
        .map(|c| (c.iter().sum::<u64>() > 0).then(|| c.iter().enumerate().max_by_key(|(i, n)| (**n, std::cmp::Reverse(*i))).map_or(0, |(i, _)| i)))
        .collect()
}

/// Code purity: the share of tokens whose code's majority class is their image's class (a
/// usage-weighted mean over codes). 1 when every code is used by one class only; the largest class
/// share when codes ignore classes. Measures how semantic a codebook is, as the paper's t-SNE shows.
pub fn code_purity(class_counts: &[Vec<u64>]) -> f64 {
    let total: u64 = class_counts.iter().flatten().sum();
    let majority: u64 = class_counts.iter().map(|c| c.iter().copied().max().unwrap_or(0)).sum();
    majority as f64 / total.max(1) as f64
}

/// Mean and sample standard deviation (n - 1; 0 for a single value).
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 { v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (mean, var.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera::rng::Rng;

    fn gaussian(n: usize, d: usize, mean: &[f64], scale: &[f64], seed: u64) -> Vec<f32> {
        let mut r = Rng::new(seed, 0);
        let mut normal = || {
            // Box-Muller
            let (u1, u2) = (r.uniform().max(1e-300), r.uniform());
            (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
        };
        (0..n * d).map(|i| (mean[i % d] + scale[i % d] * normal()) as f32).collect()
    }

    #[test]
    fn identical_sets_give_zero() {
        let a = gaussian(500, 4, &[0.0; 4], &[1.0, 2.0, 0.5, 1.0], 1);
        assert!(fid(&a, &a, 4).abs() < 1e-9);
    }

    #[test]
    fn closed_forms() {
        // equal covariances: FID = |mu1 - mu2|^2
        let i = DMatrix::<f64>::identity(3, 3);
        let (m1, m2) = (DVector::from_vec(vec![0.0, 0.0, 0.0]), DVector::from_vec(vec![1.0, 2.0, -2.0]));
        assert!((frechet_distance(&m1, &i, &m2, &i) - 9.0).abs() < 1e-9);
        // diagonal covariances: sum (sqrt a - sqrt b)^2
        let (a, b) = ([1.0, 4.0, 9.0], [4.0, 1.0, 9.0]);
        let f = frechet_distance(&m1, &DMatrix::from_diagonal(&DVector::from_vec(a.to_vec())), &m1, &DMatrix::from_diagonal(&DVector::from_vec(b.to_vec())));
        let want: f64 = a.iter().zip(&b).map(|(x, y): (&f64, &f64)| (x.sqrt() - y.sqrt()).powi(2)).sum();
        assert!((f - want).abs() < 1e-9, "{f} vs {want}");
        // sampled shifted Gaussians approach |shift|^2
        let x = gaussian(20000, 2, &[0.0, 0.0], &[1.0, 1.0], 2);
        let y = gaussian(20000, 2, &[3.0, 0.0], &[1.0, 1.0], 3);
        assert!((fid(&x, &y, 2) - 9.0).abs() < 0.15, "{}", fid(&x, &y, 2));
    }

    #[test]
    fn eigenvalues_alone_equal_the_full_decomposition_s() {
        // frechet_distance skips the eigenvectors of its second decomposition: same values, bit for bit
        let x = gaussian(300, 40, &[0.0; 40], &[1.0; 40], 5);
        let (_, s) = mean_cov(&x, 40);
        let full = s.clone().symmetric_eigen().eigenvalues;
        let alone = s.symmetric_eigenvalues();
        assert!(full.iter().zip(alone.iter()).all(|(a, b)| a.to_bits() == b.to_bits()), "{full} vs {alone}");
    }

    #[test]
    fn matches_scipy_fixture() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/fid.json");
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let f = |k: &str| v[k].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect::<Vec<_>>();
        let d = v["dim"].as_u64().unwrap() as usize;
        let ours = fid(&f("a"), &f("b"), d);
        let scipy = v["fid"].as_f64().unwrap();
        assert!((ours - scipy).abs() < 1e-6 * scipy.abs().max(1.0), "ours {ours}, scipy {scipy}");
    }

    #[test]
    fn inception_score_bounds() {
        // confident and uniform over classes -> K; all identical -> 1
        let k = 4;
        let confident: Vec<f32> = (0..8).flat_map(|i| (0..k).map(move |j| if j == i % k { 1.0 } else { 0.0 })).collect();
        assert!((inception_score(&confident, k) - 4.0).abs() < 1e-9);
        let same: Vec<f32> = (0..8).flat_map(|_| [0.7f32, 0.1, 0.1, 0.1]).collect();
        assert!((inception_score(&same, k) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn usage_and_entropy() {
        assert_eq!(usage(&[3, 0, 1, 0]), 0.5);
        assert!((code_entropy(&[5; 256]) - 8.0).abs() < 1e-12);
        assert_eq!(code_entropy(&[7, 0, 0]), 0.0);
        assert!((code_entropy(&[1, 1, 2]) - 1.5).abs() < 1e-12);
    }

    #[test]
    fn purity_majority_and_mean_std() {
        // code 0: only class 1; code 1: 3 of class 0, 1 of class 2; code 2 unused
        let counts = vec![vec![0, 4, 0], vec![3, 0, 1], vec![0, 0, 0]];
        assert_eq!(majority_class(&counts), vec![Some(1), Some(0), None]);
        assert!((code_purity(&counts) - 7.0 / 8.0).abs() < 1e-12);
        assert_eq!(code_purity(&[vec![2, 0], vec![0, 5]]), 1.0);
        let (m, s) = mean_std(&[1.0, 2.0, 3.0]);
        assert!((m - 2.0).abs() < 1e-12 && (s - 1.0).abs() < 1e-12);
        assert_eq!(mean_std(&[4.0]), (4.0, 0.0));
    }
}
