//! Two element-wise paths of the vendored burn-flex (`vendor/burn-flex`, Tessera's additions):
//! sigmoid over a libm-free exp (vectorised; SiLU is `x * sigmoid(x)` in every pixel decoder), and
//! the copy of a strided view whose innermost stride is not 1 (a broadcast, as in nearest-neighbour
//! upsampling by reshape + expand), which now copies two dims at a time instead of one element;
//! softmax over the same exp (attention's and the sampler's rows); and clamp (ReLU6).
use burn::prelude::*;
use burn::tensor::activation::{sigmoid, softmax};

mod common;

/// Rows of every length class the kernels split on (below one vector, a vector plus a tail, the
/// 8-lane sum's tail): within 2e-6 of an f64 softmax, masked scores (-1e9, -inf) weigh exactly 0.
#[test]
fn softmax_matches_f64_and_masks_exactly() {
    let d = Device::flex();
    for len in [1, 3, 7, 8, 9, 16, 17, 64, 65, 257] {
        let rows = 5;
        let mut xs: Vec<f32> = common::values(rows * len, len as u64).iter().map(|v| v * 12.0).collect();
        if len > 2 {
            xs[1] = -1.0e9; // row 0: a masked score, as mask_fill writes them
            xs[len + 2] = f32::NEG_INFINITY; // row 1
            xs[2 * len] = 95.0; // row 2: one score that dwarfs the rest (their exps underflow in f32)
        }
        let got: Vec<f32> = softmax(Tensor::<1>::from_floats(xs.as_slice(), &d).reshape([rows, len]), 1).into_data().try_into_vec().unwrap();
        for r in 0..rows {
            let row = &xs[r * len..][..len];
            let max = row.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x as f64));
            let sum: f64 = row.iter().map(|&x| (x as f64 - max).exp()).sum();
            for (i, &x) in row.iter().enumerate() {
                let (want, y) = ((x as f64 - max).exp() / sum, got[r * len + i] as f64);
                if x <= -1.0e9 {
                    assert_eq!(y, 0.0, "len {len} row {r}: a masked score got weight {y}");
                } else {
                    assert!((y - want).abs() <= 2e-6 * want.max(1e-30) + 1e-37, "len {len} row {r} [{i}]: {y}, want {want}");
                }
            }
        }
    }
}

#[test]
fn sigmoid_matches_f64_and_keeps_nan() {
    let d = Device::flex();
    let mut xs: Vec<f32> = (-4000..=4000).map(|i| i as f32 * 0.0125).collect(); // -50 ..= 50
    xs.extend([0.0, -0.0, 1e-30, -1e-30, 86.9, -86.9, 88.5, -88.5, 200.0, -200.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN]);
    let got: Vec<f32> = sigmoid(Tensor::<1>::from_floats(xs.as_slice(), &d)).into_data().try_into_vec().unwrap();
    for (&x, &y) in xs.iter().zip(&got) {
        if x.is_nan() {
            assert!(y.is_nan(), "sigmoid(NaN) = {y}");
            continue;
        }
        let want = 1.0 / (1.0 + (-(x as f64)).exp());
        if want < 1e-37 {
            // below x = -87 the exp is clamped: ~1e-38 instead of a subnormal or zero
            assert!((0.0..2e-38).contains(&y), "sigmoid({x}) = {y}");
            continue;
        }
        let rel = ((y as f64 - want) / want).abs();
        assert!(rel < 4e-7, "sigmoid({x}) = {y}, want {want} (relative error {rel:e})");
    }
    // a shared input (SiLU keeps x for the product): the input is left as it was
    let x = Tensor::<1>::from_floats([-1.0, 0.5, 2.0], &d);
    let s = sigmoid(x.clone());
    assert_eq!(x.into_data().try_into_vec::<f32>().unwrap(), vec![-1.0, 0.5, 2.0]);
    assert!((s.into_data().try_into_vec::<f32>().unwrap()[1] - 0.622_459_3).abs() < 1e-6);
}

