//! Low-bit × int8 layers (4- / 3-bit weights with `Dynamic` / `Static`
//! activations): x quantized with its per-group code sums (`quant.rs`; for
//! sets that ask, codes permuted within each 64 to the order their unpack
//! yields), then `dot_lowbit` tiles of x rows × NC weight rows (NC = 4, or 16
//! on VNNI): codes unpacked in registers, exact i32 group dots, the float
//! part in the reference's order, so outputs are bit identical to
//! `schemes::linear_reference`. The group parameters of a block of weight
//! rows are converted once (f16 → f32 in one call, nf4's `/127`) and the
//! tiles gather them. For m ≥ `INT8_GEMM_MIN_M` a set with a low-bit GEMM
//! (`LB_NR > 0`: every SIMD set) hands over to `gemm/lowbit.rs`; the scalar
//! set uses the tiles, weight rows blocked to stay in cache while every x
//! tile passes.

use super::quant::{quantize, Sums};
use super::{le_f32, Kind, LowbitTile, PackedSimd};
use crate::gemm::split;
use crate::operands::{Out, Tile};
use crate::schemes::{ActQuant, PackedWeights, Scheme};
use crate::sync_ptr::{SharedConst, SharedMut};
use crate::tuning::{dot_tasks, I8_BLOCK_BYTES, I8_ROWS, INT8_GEMM_MIN_M};
use crate::Pool;

/// Low-bit weights × int8 activations: x quantized (`quant.rs`), its
/// per-group code sums taken once, then `dot_lowbit` tiles of 4 x rows × 4
/// weight rows, weight rows blocked so a block stays in cache while every x
/// tile passes over it (m ≥ `INT8_GEMM_MIN_M` without a low-bit GEMM).
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
    let kind = Kind::of(w.scheme);
    let (group, ng, rb) = (w.group, w.groups_per_row(), w.row_bytes());
    let (nc, perm) = I::lowbit_shape(kind, group);
    let gemm = I::LB_NR > 0 && m >= INT8_GEMM_MIN_M;
    let perm = perm && !gemm;
    let xq = quantize::<I>(
        pool,
        x,
        m,
        k,
        act,
        Sums::Groups {
            group,
            permute: perm,
        },
    );
    if gemm {
        return crate::gemm::lowbit::linear::<I>(pool, kind, &xq, m, w, bias, out);
    }
    let kq = xq.kq;
    let groups = n.div_ceil(nc);
    let block = (I8_BLOCK_BYTES / rb / nc).max(1);
    let tasks = if m < INT8_GEMM_MIN_M {
        // As dot_tasks, counted in 4-row units.
        dot_tasks(pool.threads(), n.div_ceil(4)).min(groups)
    } else {
        groups.div_ceil(block).min(pool.threads() * 4).max(1)
    };
    let out = SharedMut::new(out);
    let wp = SharedConst::new(w.planes[0].as_ptr());
    let (xq, xsg, sx) = (&xq.codes, &xq.sums, &xq.scales);
    pool.run(tasks, &|t| {
        let (g0, g1) = split(groups, tasks, t);
        // The block's rows' group parameters, row-major (as the planes), then
        // group-major per tile.
        let per = nc * ng;
        let mut sr = vec![0.0f32; block.min(g1 - g0) * per];
        let mut zr = sr.clone();
        let (mut ps, mut pz) = (sr.clone(), sr.clone());
        {
            let mut gb = g0;
            while gb < g1 {
                let ge = (gb + block).min(g1);
                let (j0, j1) = (nc * gb, (nc * ge).min(n));
                block_params::<I>(w, j0, j1, &mut sr, &mut zr);
                for g in gb..ge {
                    let (o, cols) = ((g - gb) * per, (n - nc * g).min(nc));
                    let (ps, pz) = (&mut ps[o..o + per], &mut pz[o..o + per]);
                    group_major(&sr[o..], &zr[o..], cols, ng, nc, ps, pz);
                }
                for i in (0..m).step_by(I8_ROWS) {
                    let rows = (m - i).min(I8_ROWS);
                    for g in gb..ge {
                        let j = nc * g;
                        let cols = (n - j).min(nc);
                        let mut b = [0.0f32; 16];
                        if let Some(bias) = bias {
                            b[..cols].copy_from_slice(&bias[j..j + cols]);
                        }
                        let tile = LowbitTile {
                            xq: xq[i * kq..].as_ptr(),
                            ldx: kq,
                            xsg: xsg[i * ng..].as_ptr(),
                            sx: sx[i..].as_ptr(),
                            codes: wp.get().wrapping_add(j * rb),
                            rb,
                            ps: ps[(g - gb) * per..].as_ptr(),
                            pz: pz[(g - gb) * per..].as_ptr(),
                            bias: b.as_ptr(),
                        };
                        // Safety: x rows i..i+rows (kq codes, ng sums, one
                        // scale each), weight rows j..j+cols (rb bytes each,
                        // checked by `linear`), NC·ng parameters, and output
                        // columns j..j+cols of rows i..i+rows (this task's).
                        unsafe {
                            I::dot_lowbit(
                                kind,
                                Tile { rows, cols },
                                k,
                                group,
                                tile,
                                Out {
                                    ptr: out.get().add(i * n + j),
                                    row_stride: n,
                                },
                            )
                        }
                    }
                }
                gb = ge;
            }
        }
    });
}

