//! An f32 GEMM for 128-bit SIMD with few registers: wasm's simd128 (Tessera's addition, see
//! vendor/README.md). In the wasm build `flops::gemm` routes here every f32 product `dst = A·B` or
//! `dst += A·B` that [`suits`] this kernel; the rest (other types, scalings, conjugates, fewer than
//! 16 rows against a transposed B) stays with the `gemm` crate.
//!
//! Why: `gemm`'s simd128 kernel keeps 12 rows x 4 columns in 12 accumulators, plus 3 vectors of
//! the left operand and a broadcast: 16 vector registers, all that V8 gives wasm on x86-64, one of
//! which it keeps as scratch, so the kernel spills. Measured in Node (V8), one thread, the NAR
//! network's products (1040 x 128 x 384 ... 1040 x 512 x 128, 65 x 128 x 384): `gemm` 29-37
//! GFLOP/s, this kernel (4 rows x 8 columns: 8 accumulators, 2 vectors of B, one broadcast) 41-53.
//!
//! B is read in place where its columns are contiguous and the product has under 256 rows, else
//! packed into panels of 8 columns (`[panel][k][8]`, zero-padded); a partial last panel is always
//! packed. Each block of 4 rows x 8 columns sums over `k` in order, multiply then add (no FMA: wasm
//! has none without relaxed SIMD), so a scalar build of the same code gives the same bits
//! (`gemm_at`, tests). The sum in `k` order with `acc = 0 + a0*b0 + ...` is also what `gemm`'s
//! kernel computes when the whole `k` fits one of its blocks, as it does for every product of the
//! shipped networks.

/// Rows of C per block.
const MR: usize = 4;
/// Columns of C per block (two 4-lane vectors).
const NR: usize = 8;

/// A raw pointer that rayon's tasks may share: each task writes disjoint rows of C and only reads
/// A and B.
#[derive(Clone, Copy)]
struct Ptr<P>(P);
unsafe impl<P> Send for Ptr<P> {}
unsafe impl<P> Sync for Ptr<P> {}

impl<P: Copy> Ptr<P> {
    /// The pointer (a method, so that closures capture the whole wrapper, not its field).
    fn get(self) -> P {
        self.0
    }
}

/// `C = A·B`, or `C += A·B` with `read_dst`: `A` is `m x k`, `B` `k x n`, `C` `m x n`, each with
/// its own row and column strides (in elements). With `parallel` and the `rayon` feature, blocks
/// of rows run in parallel.
///
/// # Safety
/// Every element the strides address (`m x k` of `lhs`, `k x n` of `rhs`, `m x n` of `dst`) must
/// be valid, and `dst`'s elements distinct from each other and from the operands'.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_cs: isize,
    dst_rs: isize,
    read_dst: bool,
    lhs: *const f32,
    lhs_cs: isize,
    lhs_rs: isize,
    rhs: *const f32,
    rhs_cs: isize,
    rhs_rs: isize,
    parallel: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    let panels = n.div_ceil(NR);
    // B in panels of NR columns, [panel][k][NR] (the last panel's missing columns 0), where its
    // columns are not contiguous; else full panels are read in place and only a partial last
    // panel is copied
    let direct = rhs_cs == 1 && !packs(m);
    let packed_from = if direct { n / NR } else { 0 };
    let mut bp = alloc::vec![0.0f32; (panels - packed_from) * k * NR];
    for p in packed_from..panels {
        let cols = NR.min(n - p * NR);
        for kk in 0..k {
            let row = &mut bp[((p - packed_from) * k + kk) * NR..][..cols];
            for (j, v) in row.iter_mut().enumerate() {
                *v = unsafe { *rhs.offset(kk as isize * rhs_rs + (p * NR + j) as isize * rhs_cs) };
            }
        }
    }
    let (dst, lhs, rhs) = (Ptr(dst), Ptr(lhs), Ptr(rhs));
    let row_blocks = m.div_ceil(MR);
    let run = |blocks: core::ops::Range<usize>| {
        let (dst, lhs, rhs) = (dst.get(), lhs.get(), rhs.get());
        for rb in blocks {
            let r0 = rb * MR;
            let rows = MR.min(m - r0);
            let a = unsafe { lhs.offset(r0 as isize * lhs_rs) };
            for p in 0..panels {
                // SAFETY: a full panel read in place lies inside B's k x n; a packed one inside bp
                let (b, b_rs) = if p < packed_from {
                    (unsafe { rhs.add(p * NR) }, rhs_rs)
                } else {
                    (bp[(p - packed_from) * k * NR..].as_ptr(), NR as isize)
                };
                let acc = unsafe {
                    match rows {
                        4 => block::<4>(a, lhs_rs, lhs_cs, b, b_rs, k),
                        3 => pad(block::<3>(a, lhs_rs, lhs_cs, b, b_rs, k)),
                        2 => pad(block::<2>(a, lhs_rs, lhs_cs, b, b_rs, k)),
                        _ => pad(block::<1>(a, lhs_rs, lhs_cs, b, b_rs, k)),
                    }
                };
                let cols = NR.min(n - p * NR);
                for (r, acc) in acc.iter().enumerate().take(rows) {
                    let c = unsafe { dst.offset((r0 + r) as isize * dst_rs + (p * NR) as isize * dst_cs) };
                    for (j, &v) in acc.iter().enumerate().take(cols) {
                        // SAFETY: row r0 + r < m, column p * NR + j < n (the caller's contract)
                        unsafe {
                            let o = c.offset(j as isize * dst_cs);
                            *o = if read_dst { *o + v } else { v };
                        }
                    }
                }
            }
        }
    };
    // 16 blocks of rows (64 rows) per task: the NAR's 1,040-row products split 17 ways
    #[cfg(feature = "rayon")]
    if parallel && row_blocks > 16 {
        use rayon::prelude::*;
        (0..row_blocks.div_ceil(16)).into_par_iter().for_each(|t| run(t * 16..row_blocks.min(t * 16 + 16)));
        return;
    }
    let _ = parallel;
    run(0..row_blocks)
}

