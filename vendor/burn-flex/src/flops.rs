//! A count of the floating-point operations the GEMMs run (Tessera's addition, see vendor/README.md).
//!
//! Every matrix product of this backend, including the im2col products of the convolutions and the
//! blocks of attention, goes through `gemm`: this wrapper adds 2·m·n·k to one relaxed atomic counter
//! and forwards the call unchanged (same arguments, same results). The two convolution paths that do
//! not use `gemm` (depthwise, and few input/output channels) add their 2·multiply-adds themselves. Training throughput in achieved
//! GFLOP/s is `flops()` before and after a step over the step's time; element-wise work (activations,
//! norms, softmax) is not counted, as MFU-style figures do not count it.
use core::sync::atomic::{AtomicU64, Ordering};

static GEMM_FLOPS: AtomicU64 = AtomicU64::new(0);

/// Floating-point operations (2·m·n·k per product) of every GEMM run by this process so far.
pub fn flops() -> u64 {
    GEMM_FLOPS.load(Ordering::Relaxed)
}

/// Adds `n` operations: the convolution paths that do not call `gemm` (depthwise, few channels)
/// count their multiply-adds (2 per tap) themselves.
#[inline]
pub(crate) fn add(n: u64) {
    GEMM_FLOPS.fetch_add(n, Ordering::Relaxed);
}

/// `gemm::gemm`, counted.
///
/// # Safety
/// The same contract as `gemm::gemm`.
#[inline]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm<T: 'static>(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut T,
    dst_cs: isize,
    dst_rs: isize,
    read_dst: bool,
    lhs: *const T,
    lhs_cs: isize,
    lhs_rs: isize,
    rhs: *const T,
    rhs_cs: isize,
    rhs_rs: isize,
    alpha: T,
    beta: T,
    conj_dst: bool,
    conj_lhs: bool,
    conj_rhs: bool,
    parallelism: gemm::Parallelism,
) {
    GEMM_FLOPS.fetch_add(2 * (m as u64) * (n as u64) * (k as u64), Ordering::Relaxed);
    // wasm: f32 products (dst = A·B, or dst += A·B) through the kernel built for simd128's register
    // file (crate::gemm_v128); what it does not cover (other types, scalings, conjugates, few rows
    // against a transposed B: `gemm_v128::suits`) stays here
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    if core::any::TypeId::of::<T>() == core::any::TypeId::of::<f32>() && !conj_lhs && !conj_rhs && !conj_dst {
        // SAFETY: T is f32 (checked above)
        let (alpha, beta) = unsafe { (*(&alpha as *const T as *const f32), *(&beta as *const T as *const f32)) };
        if beta == 1.0 && (!read_dst || alpha == 1.0) && crate::gemm_v128::suits(m, rhs_cs) {
            let parallel = !matches!(parallelism, gemm::Parallelism::None);
            unsafe {
                crate::gemm_v128::gemm(
                    m, n, k, dst as *mut f32, dst_cs, dst_rs, read_dst, lhs as *const f32, lhs_cs, lhs_rs,
                    rhs as *const f32, rhs_cs, rhs_rs, parallel,
                )
            };
            return;
        }
    }
    unsafe {
        gemm::gemm(
            m, n, k, dst, dst_cs, dst_rs, read_dst, lhs, lhs_cs, lhs_rs, rhs, rhs_cs, rhs_rs, alpha, beta, conj_dst, conj_lhs,
            conj_rhs, parallelism,
        )
    }
}
