//! The int8 × int8 GEMM (int8 activations × int8 weights, m ≥
//! `tuning::INT8_GEMM_MIN_M`, on sets with an int8 GEMM micro-kernel:
//! `I8_NR > 0`). The packer repacks a panel's weight rows into
//! `[k4/4][I8_NR][4]` bytes with the sign bit flipped (so `vpdpbusd` sees
//! them unsigned) and gathers the columns' scales and biases; the
//! micro-kernel keeps an `I8_MR × I8_NR` i32 tile in registers and rescales
//! it with the reference's expression (product, product, sum: no FMA), so
//! outputs match the reference bit for bit.

use super::driver::{gemm, Plan};
use crate::operands::{I8Panel, Out, QuantRows, Tile};
use crate::packed::{int8_scale, quant::QuantX, PackedSimd};
use crate::schemes::PackedWeights;
use crate::sync_ptr::SharedMut;
use crate::Pool;

pub(crate) fn linear<I: PackedSimd>(
    pool: &Pool,
    x: &QuantX,
    m: usize,
    w: &PackedWeights,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let k4 = w.k.next_multiple_of(I::I8_K_STEP);
    assert!(
        x.kq >= k4,
        "int8 GEMM: x rows shorter than the kernel's k step"
    );
    let plan = Int8Gemm::<I> {
        x,
        k4,
        w: *w,
        bias,
        out: SharedMut::new(out),
        isa: std::marker::PhantomData,
    };
    gemm(pool, &plan, m, w.n)
}

struct Int8Gemm<'a, I> {
    x: &'a QuantX,
    /// k rounded up to the micro-kernel's step (`I8_K_STEP`, 4 or 64 codes).
    k4: usize,
    w: PackedWeights<'a>,
    bias: Option<&'a [f32]>,
    out: SharedMut<f32>,
    isa: std::marker::PhantomData<I>,
}

/// A task's buffers: the chunk's panels, and per panel `I8_NR` weight
/// scales and `I8_NR` biases.
struct Scratch {
    packed: Vec<u8>,
    sw: Vec<f32>,
    bs: Vec<f32>,
}

impl<I: PackedSimd> Plan for Int8Gemm<'_, I> {
    const MR: usize = I::I8_MR;
    const NR: usize = I::I8_NR;
    type Scratch<'s> = Scratch;

    fn panel_bytes(&self) -> usize {
        self.k4 * Self::NR
    }
    fn with_scratch<R>(
        &self,
        chunk_panels: usize,
        body: impl for<'s> FnOnce(&mut Self::Scratch<'s>) -> R,
    ) -> R {
        let par = chunk_panels * Self::NR;
        body(&mut Scratch {
            packed: vec![0u8; chunk_panels * self.panel_bytes()],
            sw: vec![0.0; par],
            bs: vec![0.0; par],
        })
    }
    fn pack(&self, s: &mut Scratch, slot: usize, j: usize, cols: usize) {
        let (k, nr, len) = (self.w.k, Self::NR, self.panel_bytes());
        pack_i8_panel(
            &self.w.planes[0][j * k..(j + cols) * k],
            cols,
            k,
            self.k4,
            nr,
            &mut s.packed[slot * len..(slot + 1) * len],
        );
        for c in 0..nr {
            let valid = c < cols;
            s.sw[slot * nr + c] = if valid {
                int8_scale(&self.w, j + c)
            } else {
                0.0
            };
            s.bs[slot * nr + c] = match self.bias {
                Some(b) if valid => b[j + c],
                _ => 0.0,
            };
        }
    }
    fn tile(&self, s: &Scratch, slot: usize, i: usize, rows: usize, j: usize, cols: usize) {
        let (n, nr) = (self.w.n, Self::NR);
        let x = self.x;
        // Safety: x rows i..i+rows (kq ≥ k4 codes each, zero past k), their
        // sums and scales; a whole panel and NR scales and biases; output
        // rows i..i+rows, columns j..j+cols of this task only.
        unsafe {
            I::gemm_i8(
                Tile { rows, cols },
                self.k4,
                QuantRows {
                    codes: x.codes.as_ptr().add(i * x.kq),
                    row_stride: x.kq,
                    sums: x.sums.as_ptr().add(i),
                    scales: x.scales.as_ptr().add(i),
                },
                I8Panel {
                    codes: s.packed.as_ptr().add(slot * self.panel_bytes()),
                    scales: s.sw.as_ptr().add(slot * nr),
                    bias: s.bs.as_ptr().add(slot * nr),
                },
                Out {
                    ptr: self.out.get().add(i * n + j),
                    row_stride: n,
                },
            )
        }
    }
}

/// Repacks weight rows `j..j + rows` (`rows ≤ nr`, `k` bytes each, `w` at row
/// `j`) into an int8 GEMM panel: `dst[(p·nr + r)·4 + b] = w[r][4p + b] ^ 0x80`
/// for `p < k4/4` (`k4`: k rounded up to a multiple of 4); bytes past `k`
/// and rows past `rows` are code 0 (0x80).
fn pack_i8_panel(w: &[u8], rows: usize, k: usize, k4: usize, nr: usize, dst: &mut [u8]) {
    assert!(k4 >= k && k4.is_multiple_of(4));
    let dst = &mut dst[..k4 * nr];
    let full = k / 4;
    for r in 0..nr {
        if r >= rows {
            for p in 0..k4 / 4 {
                dst[(p * nr + r) * 4..][..4].fill(0x80);
            }
            continue;
        }
        let row = &w[r * k..(r + 1) * k];
        for (p, c) in row.chunks_exact(4).enumerate() {
            let v = u32::from_le_bytes([c[0], c[1], c[2], c[3]]) ^ 0x8080_8080;
            dst[(p * nr + r) * 4..][..4].copy_from_slice(&v.to_le_bytes());
        }
        if full < k4 / 4 {
            let mut t = [0x80u8; 4];
            for (b, &c) in row[4 * full..].iter().enumerate() {
                t[b] = c ^ 0x80;
            }
            dst[(full * nr + r) * 4..][..4].copy_from_slice(&t);
        }
        // Whole steps of padding (a kernel with a k step above 4).
        for p in k.div_ceil(4)..k4 / 4 {
            dst[(p * nr + r) * 4..][..4].fill(0x80);
        }
    }
}
