//! The GEMM FLOP counter of the vendored burn-flex (`burn_flex::flops`, behind the training stages'
//! achieved GFLOP/s in `scripts/bench-train.sh`) counts 2·m·n·k per matrix product: a matmul and the
//! im2col product of a convolution add exactly that, whatever path or tiling runs them. One test in
//! its own binary, so no other test's products run while it reads the process-wide counter.
#![cfg(target_arch = "x86_64")]
use burn::prelude::*;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;

fn counted(f: impl FnOnce()) -> u64 {
    let before = burn_flex::flops::flops();
    f();
    burn_flex::flops::flops() - before
}

#[test]
fn matmul_and_convolution_flops_are_counted_exactly() {
    let d = Device::flex();
    let a: Tensor<2> = Tensor::ones([3, 5], &d);
    let b: Tensor<2> = Tensor::ones([5, 7], &d);
    let n = counted(|| {
        let c = a.clone().matmul(b.clone());
        assert_eq!(c.into_data().try_to_vec::<f32>().unwrap(), vec![5.0; 21]);
    });
    assert_eq!(n, 2 * 3 * 7 * 5, "matmul [3,5]x[5,7]");
    // a batch of 4 products [6,8]x[8,2]
    let a: Tensor<3> = Tensor::ones([4, 6, 8], &d);
    let b: Tensor<3> = Tensor::ones([4, 8, 2], &d);
    assert_eq!(counted(|| drop(a.matmul(b).into_data())), 4 * 2 * 6 * 2 * 8, "batched matmul");
    // conv c_in -> 4 channels, 3x3, padding 1: per image c_out x positions x (c_in·9), taps over the
    // padding included (f32 stride-1 layers: the direct kernel, which counts them itself)
    for (batch, c_in, side) in [(2usize, 2usize, 6usize), (2, 64, 128)] {
        let x: Tensor<4> = Tensor::ones([batch, c_in, side, side], &d);
        let w: Tensor<4> = Tensor::ones([4, c_in, 3, 3], &d);
        let n = counted(|| drop(conv2d(x, w, None, ConvOptions::new([1, 1], [1, 1], [1, 1], 1)).into_data()));
        assert_eq!(n, (2 * 4 * side * side * c_in * 9 * batch) as u64, "conv2d batch {batch}, {c_in} channels of {side}x{side}");
    }
}
