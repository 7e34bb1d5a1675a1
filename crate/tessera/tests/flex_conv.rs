//! The vendored burn-flex (`vendor/burn-flex`) runs a stride-1 convolution over a small batch of
//! small maps (a pixel decoder's) from im2col rows built straight from NCHW (maps of 256 pixels or
//! more a tile of output rows at a time, smaller ones batched into one GEMM), other small inputs as
//! one NHWC im2col matrix for the batch; larger inputs keep burn's tiled path. All must give the
//! convolution: checked here against a direct f64 sum, on shapes that take each path (stride,
//! padding, kernels wider than the map, bias, groups), with f32 tolerance.
use burn::prelude::*;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;

/// Deterministic values in [-1, 1) (no RNG crate needed for a fixture).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

struct Case {
    batch: usize,
    c_in: usize,
    c_out: usize,
    h: usize,
    w: usize,
    k: usize,
    stride: usize,
    pad: usize,
    groups: usize,
    bias: bool,
    /// output positions checked against the direct sum (None: every one)
    sample: Option<usize>,
}

fn check(c: Case) {
    let d = Device::flex();
    let cg = c.c_in / c.groups;
    let x = values(c.batch * c.c_in * c.h * c.w, 1);
    let wt = values(c.c_out * cg * c.k * c.k, 2);
    let b = values(c.c_out, 3);
    let out = conv2d(
        Tensor::<1>::from_floats(x.as_slice(), &d).reshape([c.batch, c.c_in, c.h, c.w]),
        Tensor::<1>::from_floats(wt.as_slice(), &d).reshape([c.c_out, cg, c.k, c.k]),
        c.bias.then(|| Tensor::<1>::from_floats(b.as_slice(), &d)),
        ConvOptions::new([c.stride; 2], [c.pad; 2], [1, 1], c.groups),
    );
    let [ob, oc, oh, ow] = out.dims();
    let (eh, ew) = ((c.h + 2 * c.pad - c.k) / c.stride + 1, (c.w + 2 * c.pad - c.k) / c.stride + 1);
    assert_eq!([ob, oc, oh, ow], [c.batch, c.c_out, eh, ew]);
    let got = out.into_data().try_into_vec::<f32>().unwrap();
    let total = got.len();
    let picks: Vec<usize> = match c.sample {
        None => (0..total).collect(),
        Some(n) => (0..n).map(|i| (i * 7919 + 13) % total).collect(),
    };
    let mut worst = 0.0f64;
    for i in picks {
        let (bi, rest) = (i / (oc * oh * ow), i % (oc * oh * ow));
        let (o, rest) = (rest / (oh * ow), rest % (oh * ow));
        let (y, xo) = (rest / ow, rest % ow);
        let g = o / (c.c_out / c.groups);
        let mut want = if c.bias { b[o] as f64 } else { 0.0 };
        for ci in 0..cg {
            let cin = g * cg + ci;
            for ky in 0..c.k {
                for kx in 0..c.k {
                    let (iy, ix) = ((y * c.stride + ky) as isize - c.pad as isize, (xo * c.stride + kx) as isize - c.pad as isize);
                    if iy < 0 || ix < 0 || iy >= c.h as isize || ix >= c.w as isize {
                        continue;
                    }
                    let xv = x[((bi * c.c_in + cin) * c.h + iy as usize) * c.w + ix as usize] as f64;
                    want += wt[((o * cg + ci) * c.k + ky) * c.k + kx] as f64 * xv;
                }
            }
        }
        worst = worst.max((got[i] as f64 - want).abs());
    }
    // sums of up to 576 products of values in [-1, 1): f32 rounding stays far below this
    assert!(worst < 1e-4, "conv differs from the direct sum by {worst:e}");
}

#[test]
fn batched_path_small_maps() {
    // 3 x 5 x 9 x 11, 3x3, padding 1, bias: one GEMM for the batch
    check(Case { batch: 3, c_in: 5, c_out: 7, h: 9, w: 11, k: 3, stride: 1, pad: 1, groups: 1, bias: true, sample: None });
    // strided, unpadded, no bias (a downsampling conv)
    check(Case { batch: 2, c_in: 4, c_out: 6, h: 16, w: 12, k: 4, stride: 2, pad: 0, groups: 1, bias: false, sample: None });
    // one image: the GEMM's [c_out, spatial] is the output as it is
    check(Case { batch: 1, c_in: 8, c_out: 5, h: 8, w: 8, k: 3, stride: 1, pad: 1, groups: 1, bias: true, sample: None });
    // 1x1 (a pixel decoder's projection)
    check(Case { batch: 8, c_in: 16, c_out: 3, h: 32, w: 32, k: 1, stride: 1, pad: 0, groups: 1, bias: true, sample: None });
}

