//! The vendored burn-flex (`vendor/burn-flex`) runs a stride-1 single-group f32 convolution (a pixel
//! decoder's layers) directly, with no column matrix (`conv_direct.rs`); strided single-group layers
//! from im2col rows built straight from NCHW (maps of 256 pixels or more a tile of output rows at a
//! time, smaller ones batched into one GEMM); other small inputs as one NHWC im2col matrix for the
//! batch; larger inputs keep burn's tiled path. All must give the convolution: checked here against a
//! direct f64 sum, on shapes that take each path (stride, padding, kernels wider than the map, bias,
//! groups), with f32 tolerance.
use burn::prelude::*;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;

mod common;
use common::values;

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
fn grouped_layers_keep_the_nhwc_path_and_large_inputs_go_in_tiles() {
    check(Case { batch: 2, c_in: 6, c_out: 4, h: 10, w: 10, k: 3, stride: 1, pad: 1, groups: 2, bias: true, sample: None });
    check(Case { batch: 2, c_in: 6, c_out: 4, h: 11, w: 10, k: 4, stride: 2, pad: 1, groups: 2, bias: true, sample: None });
    // 5 x 4096 positions x 576 columns = 11.8M elements, over the batched path's budget (8M): the
    // row path, one tile of output rows at a time
    check(Case { batch: 5, c_in: 64, c_out: 8, h: 64, w: 64, k: 3, stride: 1, pad: 1, groups: 1, bias: true, sample: Some(400) });
}

#[test]
fn stride_one_tiles_and_borders() {
    // 20 x 24 maps: one partial chunk of pixels per row, a partial block of 5 channels
    check(Case { batch: 3, c_in: 6, c_out: 5, h: 20, w: 24, k: 3, stride: 1, pad: 1, groups: 1, bias: true, sample: None });
    // rows of many chunks, no padding
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
    // a large batch: images in parallel, each with its own padded copy
    check(Case { batch: 40, c_in: 64, c_out: 8, h: 16, w: 20, k: 3, stride: 1, pad: 1, groups: 1, bias: true, sample: Some(2000) });
}

#[test]
fn strided_layers_on_the_row_path() {
    // an encoder's 4x4 / 2 downsampling: 8x8 outputs (every image in one GEMM), 24x20 (tiles)
    check(Case { batch: 3, c_in: 5, c_out: 4, h: 16, w: 16, k: 4, stride: 2, pad: 1, groups: 1, bias: true, sample: None });
    check(Case { batch: 2, c_in: 3, c_out: 6, h: 48, w: 40, k: 4, stride: 2, pad: 1, groups: 1, bias: true, sample: None });
    // no padding, odd map: the last input row and column are never read
    check(Case { batch: 2, c_in: 4, c_out: 3, h: 11, w: 10, k: 3, stride: 2, pad: 0, groups: 1, bias: false, sample: None });
    // stride 3, 5x5, padding 2; a patch embedding (kernel = stride, no padding)
    check(Case { batch: 2, c_in: 3, c_out: 5, h: 13, w: 11, k: 5, stride: 3, pad: 2, groups: 1, bias: true, sample: None });
    check(Case { batch: 2, c_in: 3, c_out: 8, h: 32, w: 32, k: 4, stride: 4, pad: 0, groups: 1, bias: true, sample: None });
}

/// Stride-1 single-group f32 layers run the direct kernel (no column matrix); each vector width this
/// CPU runs is checked here against an f64 sum (the portable kernel is the wasm build's), on shapes
/// with partial channel blocks (1, 3, 5, 9, 13 outputs), partial pixel chunks (widths 5 to 70),
/// 1x1 to 5x5 kernels and paddings 0 to 2.
#[test]
fn direct_kernel_at_every_width() {
    use burn_flex::ops::activation::Width;
    use burn_flex::ops::conv_direct::conv2d_at;
    let shapes = [(2, 3, 1, 7, 5, 3, 1), (1, 5, 3, 16, 16, 3, 1), (2, 4, 13, 9, 17, 3, 0), (1, 6, 5, 12, 33, 5, 2), (1, 3, 8, 4, 70, 1, 0), (3, 2, 9, 8, 8, 3, 1), (1, 64, 32, 32, 32, 3, 1)];
    let widths = Width::available();
    for &(b, ci, co, h, w, k, pad) in &shapes {
        let (x, wt, bias) = (values(b * ci * h * w, 1), values(co * ci * k * k, 2), values(co, 3));
        let (oh, ow) = (h + 2 * pad + 1 - k, w + 2 * pad + 1 - k);
        for &width in &widths {
            let got = conv2d_at(width, &x, &wt, Some(&bias), [b, ci, h, w], [co, k, k], [pad, pad]);
            assert_eq!(got.len(), b * co * oh * ow);
            let mut worst = 0.0f64;
            for (i, &g) in got.iter().enumerate() {
                let (bi, o, y, xo) = (i / (co * oh * ow), i / (oh * ow) % co, i / ow % oh, i % ow);
                let mut want = bias[o] as f64;
                for c in 0..ci {
                    for ky in 0..k {
                        for kx in 0..k {
                            let (iy, ix) = ((y + ky) as isize - pad as isize, (xo + kx) as isize - pad as isize);
                            if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                want += wt[((o * ci + c) * k + ky) * k + kx] as f64 * x[((bi * ci + c) * h + iy as usize) * w + ix as usize] as f64;
                            }
                        }
                    }
                }
                worst = worst.max((g as f64 - want).abs());
            }
            assert!(worst < 1e-4, "{width:?} {:?}: differs from the f64 sum by {worst:e}", (b, ci, co, h, w, k, pad));
        }
    }
    // no input channels: every output is its bias, no panic
    for width in widths {
        let got = conv2d_at(width, &[], &[], Some(&[0.5, -2.0]), [2, 0, 3, 4], [2, 3, 3], [1, 1]);
        assert_eq!(got, [[0.5; 12], [-2.0; 12], [0.5; 12], [-2.0; 12]].concat(), "{width:?}");
    }
}

