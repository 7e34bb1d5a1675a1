//! Direct 2D convolution for single-group, stride-1 f32 layers (Tessera's addition; see
//! vendor/README.md): a pixel decoder's 3x3 "same" layers and its upsampling stages.
//!
//! The im2col route copies every input pixel `k_h * k_w` times into a column matrix before the
//! GEMM (a 3x3 layer: 9 copies; with gemm's packing, ~37% of a Fashion-MNIST decode). Here the
//! input is copied once, zero-padded so that every tap's read is in bounds, and a register-blocked
//! kernel keeps `CB` output channels x `L` output pixels of one row in accumulators while it runs
//! over `(ci, kh, kw)`: each input vector loaded is used `CB` times, each weight `L` times.
//!
//! Every output is summed in the same order, `(ci, kh, kw)`, then its bias added, at every vector
//! width. x86-64 builds with FMA fuse each multiply-add (one rounding), portable builds (wasm's
//! simd128, SSE2) round twice: the results agree to float rounding, as gemm's did before.
use alloc::vec;
use alloc::vec::Vec;

use super::activation::Width;

/// The shapes of one convolution (stride 1, dilation 1, one group), NCHW.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DirectConv {
    pub batch: usize,
    pub c_in: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub c_out: usize,
    pub k_h: usize,
    pub k_w: usize,
    pub pad_h: usize,
    pub pad_w: usize,
    pub out_h: usize,
    pub out_w: usize,
}

impl DirectConv {
    /// `x`: `[batch, c_in, in_h, in_w]`, `w`: `[c_out, c_in, k_h, k_w]`, `bias`: `[c_out]`;
    /// returns `[batch, c_out, out_h, out_w]`. Images and blocks of output channels run in
    /// parallel (rayon) where the build has it.
    pub fn run(&self, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
        self.run_on(Kernel::best(), x, w, bias)
    }

    fn run_on(&self, kernel: Kernel, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
        let s = *self;
        assert!(x.len() >= s.batch * s.c_in * s.in_h * s.in_w && w.len() >= s.c_out * s.c_in * s.k_h * s.k_w, "conv_direct: operands too small");
        assert!(bias.is_none_or(|b| b.len() >= s.c_out), "conv_direct: bias too small");
        let spatial = s.out_h * s.out_w;
        let mut out = vec![0.0f32; s.batch * s.c_out * spatial];
        if out.is_empty() {
            return out;
        }
        if s.c_in == 0 || s.k_h == 0 || s.k_w == 0 {
            // no taps: every output is its bias (and the kernels' reach would underflow)
            for (c, plane) in out.chunks_mut(spatial).enumerate() {
                plane.fill(bias.map_or(0.0, |b| b[c % s.c_out]));
            }
            return out;
        }
        // the layer's multiply-adds, as the GEMM routes counted them (taps over the padding included)
        crate::flops::add(2 * (s.batch * s.c_out * spatial) as u64 * (s.c_in * s.k_h * s.k_w) as u64);
        let (cb, l) = kernel.block(s.c_out, s.out_w);
        // weights per block of `cb` channels, `[ci][kh][kw][cb]` (a missing channel of the last block: 0)
        let taps = s.c_in * s.k_h * s.k_w;
        let blocks = s.c_out.div_ceil(cb);
        let mut wp = vec![0.0f32; blocks * taps * cb];
        for co in 0..s.c_out {
            for t in 0..taps {
                wp[((co / cb) * taps + t) * cb + co % cb] = w[co * taps + t];
            }
        }
        // the padded input: every tap's read for a chunk of `l` output pixels lies inside its row
        let pad = Padded { w: s.out_w.div_ceil(l) * l + s.k_w - 1, h: s.out_h + s.k_h - 1 };
        let image = |b: usize, dst: &mut [f32]| {
            let xp = pad.image(&s, &x[b * s.c_in * s.in_h * s.in_w..][..s.c_in * s.in_h * s.in_w]);
            let per_block = |(blk, dst): (usize, &mut [f32])| {
                let co0 = blk * cb;
                let bias = bias.map(|b| &b[co0..co0 + (s.c_out - co0).min(cb)]);
                kernel.rows(&s, (cb, l), &pad, &xp, &wp[blk * taps * cb..][..taps * cb], bias, dst);
            };
            #[cfg(feature = "rayon")]
            {
                use rayon::prelude::*;
                dst.par_chunks_mut(cb * spatial).enumerate().for_each(per_block);
            }
            #[cfg(not(feature = "rayon"))]
            dst.chunks_mut(cb * spatial).enumerate().for_each(per_block);
        };
        #[cfg(feature = "rayon")]
        {
            use rayon::prelude::*;
            out.par_chunks_mut(s.c_out * spatial).enumerate().for_each(|(b, dst)| image(b, dst));
        }
        #[cfg(not(feature = "rayon"))]
        out.chunks_mut(s.c_out * spatial).enumerate().for_each(|(b, dst)| image(b, dst));
        out
    }
}

