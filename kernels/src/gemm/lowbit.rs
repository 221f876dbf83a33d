//! The low-bit × int8 GEMM (4- / 3-bit weights, int8 activations, m ≥
//! `tuning::INT8_GEMM_MIN_M`, on sets with a low-bit GEMM micro-kernel:
//! `LB_NR > 0` — AVX-512 VNNI NR = 64; AVX-VNNI, AVX2, AVX-512, NEON NR =
//! 16). The packer unpacks a panel's weight rows once into `[kp/4][LB_NR][4]`
//! integer-code panels and gathers their group parameters as `[ng][LB_NR]`;
//! the micro-kernel takes exact i32 group dots and does the float part in
//! the reference's order (`schemes::linear_reference`), so outputs are bit
//! identical to it.

use super::driver::{gemm, Plan};
use crate::operands::{Out, Tile};
use crate::packed::lowbit::{code_at, tile_params};
use crate::packed::{quant::QuantX, Kind, LowbitTile, PackedSimd};
use crate::schemes::PackedWeights;
use crate::sync_ptr::SharedMut;
use crate::Pool;

/// `PackedSimd::LB_MR` and `gemm_lowbit` of a set whose micro-kernel is
/// `kernel::<R>` for each listed row count `R` (1 ..= `LB_MR`): the row-count
/// dispatch every low-bit GEMM shares.
macro_rules! gemm_lowbit_impl {
    ($($kernel:ident)::+; $($r:literal),+) => {
        const LB_MR: usize = [$($r),+].len();
        unsafe fn gemm_lowbit(
            nf4: bool,
            tile: $crate::operands::Tile,
            kp: usize,
            group: usize,
            t: $crate::packed::LowbitTile,
            panel: *const u8,
            out: $crate::operands::Out,
        ) {
            use $($kernel)::+ as kernel;
            match tile.rows {
                $($r => kernel::<$r>(nf4, tile.cols, kp, group, t, panel, out),)+
                _ => unreachable!("low-bit GEMM rows {}", tile.rows),
            }
        }
    };
}
pub(crate) use gemm_lowbit_impl;

pub(crate) fn linear<I: PackedSimd>(
    pool: &Pool,
    kind: Kind,
    x: &QuantX,
    m: usize,
    w: &PackedWeights,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let plan = LowbitGemm::<I> {
        kind,
        x,
        kp: w.k.next_multiple_of(32),
        ng: w.groups_per_row(),
        w: *w,
        bias,
        out: SharedMut::new(out),
        isa: std::marker::PhantomData,
    };
    gemm(pool, &plan, m, w.n)
}

struct LowbitGemm<'a, I> {
    kind: Kind,
    x: &'a QuantX,
    /// k rounded up to the micro-kernels' step of 32 codes.
    kp: usize,
    /// Groups per weight row.
    ng: usize,
    w: PackedWeights<'a>,
    bias: Option<&'a [f32]>,
    out: SharedMut<f32>,
    isa: std::marker::PhantomData<I>,
}

/// A task's buffers: the chunk's code panels, per panel `[ng][LB_NR]` group
/// scales and zero-points and `LB_NR` biases; one unpacked row and (nf4-dq)
/// a panel's decoded parameters while packing.
struct Scratch {
    packed: Vec<u8>,
    ps: Vec<f32>,
    pz: Vec<f32>,
    bs: Vec<f32>,
    dq: Vec<f32>,
    row: Vec<u8>,
}

