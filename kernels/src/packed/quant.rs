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
    /// One per group of `group` codes; then the row's codes put in the
    /// tile's `order` (after the sums).
    Groups { group: usize, order: XOrder },
}

/// The order in which a low-bit tile wants an x row's codes: that in which
/// its unpacking yields the weights (`PackedSimd::lowbit_shape`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) enum XOrder {
    /// Element order.
    Element,
    /// Each 64 as `[0..16, 32..48, 16..32, 48..64]`: two 4-bit blocks'
    /// 32 bytes in both 256-bit halves, the upper half's nibbles shifted down.
    Halves64,
    /// Each 128 of whole 4-bit blocks (the first `k.div_ceil(32) / 4` of
    /// them) as its 64 low nibbles' elements then its 64 high nibbles':
    /// `[0..16, 32..48, 64..80, 96..112, 16..32, 48..64, 80..96, 112..128]`,
    /// four blocks' 64 bytes masked and shifted in place; the codes after
    /// them as `Halves64`.
    Nibbles128,
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
                        Sums::Groups { group, order } => {
                            let q = std::slice::from_raw_parts_mut(q, kq);
                            for (g, qg) in q[..k].chunks(group).enumerate() {
                                *gp.get().add(r * per_row + g) = qg.iter().map(|&v| v as i32).sum();
                            }
                            order_x(q, k, order);
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

/// Puts an x row's codes (`kq` of them, k real) in `order` ([`XOrder`]).
pub(crate) fn order_x(row: &mut [i8], k: usize, order: XOrder) {
    let whole128 = match order {
        XOrder::Element => return,
        XOrder::Halves64 => 0,
        XOrder::Nibbles128 => k.div_ceil(32) / 4,
    };
    let (head, tail) = row.split_at_mut(128 * whole128);
    for c in head.chunks_exact_mut(128) {
        let mut t = [0i8; 128];
        for l in 0..4 {
            t[16 * l..16 * l + 16].copy_from_slice(&c[32 * l..32 * l + 16]);
            t[64 + 16 * l..64 + 16 * l + 16].copy_from_slice(&c[32 * l + 16..32 * l + 32]);
        }
        c.copy_from_slice(&t);
    }
    for c in tail.chunks_exact_mut(64) {
        let mut t = [0i8; 64];
        t[..16].copy_from_slice(&c[..16]);
        t[16..32].copy_from_slice(&c[32..48]);
        t[32..48].copy_from_slice(&c[16..32]);
        t[48..].copy_from_slice(&c[48..]);
        c.copy_from_slice(&t);
    }
}