/// Whether B (contiguous columns) is packed for `m` rows. Measured in V8 (one thread): read in
/// place, B's rows are only strided and 16-row products run at ~48 GFLOP/s against ~28 packed (the
/// copy of k x n costs as much as ~16 rows of the product); at 1,040 rows packing gains 0-10%.
#[inline]
fn packs(m: usize) -> bool {
    m >= 256
}

/// Whether this kernel suits a product of `m` rows whose B has column stride `rhs_cs`: B's columns
/// contiguous (read in place), or enough rows to amortise packing a transposed B (a row of
/// attention scores against transposed keys, m = 1, stays with the `gemm` crate's kernels, which
/// give the same sums where k fits one of their blocks).
#[inline]
pub fn suits(m: usize, rhs_cs: isize) -> bool {
    rhs_cs == 1 || m >= 16
}

/// The first `R` rows of a full block.
#[inline(always)]
fn pad<const R: usize>(acc: [[f32; NR]; R]) -> [[f32; NR]; MR] {
    let mut out = [[0.0; NR]; MR];
    out[..R].copy_from_slice(&acc);
    out
}

/// `R` rows of A (from `a`) times one panel of B (`k` rows of `NR` floats, `b_rs` apart): the block of C, summed over
/// `k` in order, multiply then add.
///
/// # Safety
/// `a` must address `R x k` elements through the strides, `b` `k` rows of `NR`.
#[inline(always)]
unsafe fn block<const R: usize>(a: *const f32, a_rs: isize, a_cs: isize, b: *const f32, b_rs: isize, k: usize) -> [[f32; NR]; R] {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        use core::arch::wasm32::*;
        let mut acc = [[f32x4_splat(0.0); 2]; R];
        for kk in 0..k {
            // SAFETY: row kk of the panel holds NR = 8 floats
            let bk = unsafe { b.offset(kk as isize * b_rs) };
            let bv = unsafe { [v128_load(bk as *const v128), v128_load(bk.add(4) as *const v128)] };
            for (r, acc) in acc.iter_mut().enumerate() {
                let s = f32x4_splat(unsafe { *a.offset(r as isize * a_rs + kk as isize * a_cs) });
                acc[0] = f32x4_add(acc[0], f32x4_mul(s, bv[0]));
                acc[1] = f32x4_add(acc[1], f32x4_mul(s, bv[1]));
            }
        }
        let mut out = [[0.0f32; NR]; R];
        for (o, a) in out.iter_mut().zip(&acc) {
            unsafe {
                v128_store(o.as_mut_ptr() as *mut v128, a[0]);
                v128_store(o.as_mut_ptr().add(4) as *mut v128, a[1]);
            }
        }
        out
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    {
        let mut acc = [[0.0f32; NR]; R];
        for kk in 0..k {
            let bk = unsafe { core::slice::from_raw_parts(b.offset(kk as isize * b_rs), NR) };
            for (r, acc) in acc.iter_mut().enumerate() {
                let s = unsafe { *a.offset(r as isize * a_rs + kk as isize * a_cs) };
                for (acc, &bv) in acc.iter_mut().zip(bk) {
                    *acc += s * bv;
                }
            }
        }
        acc
    }
}

/// `gemm` on slices, for tests (the scalar build of the kernel natively, simd128 in wasm): `A`
/// `m x k` and `B` `k x n` through the given (row, column) strides, C row-major `m x n`.
#[doc(hidden)]
pub fn gemm_at(a: &[f32], (a_rs, a_cs): (usize, usize), b: &[f32], (b_rs, b_cs): (usize, usize), (m, k, n): (usize, usize, usize), c: &mut [f32], accumulate: bool, parallel: bool) {
    let reach = |rs: usize, cs: usize, r: usize, c: usize| if r == 0 || c == 0 { 0 } else { (r - 1) * rs + (c - 1) * cs + 1 };
    assert!(a.len() >= reach(a_rs, a_cs, m, k) && b.len() >= reach(b_rs, b_cs, k, n) && c.len() >= m * n, "gemm_at: operands too small");
    // SAFETY: the operands reach every strided element (checked above); C is row-major m x n
    unsafe {
        gemm(m, n, k, c.as_mut_ptr(), 1, n as isize, accumulate, a.as_ptr(), a_cs as isize, a_rs as isize, b.as_ptr(), b_cs as isize, b_rs as isize, parallel)
    }
}
