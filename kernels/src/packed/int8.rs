//! Int8 × int8 layers (`ActQuant::Dynamic` / `Static` with int8 weights): x
//! quantized (`quant.rs`), then tiles of `I8_ROWS` x rows × 4 weight rows
//! accumulate exact i32 dot products (VNNI `vpdpbusd`, AVX2 `vpmaddubsw` +
//! `vpmaddwd`, NEON `smull`/`sdot`/`smmla`) and rescale them with the
//! reference's formula, so outputs match it bit for bit. Where the kernel
//! set has an int8 GEMM micro-kernel (`I8_NR > 0`) and m ≥
//! `INT8_GEMM_MIN_M`, the GEMM (`gemm/int8.rs`) takes over.

use super::quant::{quantize, Sums};
use super::{int8_scale, PackedSimd};
use crate::gemm::split;
use crate::operands::I8Rows;
use crate::schemes::{ActQuant, PackedWeights};
use crate::sync_ptr::{SharedConst, SharedMut};
use crate::tuning::{dot_tasks, I8_BLOCK_BYTES, I8_ROWS, INT8_GEMM_MIN_M};
use crate::Pool;

#[allow(clippy::too_many_arguments)]
pub(crate) fn linear<I: PackedSimd>(
    pool: &Pool,
    x: &[f32],
    m: usize,
    k: usize,
    w: &PackedWeights,
    act: ActQuant,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let n = w.n;
    let xq = quantize::<I>(pool, x, m, k, act, Sums::Row);
    if I::I8_NR > 0 && m >= INT8_GEMM_MIN_M {
        return crate::gemm::int8::linear::<I>(pool, &xq, m, w, bias, out);
    }
    let kq = xq.kq;
    let groups = n.div_ceil(4);
    // Weight rows per block: enough to fill I8_BLOCK_BYTES, whole groups of 4.
    let block = (I8_BLOCK_BYTES / k / 4).max(1);
    let tasks = if m < INT8_GEMM_MIN_M {
        dot_tasks(pool.threads(), groups)
    } else {
        groups.div_ceil(block).min(pool.threads() * 4).max(1)
    };
    let out = SharedMut::new(out);
    let wp = SharedConst::new(w.planes[0].as_ptr());
    let (codes, xsum, sx) = (&xq.codes, &xq.sums, &xq.scales);
    pool.run(tasks, &|t| {
        let (g0, g1) = split(groups, tasks, t);
        let mut gb = g0;
        while gb < g1 {
            let ge = (gb + block).min(g1);
            // One wide tile for a few rows (decoder hypotheses) where the set has one.
            let tile = if I::I8_WIDE_ROWS >= m { m } else { I8_ROWS };
            for i in (0..m).step_by(tile) {
                let rows = (m - i).min(tile);
                for g in gb..ge {
                    let j = 4 * g;
                    let cols = (n - j).min(4);
                    let wr: [*const u8; 4] = std::array::from_fn(|c| {
                        wp.get()
                            .wrapping_add((j + if c < cols { c } else { 0 }) * k)
                    });
                    let mut dots = [[0i32; 4]; 8];
                    let x = I8Rows {
                        codes: codes.as_ptr().wrapping_add(i * kq),
                        row_stride: kq,
                        sums: xsum.as_ptr().wrapping_add(i),
                    };
                    // Safety: x rows i..i+rows (kq bytes each, zero-padded),
                    // their sums, and weight rows j..j+cols (k bytes each).
                    unsafe {
                        if rows > I8_ROWS {
                            I::dot_i8_wide(rows, k, x, wr, &mut dots);
                        } else {
                            let four: &mut [[i32; 4]; 4] =
                                (&mut dots[..4]).try_into().expect("four rows");
                            I::dot_i8(rows, k, x, wr, four);
                        }
                    };
                    // The columns' scales and biases once for all rows.
                    let sw: [f32; 4] =
                        std::array::from_fn(|c| if c < cols { int8_scale(w, j + c) } else { 0.0 });
                    let bc: [f32; 4] = std::array::from_fn(|c| match bias {
                        Some(b) if c < cols => b[j + c],
                        _ => 0.0,
                    });
                    for (r, d) in dots.iter().enumerate().take(rows) {
                        // All four columns at once (the compiler's vector
                        // ops: the same IEEE operations), the valid ones stored.
                        let s = sx[i + r];
                        let v: [f32; 4] =
                            std::array::from_fn(|c| (s * sw[c]) * d[c] as f32 + bc[c]);
                        // Safety: outputs (i + r, j..j + cols) belong to this task.
                        unsafe {
                            std::ptr::copy_nonoverlapping(
                                v.as_ptr(),
                                out.get().add((i + r) * n + j),
                                cols,
                            )
                        };
                    }
                }
            }
            gb = ge;
        }
    });
}
