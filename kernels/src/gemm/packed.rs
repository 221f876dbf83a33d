//! The weight-only packed GEMM (float activations, m ≥ `CHAIN_MIN_M`: the
//! encoder): the f16 GEMM's micro-kernel on panels decoded from the packed
//! codes. The packer decodes a panel's weight rows one by one into an
//! L1-sized f32 buffer (`PackedSimd::decode_row`: nibble / 3-bit unpacking,
//! table lookup or affine map, per-group scales) and transposes them into
//! the micro-kernel's `[k][NR]` panel, so every scheme runs at nearly the f16
//! GEMM's speed and in its order (one FMA chain over k per output).

use super::driver::{gemm, Plan};
use super::f16::bias_init;
use crate::operands::{Lhs, Out, Panel, Tile};
use crate::packed::{row_params, Kind, PackedSimd};
use crate::schemes::PackedWeights;
use crate::simd::Simd;
use crate::sync_ptr::{SharedConst, SharedMut};
use crate::{canonical::PACKED_DOT_PAD, scratch, Pool};

pub(crate) fn linear<I: PackedSimd>(
    pool: &Pool,
    x: &[f32],
    m: usize,
    k: usize,
    w: &PackedWeights,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let kind = Kind::of(w.scheme);
    let kp = k.next_multiple_of(PACKED_DOT_PAD);
    let plan = WeightOnlyGemm::<I> {
        x: SharedConst::new(x.as_ptr()),
        k,
        kp,
        kind,
        group: if kind == Kind::Int8 { kp } else { w.group },
        pl: scratch::lines(w.groups_per_row()),
        w: *w,
        bias,
        out: SharedMut::new(out),
        isa: std::marker::PhantomData,
    };
    gemm(pool, &plan, m, w.n)
}

struct WeightOnlyGemm<'a, I> {
    x: SharedConst<f32>,
    k: usize,
    /// k rounded up to the packed formats' block.
    kp: usize,
    kind: Kind,
    group: usize,
    /// Floats of one row's group parameters, in whole cache lines.
    pl: usize,
    w: PackedWeights<'a>,
    bias: Option<&'a [f32]>,
    out: SharedMut<f32>,
    isa: std::marker::PhantomData<I>,
}

/// A task's buffers: the chunk's panels, a panel's decoded rows, and one
/// row's group scales / zero-points.
struct Scratch<'s> {
    packed: &'s mut [f32],
    rows: &'s mut [f32],
    s: &'s mut [f32],
    z: &'s mut [f32],
}

impl<I: PackedSimd> Plan for WeightOnlyGemm<'_, I> {
    const MR: usize = I::Float::MR;
    const NR: usize = I::Float::NR;
    type Scratch<'s> = Scratch<'s>;

    fn panel_bytes(&self) -> usize {
        self.k * Self::NR * 4
    }
    fn with_scratch<R>(
        &self,
        chunk_panels: usize,
        body: impl for<'s> FnOnce(&mut Scratch<'s>) -> R,
    ) -> R {
        let nr = Self::NR;
        let packed_len = scratch::lines(chunk_panels * nr * self.k);
        let rows_len = scratch::lines(nr * self.kp);
        scratch::with(packed_len + rows_len + 2 * self.pl, |buf| {
            let (packed, rest) = buf.split_at_mut(packed_len);
            let (rows, rest) = rest.split_at_mut(rows_len);
            let (s, z) = rest.split_at_mut(self.pl);
            body(&mut Scratch { packed, rows, s, z })
        })
    }
    fn pack(&self, sc: &mut Scratch<'_>, slot: usize, j: usize, cols: usize) {
        let (k, kp, nr) = (self.k, self.kp, Self::NR);
        let rb = self.w.row_bytes();
        for r in 0..cols {
            row_params::<I>(&self.w, j + r, sc.s, sc.z);
            // Safety: row j + r exists (rb bytes, checked by `packed::linear`);
            // the rows buffer holds nr·kp floats.
            unsafe {
                I::decode_row(
                    self.kind,
                    self.w.planes[0].as_ptr().add((j + r) * rb),
                    sc.s.as_ptr(),
                    sc.z.as_ptr(),
                    self.group,
                    k,
                    sc.rows.as_mut_ptr().add(r * kp),
                )
            }
        }
        // Safety: `cols` decoded rows of kp floats; the slot holds k·NR floats.
        unsafe {
            I::Float::pack_b(
                sc.rows.as_ptr().cast(),
                false,
                kp,
                cols,
                k,
                sc.packed.as_mut_ptr().add(slot * nr * k),
            )
        }
    }
    fn tile(&self, sc: &Scratch<'_>, slot: usize, i: usize, rows: usize, j: usize, cols: usize) {
        let (k, n, nr) = (self.k, self.w.n, Self::NR);
        let mut b = [0.0f32; 32];
        let init = bias_init(self.bias, j, cols, &mut b);
        // Safety: x rows i..i+rows (k floats each), the packed panel (k·NR
        // floats) and output rows i..i+rows × columns j..j+cols (owned by
        // this task) are in bounds.
        unsafe {
            I::Float::kernel(
                Tile { rows, cols },
                k,
                Lhs {
                    ptr: self.x.get().add(i * k),
                    row_stride: k,
                    k_stride: 1,
                },
                Panel {
                    ptr: sc.packed.as_ptr().add(slot * nr * k),
                    k_stride: nr,
                },
                Out {
                    ptr: self.out.get().add(i * n + j),
                    row_stride: n,
                },
                init,
            )
        }
    }
}
