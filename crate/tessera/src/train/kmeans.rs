//! Spherical (cosine) k-means with k-means++ seeding, on the host. Used to build the Cluster
//! tokenizer's codebook from teacher patch features and to initialise VQ-KD's codebook.
use crate::config::ConfigError;
use crate::rng::Rng;

/// L2-normalises each row of `x` (`[n, d]`) in place.
pub fn normalize_rows(x: &mut [f32], d: usize) {
    for row in x.chunks_mut(d) {
        let n = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
        row.iter_mut().for_each(|v| *v /= n);
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Index of the centroid with the largest cosine similarity to each (normalised) row.
pub fn assign(x: &[f32], centroids: &[f32], d: usize) -> Vec<usize> {
    x.chunks(d)
        .map(|row| {
            let mut best = (0, f32::NEG_INFINITY);
            for (k, c) in centroids.chunks(d).enumerate() {
                let s = dot(row, c);
                if s > best.1 {
                    best = (k, s);
                }
            }
            best.0
        })
        .collect()
}

/// Cosine k-means: `x` `[n, d]` (normalised here), `k` centroids (unit rows), `iters` Lloyd steps.
/// Deterministic given `seed`. Returns (centroids `[k, d]`, assignment of each row), or an error
/// when there are fewer points than clusters (or no dimensions, or a ragged `x`).
pub fn kmeans_cosine(x: &[f32], d: usize, k: usize, iters: usize, seed: u64) -> Result<(Vec<f32>, Vec<usize>), ConfigError> {
    let err = |r: String| Err(ConfigError::new("k-means", r));
    if d == 0 || x.len() % d != 0 {
        return err(format!("{} values are not rows of dimension {d}", x.len()));
    }
    let n = x.len() / d;
    if k == 0 || n < k {
        return err(format!("needs at least k = {k} points (k >= 1), got {n}"));
    }
    let mut x = x.to_vec();
    normalize_rows(&mut x, d);
    let mut rng = Rng::new(seed, 0x4B4D);
    // k-means++: each new centroid drawn with probability proportional to its distance (1 - cos).
    let mut c = Vec::with_capacity(k * d);
    let first = (rng.next_u64() % n as u64) as usize;
    c.extend_from_slice(&x[first * d..(first + 1) * d]);
    let mut dist: Vec<f64> = x.chunks(d).map(|r| (1.0 - dot(r, &c[..d])).max(0.0) as f64).collect();
    for _ in 1..k {
        let total: f64 = dist.iter().sum();
        let pick = if total <= 0.0 {
            (rng.next_u64() % n as u64) as usize
        } else {
            let mut u = rng.uniform() * total;
            dist.iter().position(|&w| {
                u -= w;
                u < 0.0
            }).unwrap_or(n - 1)
        };
        let new = x[pick * d..(pick + 1) * d].to_vec();
        for (i, r) in x.chunks(d).enumerate() {
            dist[i] = dist[i].min((1.0 - dot(r, &new)).max(0.0) as f64);
        }
        c.extend_from_slice(&new);
    }
    let mut labels = assign(&x, &c, d);
    for _ in 0..iters {
        let mut sums = vec![0f32; k * d];
        let mut counts = vec![0usize; k];
        for (i, &l) in labels.iter().enumerate() {
            counts[l] += 1;
            sums[l * d..(l + 1) * d].iter_mut().zip(&x[i * d..(i + 1) * d]).for_each(|(s, v)| *s += v);
        }
        for j in 0..k {
            if counts[j] > 0 {
                c[j * d..(j + 1) * d].copy_from_slice(&sums[j * d..(j + 1) * d]);
            } else {
                // an empty cluster takes the point worst served by its centroid
                let (worst, _) = labels.iter().enumerate().map(|(i, &l)| (i, dot(&x[i * d..(i + 1) * d], &c[l * d..(l + 1) * d]))).fold((0, f32::INFINITY), |a, b| if b.1 < a.1 { b } else { a });
                let row = x[worst * d..(worst + 1) * d].to_vec();
                c[j * d..(j + 1) * d].copy_from_slice(&row);
            }
        }
        normalize_rows(&mut c, d);
        let next = assign(&x, &c, d);
        if next == labels {
            break;
        }
        labels = next;
    }
    Ok((c, labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_well_separated_blobs() {
        // 4 directions in 8-d, 50 noisy points each, shuffled
        let d = 8;
        let mut rng = Rng::new(9, 0);
        let mut x = Vec::new();
        let mut truth = Vec::new();
        for i in 0..200 {
            let c = (i * 7) % 4;
            for j in 0..d {
                let center = if j == 2 * c { 1.0 } else { 0.0 };
                x.push(center + 0.1 * (rng.uniform() as f32 - 0.5));
            }
            truth.push(c);
        }
        let (cent, labels) = kmeans_cosine(&x, d, 4, 20, 1).unwrap();
        // every cluster is pure and every blob gets its own cluster
        for k in 0..4 {
            let members: std::collections::BTreeSet<usize> = labels.iter().zip(&truth).filter(|(l, _)| **l == k).map(|(_, t)| *t).collect();
            assert_eq!(members.len(), 1, "cluster {k} mixes blobs {members:?}");
        }
        let distinct: std::collections::BTreeSet<_> = labels.iter().collect();
        assert_eq!(distinct.len(), 4);
        for row in cent.chunks(d) {
            assert!((row.iter().map(|v| v * v).sum::<f32>() - 1.0).abs() < 1e-4);
            assert!(row.iter().cloned().fold(0.0, f32::max) > 0.99, "centroid not on a blob direction: {row:?}");
        }
    }

    #[test]
    fn too_few_points_is_an_error_not_a_panic() {
        let x = vec![1.0f32, 0.0, 0.0, 1.0];
        assert!(kmeans_cosine(&x, 2, 3, 5, 0).unwrap_err().to_string().contains("at least k = 3 points"));
        assert!(kmeans_cosine(&x, 2, 0, 5, 0).is_err());
        assert!(kmeans_cosine(&x, 0, 1, 5, 0).is_err());
        assert!(kmeans_cosine(&x, 3, 1, 5, 0).is_err());
        assert!(kmeans_cosine(&x, 2, 2, 5, 0).is_ok());
    }
}