#[test]
fn grouped_and_large_inputs_keep_the_tiled_path() {
    check(Case { batch: 2, c_in: 6, c_out: 4, h: 10, w: 10, k: 3, stride: 1, pad: 1, groups: 2, bias: true, sample: None });
    // 5 x 4096 positions x 576 columns = 11.8M elements, over the batched path's budget (8M)
    check(Case { batch: 5, c_in: 64, c_out: 8, h: 64, w: 64, k: 3, stride: 1, pad: 1, groups: 1, bias: true, sample: Some(400) });
}

#[test]
fn row_path_tiles_and_borders() {
    // 20 x 24 maps = 480 pixels: tiles of 10 output rows, the GEMM writing into the NCHW output
    check(Case { batch: 3, c_in: 6, c_out: 5, h: 20, w: 24, k: 3, stride: 1, pad: 1, groups: 1, bias: true, sample: None });
    // one row per tile (rows wider than the tile), no padding
    check(Case { batch: 2, c_in: 5, c_out: 3, h: 3, w: 300, k: 3, stride: 1, pad: 0, groups: 1, bias: false, sample: None });
    // a 5x5 kernel with less padding than "same": output smaller than the map
    check(Case { batch: 2, c_in: 7, c_out: 4, h: 9, w: 10, k: 5, stride: 1, pad: 1, groups: 1, bias: true, sample: None });
    // more padding than the kernel reaches: whole output rows and columns of zeros (bias only)
    check(Case { batch: 2, c_in: 5, c_out: 6, h: 6, w: 7, k: 3, stride: 1, pad: 3, groups: 1, bias: true, sample: None });
    // a kernel wider than the map
    check(Case { batch: 4, c_in: 8, c_out: 3, h: 2, w: 2, k: 3, stride: 1, pad: 1, groups: 1, bias: false, sample: None });
    // the pixel decoder's layers at batch 8: 64 -> 32 channels at 32x32, 32 -> 3 at the output
    check(Case { batch: 8, c_in: 64, c_out: 32, h: 32, w: 32, k: 3, stride: 1, pad: 1, groups: 1, bias: true, sample: Some(2000) });
    check(Case { batch: 8, c_in: 32, c_out: 3, h: 32, w: 32, k: 3, stride: 1, pad: 1, groups: 1, bias: true, sample: Some(2000) });
}

/// The weight gradient of a convolution is itself a stride-1 convolution (input and output
/// gradient with batch and channels swapped; its "kernel" is the output map), which the row path
/// takes for small batches: checked through autodiff against the direct f64 sum.
#[test]
fn weight_gradient_through_the_row_path() {
    let d = Device::flex().autodiff();
    let (b, ci, co, h, w, k, pad) = (3, 4, 5, 12, 10, 3, 1);
    let x = values(b * ci * h * w, 4);
    let wt = values(co * ci * k * k, 5);
    let r = values(b * co * h * w, 6); // d loss / d output
    let wt_t = Tensor::<1>::from_floats(wt.as_slice(), &d).reshape([co, ci, k, k]).require_grad();
    let out = conv2d(
        Tensor::<1>::from_floats(x.as_slice(), &d).reshape([b, ci, h, w]),
        wt_t.clone(),
        None,
        ConvOptions::new([1, 1], [pad, pad], [1, 1], 1),
    );
    let loss = (out * Tensor::<1>::from_floats(r.as_slice(), &d).reshape([b, co, h, w])).sum();
    let grads = loss.backward();
    let got: Vec<f32> = wt_t.grad(&grads).unwrap().into_data().try_into_vec().unwrap();
    let mut worst = 0.0f64;
    for o in 0..co {
        for c in 0..ci {
            for ky in 0..k {
                for kx in 0..k {
                    let mut want = 0.0f64;
                    for bi in 0..b {
                        for y in 0..h {
                            for xo in 0..w {
                                let (iy, ix) = ((y + ky) as isize - pad as isize, (xo + kx) as isize - pad as isize);
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                    continue;
                                }
                                want += x[((bi * ci + c) * h + iy as usize) * w + ix as usize] as f64 * r[((bi * co + o) * h + y) * w + xo] as f64;
                            }
                        }
                    }
                    worst = worst.max((got[((o * ci + c) * k + ky) * k + kx] as f64 - want).abs());
                }
            }
        }
    }
    assert!(worst < 1e-4, "weight gradient differs from the direct sum by {worst:e}");
}