impl<I: PackedSimd> Plan for LowbitGemm<'_, I> {
    const MR: usize = I::LB_MR;
    const NR: usize = I::LB_NR;
    type Scratch<'s> = Scratch;

    fn panel_bytes(&self) -> usize {
        self.kp * Self::NR
    }
    fn with_scratch<R>(
        &self,
        chunk_panels: usize,
        body: impl for<'s> FnOnce(&mut Self::Scratch<'s>) -> R,
    ) -> R {
        let (nr, ng) = (Self::NR, self.ng);
        body(&mut Scratch {
            packed: vec![0u8; chunk_panels * self.panel_bytes()],
            ps: vec![0.0; chunk_panels * ng * nr],
            pz: vec![0.0; chunk_panels * ng * nr],
            bs: vec![0.0; chunk_panels * nr],
            dq: Vec::new(),
            row: vec![0u8; self.kp],
        })
    }
    fn pack(&self, s: &mut Scratch, slot: usize, j: usize, cols: usize) {
        let (nr, ng, len) = (Self::NR, self.ng, self.panel_bytes());
        let rb = self.w.row_bytes();
        pack_lowbit_panel(
            self.kind,
            &self.w.planes[0][j * rb..(j + cols) * rb],
            rb,
            cols,
            self.kp,
            nr,
            &mut s.row,
            &mut s.packed[slot * len..(slot + 1) * len],
        );
        let par = ng * nr;
        let (ps, pz) = (
            &mut s.ps[slot * par..(slot + 1) * par],
            &mut s.pz[slot * par..(slot + 1) * par],
        );
        tile_params::<I>(&self.w, j, cols, nr, ps, pz, &mut s.dq);
        for c in 0..nr {
            s.bs[slot * nr + c] = match self.bias {
                Some(b) if c < cols => b[j + c],
                _ => 0.0,
            };
        }
    }
    fn tile(&self, s: &Scratch, slot: usize, i: usize, rows: usize, j: usize, cols: usize) {
        let (n, nr, ng) = (self.w.n, Self::NR, self.ng);
        let (x, par) = (self.x, ng * nr);
        let t = LowbitTile {
            xq: x.codes[i * x.kq..].as_ptr(),
            ldx: x.kq,
            xsg: x.sums[i * ng..].as_ptr(),
            sx: x.scales[i..].as_ptr(),
            codes: std::ptr::null(),
            rb: 0,
            ps: s.ps[slot * par..].as_ptr(),
            pz: s.pz[slot * par..].as_ptr(),
            bias: s.bs[slot * nr..].as_ptr(),
        };
        // Safety: x rows i..i+rows (kq ≥ kp codes, zero past k; ng sums; a
        // scale), a whole panel with its parameters and biases, output rows
        // i..i+rows × columns j..j+cols of this task only.
        unsafe {
            I::gemm_lowbit(
                self.kind == Kind::Nf4,
                Tile { rows, cols },
                self.kp,
                self.w.group,
                t,
                s.packed.as_ptr().add(slot * self.panel_bytes()),
                Out {
                    ptr: self.out.get().add(i * n + j),
                    row_stride: n,
                },
            )
        }
    }
}

/// Packs weight rows `j..j + rows` (`rows ≤ nr`; `codes` at row j, `rb`
/// bytes per row) into a low-bit GEMM panel: `dst[(p·nr + r)·4 + b]` = the
/// integer code of element `4p + b` of row r for `p < kp/4` (nf4:
/// `NF4_I8 + 128`, as unsigned bytes); rows past `rows` repeat the last.
/// Padding elements (past k) hold the stored code 0's value, met by x = 0.
#[allow(clippy::too_many_arguments)]
fn pack_lowbit_panel(
    kind: Kind,
    codes: &[u8],
    rb: usize,
    rows: usize,
    kp: usize,
    nr: usize,
    row: &mut [u8],
    dst: &mut [u8],
) {
    let row = &mut row[..kp];
    let table: [u8; 16] = std::array::from_fn(|i| (crate::schemes::NF4_I8[i] as u8) ^ 0x80);
    for r in 0..nr {
        let src = &codes[r.min(rows - 1) * rb..][..rb];
        if kind == Kind::Affine3 {
            for (e, o) in row.iter_mut().enumerate() {
                // Safety: e < kp, inside the row's rb = kp/32·12 bytes.
                *o = unsafe { code_at(kind, src.as_ptr(), e) };
            }
        } else {
            for (blk, o) in src.chunks_exact(16).zip(row.chunks_exact_mut(32)) {
                let (lo, hi) = o.split_at_mut(16);
                for ((l, h), &b) in lo.iter_mut().zip(hi.iter_mut()).zip(blk) {
                    *l = b & 15;
                    *h = b >> 4;
                }
            }
            if kind == Kind::Nf4 {
                for o in row.iter_mut() {
                    *o = table[*o as usize];
                }
            }
        }
        for (p, c) in row.chunks_exact(4).enumerate() {
            dst[(p * nr + r) * 4..][..4].copy_from_slice(c);
        }
    }
}