/// The convolution (stride 1, "same"-style symmetric padding) with the kernel of the given vector
/// width, for tests that compare them: `Baseline` is the portable one (wasm's), `Avx2` / `Avx512`
/// those with FMA where this CPU has it (else the portable one).
#[doc(hidden)]
pub fn conv2d_at(width: Width, x: &[f32], w: &[f32], bias: Option<&[f32]>, [batch, c_in, in_h, in_w]: [usize; 4], [c_out, k_h, k_w]: [usize; 3], [pad_h, pad_w]: [usize; 2]) -> Vec<f32> {
    let kernel = match width {
        #[cfg(all(feature = "std", target_arch = "x86_64"))]
        Width::Avx2 if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") => Kernel::Avx2Fma,
        #[cfg(all(feature = "std", target_arch = "x86_64"))]
        Width::Avx512 if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("fma") => Kernel::Avx512Fma,
        _ => Kernel::Portable,
    };
    let (out_h, out_w) = ((in_h + 2 * pad_h + 1).saturating_sub(k_h), (in_w + 2 * pad_w + 1).saturating_sub(k_w));
    DirectConv { batch, c_in, in_h, in_w, c_out, k_h, k_w, pad_h, pad_w, out_h, out_w }.run_on(kernel, x, w, bias)
}

/// The zero-padded copy of one image's input planes, `w` x `h` each.
#[derive(Clone, Copy)]
struct Padded {
    w: usize,
    h: usize,
}