#[test]
fn broadcast_and_permuted_views_copy_in_order() {
    let d = Device::flex();
    let (a, b, c) = (3, 4, 5);
    let base: Vec<f32> = (0..a * b * c).map(|i| i as f32).collect();
    let t = || Tensor::<1>::from_floats(base.as_slice(), &d).reshape([a, b, c]);
    let at = |i: usize, j: usize, k: usize| base[(i * b + j) * c + k];
    // nearest-neighbour upsampling: [a, b, 1, c, 1] -> [a, b, 2, c, 3] (inner stride 0)
    let up: Vec<f32> = t().reshape([a, b, 1, c, 1]).expand([a, b, 2, c, 3]).into_data().try_into_vec().unwrap();
    let mut want = Vec::new();
    for i in 0..a {
        for j in 0..b {
            for _ in 0..2 {
                for k in 0..c {
                    want.extend([at(i, j, k); 3]);
                }
            }
        }
    }
    assert_eq!(up, want);
    // a broadcast in the middle and a permutation that leaves an inner stride of b * c
    let v: Vec<f32> = t().reshape([a, 1, b, c]).expand([a, 2, b, c]).permute([1, 3, 2, 0]).into_data().try_into_vec().unwrap();
    let mut want = Vec::new();
    for _ in 0..2 {
        for k in 0..c {
            for j in 0..b {
                for i in 0..a {
                    want.push(at(i, j, k));
                }
            }
        }
    }
    assert_eq!(v, want);
    // many dims around the broadcast (an odometer over five outer dims)
    let w: Vec<f32> = t().reshape([a, 1, b, 1, c, 1]).expand([a, 2, b, 2, c, 2]).swap_dims(0, 2).into_data().try_into_vec().unwrap();
    let mut want = Vec::new();
    for j in 0..b {
        for _ in 0..2 {
            for i in 0..a {
                for _ in 0..2 {
                    for k in 0..c {
                        want.extend([at(i, j, k); 2]);
                    }
                }
            }
        }
    }
    assert_eq!(w, want);
}

/// GELU, its gradient and sigmoid are compiled for several vector widths (portable, AVX2, AVX-512;
/// chosen at run time): every width this CPU runs must give the same bits, or the same seed could
/// sample different tokens on different machines and in the browser.
#[test]
fn every_simd_path_gives_the_same_bits() {
    use burn_flex::ops::activation::{Width, gelu_grad_slice_at, gelu_slice_at, sigmoid_slice_at};
    let mut xs: Vec<f32> = (-20000..=20000).map(|i| i as f32 * 0.0005).collect(); // -10 ..= 10
    xs.extend((-1000..=1000).map(|i| i as f32 * 0.1)); // -100 ..= 100
    xs.extend([0.0, -0.0, 1e-30, -1e-30, 0.921_875, -0.921_875, 3.92, -3.92, 87.0, -87.0, 88.5, -88.5, f32::MAX, f32::MIN, f32::INFINITY, f32::NEG_INFINITY, f32::NAN]);
    xs.extend([1.0f32; 13]); // a length that leaves a tail after every vector width
    let upstream: Vec<f32> = (0..xs.len()).map(|i| 1.0 - (i % 7) as f32 * 0.25).collect();
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let run = |width: Width| {
        let (mut gelu, mut sig, mut grad) = (xs.clone(), xs.clone(), upstream.clone());
        gelu_slice_at(width, &mut gelu);
        sigmoid_slice_at(width, &mut sig);
        gelu_grad_slice_at(width, &xs, &mut grad);
        (bits(&gelu), bits(&sig), bits(&grad))
    };
    let widths = Width::available();
    let base = run(Width::Baseline);
    for &width in &widths[1..] {
        let (gelu, sig, grad) = run(width);
        assert_eq!(gelu, base.0, "GELU: {width:?} differs from the portable loop");
        assert_eq!(sig, base.1, "sigmoid: {width:?} differs from the portable loop");
        assert_eq!(grad, base.2, "GELU's gradient: {width:?} differs from the portable loop");
    }
    // this test means something only where a wider path ran: say which did
    eprintln!("widths compared: {widths:?}");
}

