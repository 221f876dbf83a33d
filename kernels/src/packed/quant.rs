//! Quantizing x to int8 for the int8 × int8 and low-bit × int8 paths: row by
//! row with the kernel set's `quantize_row`, bit-identical to
//! [`crate::schemes::quantize_activations`], into rows zero-padded to a
//! multiple of 64 codes (so the dot kernels need no tails), with the rows'
//! code sums (int8) or per-group code sums (low-bit) taken once.

use super::PackedSimd;
use crate::schemes::ActQuant;
use crate::sync_ptr::SharedMut;
use crate::{tuning, Pool};

/// Quantized x: `m` rows of `kq` codes, their sums and their scales.
pub(crate) struct QuantX {
    pub codes: Vec<i8>,
    /// Codes per row: k rounded up to 64, zero past k.
    pub kq: usize,
    /// Per row: its code sum (int8 paths), or its `ng` per-group code sums
    /// (low-bit paths; row `r`'s at `r·ng`).
    pub sums: Vec<i32>,
    /// Per row: its scale `s_x`.
    pub scales: Vec<f32>,
}

/// What sums to take per row.
#[derive(Clone, Copy)]
pub(crate) enum Sums {
    /// One: the row's code sum.
    Row,
    /// One per group of `group` codes; then, if `permute`, the row's codes
    /// permuted within each 64 as [`permute_x64`] (after the sums).
    Groups { group: usize, permute: bool },
}

/// Quantizes the `m` rows of `x[m × k]` for `act` (`Dynamic` / `Static`),
/// on the pool when there are several tasks' worth of rows.
pub(crate) fn quantize<I: PackedSimd>(
    pool: &Pool,
    x: &[f32],
    m: usize,
    k: usize,
    act: ActQuant,
    sums: Sums,
) -> QuantX {
    let kq = k.next_multiple_of(64);
    let per_row = match sums {
        Sums::Row => 1,
        Sums::Groups { group, .. } => k.div_ceil(group),
    };
    let mut codes = vec![0i8; m * kq];
    let mut scales = vec![0.0f32; m];
    let mut sum = vec![0i32; m * per_row];
    {
        const ROWS: usize = tuning::QUANT_ROWS;
        let (cp, sp, gp) = (
            SharedMut::new(&mut codes),
            SharedMut::new(&mut scales),
            SharedMut::new(&mut sum),
        );
        let x = &x[..m * k];
        let quantize = |t: usize| {
            for r in t * ROWS..((t + 1) * ROWS).min(m) {
                // Safety: row r belongs to this task; x row r has k floats,
                // codes row r kq ≥ k codes, sums row r `per_row` sums; the
                // buffers outlive the job.
                unsafe {
                    let q = cp.get().add(r * kq);
                    let (s, total) = I::quantize_row(x.as_ptr().add(r * k), k, act, q);
                    *sp.get().add(r) = s;
                    match sums {
                        Sums::Row => *gp.get().add(r) = total,
                        Sums::Groups { group, permute } => {
                            let q = std::slice::from_raw_parts_mut(q, kq);
                            for (g, qg) in q[..k].chunks(group).enumerate() {
                                *gp.get().add(r * per_row + g) = qg.iter().map(|&v| v as i32).sum();
                            }
                            if permute {
                                permute_x64(q);
                            }
                        }
                    }
                }
            }
        };
        let tasks = m.div_ceil(ROWS);
        if tasks == 1 {
            quantize(0)
        } else {
            pool.run(tasks, &quantize)
        }
    }
    QuantX {
        codes,
        kq,
        sums: sum,
        scales,
    }
}

/// Reorders each 64 codes of an x row to `[0..16, 32..48, 16..32, 48..64]`:
/// the order in which a 4-bit tile that loads two blocks' 32 bytes into both
/// 256-bit halves and shifts the upper half by 4 sees the weights.
pub(crate) fn permute_x64(row: &mut [i8]) {
    for c in row.chunks_exact_mut(64) {
        let mut t = [0i8; 64];
        t[..16].copy_from_slice(&c[..16]);
        t[16..32].copy_from_slice(&c[32..48]);
        t[32..48].copy_from_slice(&c[16..32]);
        t[48..].copy_from_slice(&c[48..]);
        c.copy_from_slice(&t);
    }
}