impl Padded {
    fn plane(&self) -> usize {
        self.w * self.h
    }
    fn image(&self, s: &DirectConv, src: &[f32]) -> Vec<f32> {
        let mut xp = vec![0.0f32; s.c_in * self.plane()];
        // input columns land at pad_w.. (those past the padded row are never read)
        let n = s.in_w.min(self.w.saturating_sub(s.pad_w));
        for ci in 0..s.c_in {
            let src = &src[ci * s.in_h * s.in_w..][..s.in_h * s.in_w];
            let dst = &mut xp[ci * self.plane()..][..self.plane()];
            for py in 0..self.h {
                if let Some(iy) = py.checked_sub(s.pad_h).filter(|&iy| iy < s.in_h) {
                    dst[py * self.w + s.pad_w..][..n].copy_from_slice(&src[iy * s.in_w..][..n]);
                }
            }
        }
        xp
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kernel {
    /// Scalar, or wasm's simd128 where the build has it: multiply, then add.
    Portable,
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    Avx2Fma,
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    Avx512Fma,
}

impl Kernel {
    fn best() -> Kernel {
        #[cfg(all(feature = "std", target_arch = "x86_64"))]
        {
            if std::is_x86_feature_detected!("fma") {
                if std::is_x86_feature_detected!("avx512f") {
                    return Kernel::Avx512Fma;
                }
                if std::is_x86_feature_detected!("avx2") {
                    return Kernel::Avx2Fma;
                }
            }
        }
        Kernel::Portable
    }

    /// Output channels x pixels held in accumulators: AVX-512's 32 registers take 8 x 32 (16
    /// accumulators; 16 pixels for maps of 16 or fewer columns, 1 or 4 channels for layers with
    /// that few outputs: an image's last layer), AVX2's 16 take 4 x 16 (8), simd128's 4 x 8 (8).
    fn block(self, c_out: usize, out_w: usize) -> (usize, usize) {
        match self {
            #[cfg(all(feature = "std", target_arch = "x86_64"))]
            Kernel::Avx512Fma => (
                match c_out {
                    1 => 1,
                    2..=4 => 4,
                    _ => 8,
                },
                if out_w <= 16 { 16 } else { 32 },
            ),
            #[cfg(all(feature = "std", target_arch = "x86_64"))]
            Kernel::Avx2Fma => (4, 16),
            Kernel::Portable => {
                let _ = (c_out, out_w);
                (4, 8)
            }
        }
    }

    /// Every output row of one block of channels (`dst`: its planes, `[live, out_h, out_w]`);
    /// `(cb, l)`: the block `block` chose for this layer.
    fn rows(self, s: &DirectConv, (cb, l): (usize, usize), pad: &Padded, xp: &[f32], weights: &[f32], bias: Option<&[f32]>, dst: &mut [f32]) {
        // the furthest read of any block: the last plane's last tap row, a whole chunk past its last tap
        let reach = (s.c_in - 1) * pad.plane() + (s.out_h - 1 + s.k_h - 1) * pad.w + (s.out_w.div_ceil(l) - 1) * l + s.k_w - 1 + l;
        assert!(xp.len() >= reach && weights.len() >= s.c_in * s.k_h * s.k_w * cb, "conv_direct: padded input or weights too small");
        let geometry = Geometry { c_in: s.c_in, k_h: s.k_h, k_w: s.k_w, pw: pad.w, plane: pad.plane() };
        let spatial = s.out_h * s.out_w;
        let live = dst.len() / spatial;
        for y in 0..s.out_h {
            for x0 in (0..s.out_w).step_by(l) {
                // SAFETY: `reach` bounds every read (y < out_h, x0 + l <= chunks * l), checked above;
                // the kernels' features were detected by `best` (or asked for by `conv2d_at`, which checks)
                let src = unsafe { xp.as_ptr().add(y * pad.w + x0) };
                let n = l.min(s.out_w - x0);
                let mut put = |acc: &[f32]| {
                    for cb in 0..live {
                        let bias = bias.map_or(0.0, |b| b[cb]);
                        // the bias after the sum, as the GEMM routes add it
                        for (o, &v) in dst[cb * spatial + y * s.out_w + x0..][..n].iter_mut().zip(&acc[cb * l..][..n]) {
                            *o = v + bias;
                        }
                    }
                };
                #[cfg(all(feature = "std", target_arch = "x86_64"))]
                macro_rules! avx512 {
                    ($cb:literal, $nv:literal) => {
                        put(unsafe { x86::avx512::<$cb, $nv>(src, weights.as_ptr(), &geometry) }.as_flattened().as_flattened())
                    };
                }
                match (self, cb, l) {
                    #[cfg(all(feature = "std", target_arch = "x86_64"))]
                    (Kernel::Avx512Fma, 1, 16) => avx512!(1, 1),
                    #[cfg(all(feature = "std", target_arch = "x86_64"))]
                    (Kernel::Avx512Fma, 1, _) => avx512!(1, 2),
                    #[cfg(all(feature = "std", target_arch = "x86_64"))]
                    (Kernel::Avx512Fma, 4, 16) => avx512!(4, 1),
                    #[cfg(all(feature = "std", target_arch = "x86_64"))]
                    (Kernel::Avx512Fma, 4, _) => avx512!(4, 2),
                    #[cfg(all(feature = "std", target_arch = "x86_64"))]
                    (Kernel::Avx512Fma, _, 16) => avx512!(8, 1),
                    #[cfg(all(feature = "std", target_arch = "x86_64"))]
                    (Kernel::Avx512Fma, _, _) => avx512!(8, 2),
                    #[cfg(all(feature = "std", target_arch = "x86_64"))]
                    (Kernel::Avx2Fma, _, _) => put(unsafe { x86::avx2(src, weights.as_ptr(), &geometry) }.as_flattened().as_flattened()),
                    _ => put(unsafe { portable(src, weights.as_ptr(), &geometry) }.as_flattened()),
                }
            }
        }
    }
}

/// What a kernel walks: `c_in` planes `plane` apart, rows `pw` apart, `k_h x k_w` taps.
struct Geometry {
    c_in: usize,
    k_h: usize,
    k_w: usize,
    pw: usize,
    plane: usize,
}

/// 4 channels x 8 pixels, multiply then add (the same bits on wasm's simd128 and in scalar code).
///
/// # Safety
/// `src` (the block's first pixel) and `w` must reach every tap of `g`.
#[inline(always)]
unsafe fn portable(src: *const f32, w: *const f32, g: &Geometry) -> [[f32; 8]; 4] {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        use core::arch::wasm32::*;
        let mut acc = [[f32x4_splat(0.0); 2]; 4];
        let mut wk = w;
        for ci in 0..g.c_in {
            for kh in 0..g.k_h {
                let r = unsafe { src.add(ci * g.plane + kh * g.pw) };
                for kw in 0..g.k_w {
                    let v = unsafe { [v128_load(r.add(kw) as *const v128), v128_load(r.add(kw + 4) as *const v128)] };
                    for (cb, a) in acc.iter_mut().enumerate() {
                        let s = f32x4_splat(unsafe { *wk.add(cb) });
                        a[0] = f32x4_add(a[0], f32x4_mul(s, v[0]));
                        a[1] = f32x4_add(a[1], f32x4_mul(s, v[1]));
                    }
                    wk = unsafe { wk.add(4) };
                }
            }
        }
        let mut out = [[0.0f32; 8]; 4];
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
        let mut acc = [[0.0f32; 8]; 4];
        let mut wk = w;
        for ci in 0..g.c_in {
            for kh in 0..g.k_h {
                let r = unsafe { src.add(ci * g.plane + kh * g.pw) };
                for kw in 0..g.k_w {
                    let v: [f32; 8] = core::array::from_fn(|l| unsafe { *r.add(kw + l) });
                    for (cb, a) in acc.iter_mut().enumerate() {
                        let s = unsafe { *wk.add(cb) };
                        for (a, v) in a.iter_mut().zip(&v) {
                            *a += s * v;
                        }
                    }
                    wk = unsafe { wk.add(4) };
                }
            }
        }
        acc
    }
}

#[cfg(all(feature = "std", target_arch = "x86_64"))]
mod x86 {
    use super::Geometry;
    use core::arch::x86_64::*;

