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

/// `C (+)= A·B` summed over k in order, multiply then add, in f32: the order the wasm GEMM kernel
/// (`burn_flex::gemm_v128`) promises, so its results must equal these bit for bit.
fn ordered(a: &[f32], (a_rs, a_cs): (usize, usize), b: &[f32], (b_rs, b_cs): (usize, usize), (m, k, n): (usize, usize, usize), c: &mut [f32], accumulate: bool) {
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0.0f32;
            for q in 0..k {
                acc += a[i * a_rs + q * a_cs] * b[q * b_rs + j * b_cs];
            }
            c[i * n + j] = if accumulate { c[i * n + j] + acc } else { acc };
        }
    }
}

/// The wasm build's GEMM (`burn_flex::gemm_v128`, every f32 product in the browser), here in its
/// scalar build (the simd128 build runs the same test in `crate/tessera-wasm/tests/web.rs`): every
/// element bit for bit the ordered f32 sum, on shapes with partial blocks of rows (m % 4) and
/// columns (n % 8), k = 0, B read in place, packed and transposed, accumulation, and the rayon split.
#[test]
fn wasm_gemm_kernel_sums_in_order() {
    use burn_flex::gemm_v128::gemm_at;
    for &(m, k, n) in &[(1, 1, 1), (4, 8, 8), (5, 3, 9), (7, 0, 5), (65, 32, 65), (130, 128, 40), (3, 17, 1), (70, 5, 23), (261, 9, 20)] {
        for layout in 0..3 {
            let a = values(m * k * 2 + 1, 3 * m as u64 + 1);
            let b = values(k * n * 3 + 1, 5 * n as u64 + 2);
            // A row-major (k, 1) or transposed (1, m); B with a column stride of 3 or transposed
            // B's columns contiguous (read in place), 3 apart (packed), or B and A transposed
            let (a_st, b_st) = [((k, 1), (n + 2, 1)), ((k, 1), (3 * n, 3)), ((1, m.max(1)), (1, k.max(1)))][layout];
            for accumulate in [false, true] {
                for parallel in [false, true] {
                    let start = values(m * n, 7);
                    let (mut got, mut want) = (start.clone(), start);
                    gemm_at(&a, a_st, &b, b_st, (m, k, n), &mut got, accumulate, parallel);
                    ordered(&a, a_st, &b, b_st, (m, k, n), &mut want, accumulate);
                    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                        assert_eq!(g.to_bits(), w.to_bits(), "{m}x{k}x{n} layout {layout} accumulate {accumulate} parallel {parallel}: element {i} {g} vs {w}");
                    }
                }
            }
        }
    }
}
