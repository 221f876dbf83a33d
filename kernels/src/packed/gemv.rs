//! Weight-only packed layers with m < `CHAIN_MIN_M` (the decoder, incl. the
//! vocabulary projection): tiles of up to `DOT_ROWS` x rows × 4 weight rows;
//! each weight byte is read once and decoded in registers, then multiplied
//! into every x row of the tile, in the canonical lanes over k rounded up to
//! `PACKED_DOT_PAD`. x is first copied into rows zero-padded to that, so the
//! kernels need no masked loads of x (padding codes decode to finite values
//! times 0).

use super::{row_params, Kind, PackedSimd};
use crate::canonical::PACKED_DOT_PAD;
use crate::gemm::split;
use crate::operands::{Out, PackedRows, Tile, XRows};
use crate::schemes::PackedWeights;
use crate::sync_ptr::{SharedConst, SharedMut};
use crate::{scratch, tuning, Pool};

pub(crate) fn linear<I: PackedSimd>(
    pool: &Pool,
    x: &[f32],
    m: usize,
    k: usize,
    w: &PackedWeights,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let n = w.n;
    let kind = Kind::of(w.scheme);
    let kp = k.next_multiple_of(PACKED_DOT_PAD);
    let group = if kind == Kind::Int8 { kp } else { w.group };
    let ng = w.groups_per_row();
    let rb = w.row_bytes();
    // x rows zero-padded to kp.
    let mut xp = vec![0.0f32; m * kp];
    for (dst, src) in xp.chunks_exact_mut(kp).zip(x.chunks_exact(k)) {
        dst[..k].copy_from_slice(src);
    }
    let groups = n.div_ceil(4);
    let tasks = tuning::dot_tasks(pool.threads(), groups);
    let out = SharedMut::new(out);
    let bias = SharedConst::opt(bias);
    let (xp, codes) = (
        SharedConst::new(xp.as_ptr()),
        SharedConst::new(w.planes[0].as_ptr()),
    );
    let pl = scratch::lines(ng);
    pool.run(tasks, &|t| {
        let (g0, g1) = split(groups, tasks, t);
        scratch::with(8 * pl, |buf| {
            let (s, z) = buf.split_at_mut(4 * pl);
            for g in g0..g1 {
                let j = g * 4;
                let cols = (n - j).min(4);
                for c in 0..cols {
                    row_params::<I>(
                        w,
                        j + c,
                        &mut s[c * pl..(c + 1) * pl],
                        &mut z[c * pl..(c + 1) * pl],
                    );
                }
                let row = |c: usize| if c < cols { c } else { 0 };
                let wc: [*const u8; 4] =
                    std::array::from_fn(|c| codes.get().wrapping_add((j + row(c)) * rb));
                let params: [(*const f32, *const f32); 4] =
                    std::array::from_fn(|c| (s[row(c) * pl..].as_ptr(), z[row(c) * pl..].as_ptr()));
                let b = if bias.get().is_null() {
                    bias.get()
                } else {
                    bias.get().wrapping_add(j)
                };
                for r0 in (0..m).step_by(I::DOT_ROWS) {
                    // Safety: x rows r0.. (padded, kp floats each), weight rows
                    // j..j+cols (rb bytes each, checked by `linear`) and output
                    // columns j..j+cols of this task's rows are in bounds.
                    unsafe {
                        I::dot_tile(
                            kind,
                            Tile {
                                rows: (m - r0).min(I::DOT_ROWS),
                                cols,
                            },
                            k,
                            group,
                            XRows {
                                ptr: xp.get().add(r0 * kp),
                                row_stride: kp,
                            },
                            PackedRows { codes: wc, params },
                            b,
                            Out {
                                ptr: out.get().add(r0 * n + j),
                                row_stride: n,
                            },
                        )
                    }
                }
            }
        })
    });
}