    /// `CB` channels x `16 * NV` pixels, fused multiply-adds.
    ///
    /// # Safety
    /// The CPU has AVX-512F and FMA; `src` and `w` reach every tap of `g`.
    #[target_feature(enable = "avx512f,fma")]
    pub unsafe fn avx512<const CB: usize, const NV: usize>(src: *const f32, w: *const f32, g: &Geometry) -> [[[f32; 16]; NV]; CB] {
        let mut acc = [[_mm512_setzero_ps(); NV]; CB];
        let mut wk = w;
        for ci in 0..g.c_in {
            for kh in 0..g.k_h {
                let r = unsafe { src.add(ci * g.plane + kh * g.pw) };
                for kw in 0..g.k_w {
                    let v: [__m512; NV] = core::array::from_fn(|j| unsafe { _mm512_loadu_ps(r.add(kw + 16 * j)) });
                    for (cb, a) in acc.iter_mut().enumerate() {
                        let s = _mm512_set1_ps(unsafe { *wk.add(cb) });
                        for j in 0..NV {
                            a[j] = _mm512_fmadd_ps(s, v[j], a[j]);
                        }
                    }
                    wk = unsafe { wk.add(CB) };
                }
            }
        }
        let mut out = [[[0.0f32; 16]; NV]; CB];
        for (o, a) in out.iter_mut().zip(&acc) {
            for j in 0..NV {
                unsafe { _mm512_storeu_ps(o[j].as_mut_ptr(), a[j]) };
            }
        }
        out
    }

    /// 4 channels x 16 pixels, fused multiply-adds.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA; `src` and `w` reach every tap of `g`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn avx2(src: *const f32, w: *const f32, g: &Geometry) -> [[[f32; 8]; 2]; 4] {
        let mut acc = [[_mm256_setzero_ps(); 2]; 4];
        let mut wk = w;
        for ci in 0..g.c_in {
            for kh in 0..g.k_h {
                let r = unsafe { src.add(ci * g.plane + kh * g.pw) };
                for kw in 0..g.k_w {
                    let v = unsafe { [_mm256_loadu_ps(r.add(kw)), _mm256_loadu_ps(r.add(kw + 8))] };
                    for (cb, a) in acc.iter_mut().enumerate() {
                        let s = _mm256_set1_ps(unsafe { *wk.add(cb) });
                        a[0] = _mm256_fmadd_ps(s, v[0], a[0]);
                        a[1] = _mm256_fmadd_ps(s, v[1], a[1]);
                    }
                    wk = unsafe { wk.add(4) };
                }
            }
        }
        let mut out = [[[0.0f32; 8]; 2]; 4];
        for (o, a) in out.iter_mut().zip(&acc) {
            for j in 0..2 {
                unsafe { _mm256_storeu_ps(o[j].as_mut_ptr(), a[j]) };
            }
        }
        out
    }
}