/// Reshapes of strided views (narrowed, transposed, flipped, with size-1 dims) give the values of
/// reshaping a contiguous copy, whether flex can make a view (attention's heads split out of a
/// narrowed q/k/v) or must copy; products of such views are bit for bit those of the copies.
#[test]
fn reshapes_of_strided_views() {
    let d = Device::flex();
    let x = Tensor::<1>::from_floats(common::values(2 * 5 * 12, 9).as_slice(), &d).reshape([2, 5, 12]);
    let dense = |t: &Tensor<3>| Tensor::<3>::from_data(t.to_data(), &d);
    let same = |a: Vec<f32>, b: Vec<f32>, what: &str| assert!(a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits()) && a.len() == b.len(), "{what}");
    let views: Vec<(&str, Tensor<3>)> = vec![
        ("narrowed last dim", x.clone().narrow(2, 4, 4)),
        ("narrowed middle dim", x.clone().narrow(1, 1, 3).narrow(2, 0, 4)),
        ("transposed", x.clone().narrow(2, 0, 4).swap_dims(0, 1)),
        ("flipped", x.clone().flip([2]).narrow(2, 2, 4)),
    ];
    for (what, v) in views {
        let [a, b, c] = v.dims();
        let c2 = dense(&v);
        same(v.clone().reshape([a, b, 2, c / 2]).into_data().try_to_vec::<f32>().unwrap(), c2.clone().reshape([a, b, 2, c / 2]).into_data().try_to_vec::<f32>().unwrap(), what);
        same(v.clone().reshape([a * b, c]).into_data().try_to_vec::<f32>().unwrap(), c2.clone().reshape([a * b, c]).into_data().try_to_vec::<f32>().unwrap(), what);
        same(v.clone().reshape([a, 1, b * c, 1]).into_data().try_to_vec::<f32>().unwrap(), c2.clone().reshape([a, 1, b * c, 1]).into_data().try_to_vec::<f32>().unwrap(), what);
        same(v.clone().reshape([a * b * c]).into_data().try_to_vec::<f32>().unwrap(), c2.reshape([a * b * c]).into_data().try_to_vec::<f32>().unwrap(), what);
    }
    // attention's shapes: q and k as head views of one [b, t, 3c] product, and their scores
    let (b, t, h, hd) = (2, 7, 3, 4);
    let c = h * hd;
    let qkv = Tensor::<1>::from_floats(common::values(b * t * 3 * c, 10).as_slice(), &d).reshape([b, t, 3 * c]);
    let heads = |y: Tensor<3>| y.reshape([b, t, h, hd]).swap_dims(1, 2);
    let (q, k) = (heads(qkv.clone().narrow(2, 0, c)), heads(qkv.clone().narrow(2, c, c)));
    let (qd, kd) = (heads(dense(&qkv.clone().narrow(2, 0, c))), heads(dense(&qkv.narrow(2, c, c))));
    same(q.matmul(k.swap_dims(2, 3)).into_data().try_to_vec::<f32>().unwrap(), qd.matmul(kd.swap_dims(2, 3)).into_data().try_to_vec::<f32>().unwrap(), "scores");
}

/// clamp (ReLU6 in the EfficientNet-Lite teachers) is two selects over a loop the compiler
/// vectorises: bit for bit `f32::clamp` on every value, signed zeros and NaN included; a NaN bound
/// gives NaN everywhere.
#[test]
fn clamp_is_the_std_clamp_bit_for_bit() {
    let d = Device::flex();
    let mut xs: Vec<f32> = common::values(37, 9).iter().map(|v| v * 10.0).collect();
    xs.extend([0.0, -0.0, 6.0, -6.0, f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e-40, -1e-40]);
    for (lo, hi) in [(0.0f32, 6.0f32), (-0.0, 0.0), (-1.5, 2.5), (3.0, 3.0)] {
        let got: Vec<f32> = Tensor::<1>::from_floats(xs.as_slice(), &d).clamp(lo, hi).into_data().try_into_vec().unwrap();
        for (x, y) in xs.iter().zip(&got) {
            assert_eq!(y.to_bits(), x.clamp(lo, hi).to_bits(), "clamp({x}, {lo}, {hi}) gave {y}");
        }
    }
    let nan: Vec<f32> = Tensor::<1>::from_floats(xs.as_slice(), &d).clamp(f32::NAN, 6.0).into_data().try_into_vec().unwrap();
    assert!(nan.iter().all(|y| y.is_nan()));
}