/// Low-bit × int8 group parameters `(s_g, z_g)` of weight rows `j0..j1`,
/// row-major into `sr` / `zr` (`lowbit_params`' values: nf4 `absmax / 127`,
/// zero 0), the contiguous planes converted in one pass.
pub(crate) fn block_params<I: PackedSimd>(
    w: &PackedWeights,
    j0: usize,
    j1: usize,
    sr: &mut [f32],
    zr: &mut [f32],
) {
    let ng = w.groups_per_row();
    let cnt = (j1 - j0) * ng;
    let (sr, zr) = (&mut sr[..cnt], &mut zr[..cnt]);
    let (p1, p2) = (w.planes[1], w.planes[2]);
    let g0 = j0 * ng;
    match w.scheme {
        Scheme::Int4Sym | Scheme::Int4Asym | Scheme::Int3 => {
            assert!(p1.len() >= 2 * (g0 + cnt));
            // Safety: bounds checked above (and for zeros below).
            unsafe { I::f16_to_f32(p1.as_ptr().add(2 * g0), cnt, sr.as_mut_ptr()) };
            if w.scheme == Scheme::Int4Sym {
                zr.fill(8.0);
            } else {
                assert!(p2.len() >= 2 * (g0 + cnt));
                unsafe { I::f16_to_f32(p2.as_ptr().add(2 * g0), cnt, zr.as_mut_ptr()) };
            }
        }
        Scheme::Nf4 => {
            assert!(p1.len() >= 4 * (g0 + cnt));
            for (o, b) in sr.iter_mut().zip(p1[4 * g0..].chunks_exact(4)) {
                *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]) / 127.0;
            }
            zr.fill(0.0);
        }
        Scheme::Nf4Dq => {
            // Chunks of 256 groups (over the whole tensor) share min / step;
            // the absmax as `schemes`' decode (product rounded, then the sum).
            assert!(p1.len() >= g0 + cnt);
            let mut i = 0;
            while i < cnt {
                let c = (g0 + i) / 256;
                let end = ((c + 1) * 256 - g0).min(cnt);
                let (min, step) = (le_f32(p2, 2 * c), le_f32(p2, 2 * c + 1));
                for (o, &q) in sr[i..end].iter_mut().zip(&p1[g0 + i..g0 + end]) {
                    *o = (min + q as f32 * step) / 127.0;
                }
                i = end;
            }
            zr.fill(0.0);
        }
        Scheme::Int8Row | Scheme::Int8Tensor => unreachable!("int8 weights take the int8 path"),
    }
}

/// `cols` rows' group parameters, row-major (`sr[c·ng + g]`), into a tile
/// `nc` columns wide, group-major (`ps[g·nc + c]`); columns from `cols` on
/// repeat the last row's.
pub(crate) fn group_major(
    sr: &[f32],
    zr: &[f32],
    cols: usize,
    ng: usize,
    nc: usize,
    ps: &mut [f32],
    pz: &mut [f32],
) {
    for c in 0..nc {
        let src = c.min(cols - 1) * ng;
        for g in 0..ng {
            ps[g * nc + c] = sr[src + g];
            pz[g * nc + c] = zr[src + g];
        }
    }
}

/// Stored code of element `e` of a row (`Kind::Affine3` or a 4-bit kind).
///
/// # Safety
/// `codes` must hold the row's whole blocks.
pub(crate) unsafe fn code_at(kind: Kind, codes: *const u8, e: usize) -> u8 {
    let (b, i) = (e / 32, e % 32);
    if kind == Kind::Affine3 {
        let blk = codes.add(12 * b);
        let low = (*blk.add(i % 8) >> (2 * (i / 8))) & 3;
        let high = (*blk.add(8 + i % 4) >> (i / 4)) & 1;
        low | (high << 2)
    } else {
        (*codes.add(16 * b + i % 16) >> (4 * (i / 16))) & 15
    }
}

/// The portable `dot_lowbit` (the reference's arithmetic on raw pointers).
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn lowbit_scalar(
    kind: Kind,
    rows: usize,
    cols: usize,
    k: usize,
    group: usize,
    t: LowbitTile,
    out: *mut f32,
    ldo: usize,
) {
    let ng = k.div_ceil(group);
    // The portable tile is NC = 4 columns wide (`PackedSimd::lowbit_shape`).
    let nc = 4;
    for r in 0..rows {
        for c in 0..cols {
            let codes = t.codes.add(c * t.rb);
            let mut acc = 0.0f32;
            for g in 0..ng {
                let (mut d, mut sx) = (0i32, 0i32);
                for e in g * group..((g + 1) * group).min(k) {
                    let x = *t.xq.add(r * t.ldx + e) as i32;
                    let u = code_at(kind, codes, e);
                    let u = if kind == Kind::Nf4 {
                        crate::schemes::NF4_I8[u as usize] as i32
                    } else {
                        u as i32
                    };
                    d += x * u;
                    sx += x;
                }
                debug_assert_eq!(sx, *t.xsg.add(r * ng + g));
                let (s, z) = (*t.ps.add(g * nc + c), *t.pz.add(g * nc + c));
                acc += s * (d as f32 - z * sx as f32);
            }
            *out.add(r * ldo + c) = *t.sx.add(r) * acc + *t.bias.add(c);
        }
    }
}