/// Both gradients of a convolution through autodiff against direct f64 sums. Stride-1, single-group
/// layers take flex's fast paths (the weight gradient: one GEMM per image and tile against the
/// forward pass's im2col rows; the input gradient: a transposed convolution run as the stride-1
/// convolution with the flipped kernel). Strided layers take the same weight-gradient path (rows that
/// gather every stride-th column) and burn's default input gradient; grouped layers burn's default.
fn check_gradients(b: usize, ci: usize, co: usize, (h, w): (usize, usize), k: usize, pad: usize, stride: usize, groups: usize) {
    let d = Device::flex().autodiff();
    let (cg, og) = (ci / groups, co / groups);
    let (oh, ow) = ((h + 2 * pad - k) / stride + 1, (w + 2 * pad - k) / stride + 1);
    let x = values(b * ci * h * w, 4);
    let wt = values(co * cg * k * k, 5);
    let r = values(b * co * oh * ow, 6); // d loss / d output
    let x_t = Tensor::<1>::from_floats(x.as_slice(), &d).reshape([b, ci, h, w]).require_grad();
    let wt_t = Tensor::<1>::from_floats(wt.as_slice(), &d).reshape([co, cg, k, k]).require_grad();
    let out = conv2d(x_t.clone(), wt_t.clone(), None, ConvOptions::new([stride, stride], [pad, pad], [1, 1], groups));
    assert_eq!(out.dims(), [b, co, oh, ow]);
    let loss = (out * Tensor::<1>::from_floats(r.as_slice(), &d).reshape([b, co, oh, ow])).sum();
    let grads = loss.backward();
    let got_w: Vec<f32> = wt_t.grad(&grads).unwrap().into_data().try_into_vec().unwrap();
    let got_x: Vec<f32> = x_t.grad(&grads).unwrap().into_data().try_into_vec().unwrap();
    let mut want_w = vec![0.0f64; got_w.len()];
    let mut want_x = vec![0.0f64; got_x.len()];
    for bi in 0..b {
        for o in 0..co {
            let g = o / og;
            for c in 0..cg {
                let cx = g * cg + c; // the input channel this weight reads
                for ky in 0..k {
                    for kx in 0..k {
                        let wi = ((o * cg + c) * k + ky) * k + kx;
                        for y in 0..oh {
                            for xo in 0..ow {
                                let (iy, ix) = ((y * stride + ky) as isize - pad as isize, (xo * stride + kx) as isize - pad as isize);
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                    continue;
                                }
                                let xi = ((bi * ci + cx) * h + iy as usize) * w + ix as usize;
                                let rv = r[((bi * co + o) * oh + y) * ow + xo] as f64;
                                want_w[wi] += x[xi] as f64 * rv;
                                want_x[xi] += wt[wi] as f64 * rv;
                            }
                        }
                    }
                }
            }
        }
    }
    let worst = |got: &[f32], want: &[f64]| got.iter().zip(want).map(|(&g, &w)| (g as f64 - w).abs()).fold(0.0f64, f64::max);
    let case = format!("batch {b}, {ci} -> {co} channels, {h}x{w}, k {k}, pad {pad}, stride {stride}, groups {groups}");
    let (ew, ex) = (worst(&got_w, &want_w), worst(&got_x, &want_x));
    assert!(ew < 1e-4 * (b * oh * ow) as f64 / 100.0 + 1e-4, "{case}: weight gradient differs from the direct sum by {ew:e}");
    assert!(ex < 1e-4, "{case}: input gradient differs from the direct sum by {ex:e}");
}

#[test]
fn gradients_through_the_fast_paths() {
    check_gradients(3, 4, 5, (12, 10), 3, 1, 1, 1);
    check_gradients(2, 3, 6, (20, 16), 3, 1, 1, 1); // 320 output pixels: the weight gradient in tiles
    check_gradients(2, 2, 3, (9, 7), 5, 2, 1, 1); // 5x5 "same"
    check_gradients(2, 3, 2, (6, 6), 3, 0, 1, 1); // "valid" (no padding)
    check_gradients(1, 2, 3, (4, 5), 1, 0, 1, 1); // 1x1
}

#[test]
fn gradients_of_strided_and_grouped_layers() {
    check_gradients(2, 4, 6, (11, 9), 3, 1, 2, 1); // stride 2, odd map
    check_gradients(2, 3, 4, (16, 16), 4, 1, 2, 1); // the tokenizers' 4x4 / 2 downsampling
    check_gradients(2, 3, 4, (40, 36), 4, 1, 2, 1); // 20x18 = 360 output pixels: in tiles
    check_gradients(2, 2, 3, (10, 10), 3, 0, 2, 1); // no padding: the last input row and column unused
    check_gradients(1, 2, 3, (13, 11), 5, 2, 3, 1); // stride 3, 5x5
    check_gradients(2, 4, 6, (8, 8), 3, 1, 1, 2); // two groups
}
