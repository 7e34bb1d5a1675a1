//! The vendored burn-flex's matrix products write into output buffers that are not zeroed first
//! (`gemm_output` in `vendor/burn-flex/src/ops/matmul.rs`; gemm with `read_dst = false` writes every
//! element and reads none). So every element must come from the product whatever the allocator hands
//! back: freed memory is poisoned with NaN just before each product, which is checked against an f64 sum
//! (2D, batched on both of flex's batch paths, broadcast, a transposed operand, k = 0).
use burn::prelude::*;

mod common;
use common::values;

/// Frees buffers of `len` NaNs (and a few sizes around it) so that the next allocation of that size
/// likely reuses one of them.
fn poison(len: usize, d: &Device) {
    for l in [len, len + 1, len.saturating_sub(1).max(1), 2 * len] {
        drop(Tensor::<1>::full([l], f32::NAN, d).into_data());
    }
}

/// `[batch, m, k] x [batch_b, k, n]` (batch_b 1 broadcasts) in f64 from row-major data.
fn reference(a: &[f32], b: &[f32], (batch, batch_b): (usize, usize), m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut out = vec![0.0f64; batch * m * n];
    for p in 0..batch {
        let bp = if batch_b == 1 { 0 } else { p };
        for i in 0..m {
            for j in 0..n {
                out[(p * m + i) * n + j] = (0..k).map(|q| a[(p * m + i) * k + q] as f64 * b[(bp * k + q) * n + j] as f64).sum();
            }
        }
    }
    out
}

fn check(got: Tensor<3>, want: &[f64], k: usize, what: &str) {
    let got: Vec<f32> = got.into_data().try_into_vec().unwrap();
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(g.is_finite(), "{what}: element {i} is {g} (an unwritten output element)");
        assert!((g as f64 - w).abs() <= 1e-5 * (k as f64).max(1.0), "{what}: element {i} = {g}, want {w}");
    }
}

#[test]
fn products_write_every_output_element() {
    let d = Device::flex();
    // (batch, batch_b, m, k, n): 2D-like, batched (serial and batch-parallel paths), broadcast, large enough for
    // gemm's own threads (256^3), and a row/column vector
    let cases = [
        (1, 1, 7, 13, 5),
        (1, 1, 256, 256, 256),
        (4, 4, 9, 17, 11),
        (8, 8, 64, 64, 64),
        (3, 1, 10, 6, 12),
        (2, 2, 1, 33, 1),
    ];
    for (seed, &(batch, batch_b, m, k, n)) in cases.iter().enumerate() {
        let a = values(batch * m * k, seed as u64);
        let b = values(batch_b * k * n, 100 + seed as u64);
        let want = reference(&a, &b, (batch, batch_b), m, k, n);
        let ta = Tensor::<1>::from_floats(a.as_slice(), &d).reshape([batch, m, k]);
        let tb = Tensor::<1>::from_floats(b.as_slice(), &d).reshape([batch_b, k, n]);
        poison(batch * m * n, &d);
        check(ta.clone().matmul(tb.clone()), &want, k, &format!("{batch}x{m}x{k} @ {batch_b}x{k}x{n}"));
        // the same product with the right operand stored transposed (strided, no copy)
        let tbt = Tensor::<1>::from_floats(b.as_slice(), &d).reshape([batch_b, k, n]).swap_dims(1, 2).into_data();
        let tbt = Tensor::<3>::from_data(tbt, &d).swap_dims(1, 2);
        poison(batch * m * n, &d);
        check(ta.matmul(tbt), &want, k, &format!("{batch}x{m}x{k} @ transposed {batch_b}x{k}x{n}"));
        // 2D (flex's separate 2D path)
        if batch == 1 {
            let a2 = Tensor::<1>::from_floats(a.as_slice(), &d).reshape([m, k]);
            let b2 = Tensor::<1>::from_floats(b.as_slice(), &d).reshape([k, n]);
            poison(m * n, &d);
            check(a2.matmul(b2).unsqueeze::<3>(), &want, k, &format!("2D {m}x{k} @ {k}x{n}"));
        }
    }
}

#[test]
fn an_empty_inner_dimension_gives_zeros() {
    let d = Device::flex();
    poison(12, &d);
    let a = Tensor::<2>::zeros([3, 0], &d);
    let b = Tensor::<2>::zeros([0, 4], &d);
    let got: Vec<f32> = a.matmul(b).into_data().try_into_vec().unwrap();
    assert_eq!(got, vec![0.0; 12]);
}
